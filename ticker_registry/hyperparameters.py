"""Model types, their default hyperparameters and the allowed range of each.

:data:`HYPERPARAMETER_BOUNDS` is the one table of ranges: the pydantic schema
that validates a config's ``hyperparameters`` (:data:`HyperparameterTable`) and
the error message that explains a refused value are both built from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import ConfigDict, Field, with_config
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

__all__ = ["DEFAULT_HYPERPARAMETERS", "HYPERPARAMETER_BOUNDS", "MODEL_TYPES", "HyperparameterTable",
           "describe_bounds"]

MODEL_TYPES = ("xgboost", "lightgbm", "random_forest")

#: Hyperparameters each model type accepts, with their defaults.
# Shallow, heavily regularised trees: the order-flow signal is weak and noisy, and deep
# trees fitted it worse than a constant out of sample (README, "Default hyperparameters",
# measured by purged walk-forward on the real trades with ``python -m benchmarks.quality``).
DEFAULT_HYPERPARAMETERS: dict[str, dict[str, Any]] = {
    "xgboost": {
        "n_estimators": 100,
        "max_depth": 2,
        "learning_rate": 0.05,
        "subsample": 0.7,
        "colsample_bytree": 0.8,
        "min_child_weight": 200.0,
        "reg_lambda": 20.0,
    },
    "lightgbm": {
        "n_estimators": 100,
        "num_leaves": 4,
        "learning_rate": 0.05,
        "min_child_samples": 200,
        "subsample": 0.7,
        "colsample_bytree": 0.8,
        "reg_lambda": 20.0,
    },
    "random_forest": {
        "n_estimators": 100,
        "max_depth": 6,
        "min_samples_leaf": 200,
        "max_features": 0.5,
    },
}

#: Allowed range of every hyperparameter: (kind, low, high, low_open). The upper bounds keep a
#: training finite in time and memory (a config with n_estimators: 100000000 is refused, not
#: trained for ever) and are far above anything the walk-forward favours.
HYPERPARAMETER_BOUNDS: dict[str, dict[str, tuple[type, float, float, bool]]] = {
    "xgboost": {
        "n_estimators": (int, 1, 5000, False), "max_depth": (int, 1, 16, False),
        "learning_rate": (float, 0, 1, True), "subsample": (float, 0, 1, True),
        "colsample_bytree": (float, 0, 1, True), "min_child_weight": (float, 0, 1e6, False),
        "reg_lambda": (float, 0, 1e6, False),
    },
    "lightgbm": {
        "n_estimators": (int, 1, 5000, False), "num_leaves": (int, 2, 4096, False),
        "learning_rate": (float, 0, 1, True), "min_child_samples": (int, 1, 1_000_000, False),
        "subsample": (float, 0, 1, True), "colsample_bytree": (float, 0, 1, True),
        "reg_lambda": (float, 0, 1e6, False),
    },
    "random_forest": {
        "n_estimators": (int, 1, 2000, False), "max_depth": (int, 1, 40, False),
        "min_samples_leaf": (int, 1, 1_000_000, False), "max_features": (float, 0, 1, True),
    },
}

# strict: 2.5 is not an integer and "3" is not a number; a count given as 2.0 is refused too
_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def describe_bounds(model_type: str, name: str) -> str:
    """The allowed form of one hyperparameter, e.g. ``'a number > 0 and <= 1'``."""
    kind, low, high, low_open = HYPERPARAMETER_BOUNDS[model_type][name]
    what = "an integer" if kind is int else "a number"
    return f"{what} {'>' if low_open else '>='} {low:g} and <= {high:g}"


def _bounded(kind: type, low: float, high: float, low_open: bool) -> Any:
    number: Any = int if kind is int else int | float  # a whole number stays an int
    return Annotated[number, Field(gt=low, le=high) if low_open else Field(ge=low, le=high)]


def _table_entry(model_type: str) -> Any:
    params = TypedDict(  # type: ignore[misc]  # built from the bounds table
        f"{model_type.title().replace('_', '')}Hyperparameters",
        {name: _bounded(*bounds) for name, bounds in HYPERPARAMETER_BOUNDS[model_type].items()},
        total=False)
    return with_config(_STRICT)(params)


_Table = with_config(_STRICT)(TypedDict(  # type: ignore[operator]  # built from the table
    "_Table", {model_type: _table_entry(model_type) for model_type in MODEL_TYPES}, total=False))

#: ``{model_type: {name: value}}`` with only the names given, as plain dicts; pydantic refuses
#: unknown model types and names (``extra_forbidden``) and values outside the bounds.
if TYPE_CHECKING:  # what a validated table is to its readers
    HyperparameterTable = Mapping[str, Mapping[str, int | float]]
else:
    HyperparameterTable = _Table
