"""Typed, validated, immutable configuration.

A :class:`Config` is a frozen pydantic model, built by keyword
(``Config(model_type="lightgbm")``), from a mapping (``Config.from_dict``) or
by :func:`load_config`, which also takes a YAML path or None. Unknown keys,
wrong types and out-of-range values are refused with ONE
:class:`~ticker_registry.exceptions.ConfigError` that names the key, the value,
where it came from and the allowed form; pydantic's ``ValidationError`` never
escapes. Derive a changed copy with :meth:`Config.replace`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from types import MappingProxyType, NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from .config_yaml import MAX_CONFIG_BYTES, read_config_file
from .exceptions import ConfigError
from .hyperparameters import (
    DEFAULT_HYPERPARAMETERS,
    HYPERPARAMETER_BOUNDS,
    MODEL_TYPES,
    HyperparameterTable,
    describe_bounds,
)

__all__ = ["CONFIG_FORMS", "DEFAULT_HYPERPARAMETERS", "HYPERPARAMETER_BOUNDS", "MAX_CONFIG_BYTES",
           "MODEL_TYPES", "Config", "ConfigSource", "load_config"]

#: The forms of config the public API accepts, as a refusal names them.
CONFIG_FORMS = ("a Config, a mapping of config keys (a dict), the path of a YAML config file "
                "(str or Path), or None for the defaults")

_ALIAS = re.compile(r"[A-Za-z0-9_-]{1,255}")
_NAMESPACE = re.compile(r"[A-Za-z0-9_-]{1,100}")
_VERSION_ALIAS = re.compile(r"[vV]\d+")
#: Error type of the rules below; their message is the whole explanation.
_RULE = "config_rule"
#: Where the config being validated came from, for the message of a refusal (set by from_dict).
_SOURCE: ContextVar[str] = ContextVar("config_source", default="Config(...)")
#: Longest repr of a bad value quoted in a message: a huge value never makes a huge message.
_SHOWN = 80


def _check_alias(alias: str) -> str:
    if not _ALIAS.fullmatch(alias) or alias.lower() == "latest" or _VERSION_ALIAS.fullmatch(alias):
        raise PydanticCustomError(_RULE, "an alias is 1-255 letters, digits, '_' or '-', and not "
                                         "'latest' or v<number> (MLflow reserves those)")
    return alias


def _check_namespace(namespace: str) -> str:
    if not _NAMESPACE.fullmatch(namespace):
        raise PydanticCustomError(
            _RULE, "a namespace is 1-100 letters, digits, '_' or '-' (it prefixes registered model "
                   "names and is used in registry searches, where characters such as '%' would "
                   "match other namespaces)")
    return namespace


def _freeze(value: Any) -> Any:
    """A read-only view of nested mappings, so a frozen Config cannot be changed through them."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


# A whole number stays an int (``prediction_horizon: 5`` is 5, not 5.0), so to_dict(),
# the manifests and the training fingerprints read as the config was written.
Number = int | float
Alias = Annotated[str, AfterValidator(_check_alias)]
Text = Annotated[str, Field(pattern=r"\S")]  # not empty, not blank
ModelType = Literal["xgboost", "lightgbm", "random_forest"]
assert get_args(ModelType) == MODEL_TYPES
#: :data:`ticker_registry.transfer.STRATEGIES` (checked there: transfer imports this module).
TransferStrategy = Literal["scratch", "hyperparameters", "warm_start", "pooled"]


class Config(BaseModel):
    """Every setting of ticker-registry, with its default.

    Keys (all optional in a file; defaults shown in brackets):

    - ``model_type`` [xgboost]: ``xgboost``, ``lightgbm`` or ``random_forest``.
    - ``min_training_samples`` [1000]: samples before a ticker's first training.
    - ``retrain_interval`` [500]: new samples between automatic retrainings.
    - ``prediction_horizon`` [5]: label horizon in minutes.
    - ``sequence_length`` [20]: trades in each feature window.
    - ``large_order_threshold`` [auto]: notional (quote currency) of a large order;
      ``auto`` sets it per ticker from its own trades (the 95th percentile of
      trade notional, rounded to 1, 2 or 5 times a power of ten; see
      :func:`ticker_registry.features.auto_large_order_threshold`) and records
      the value in the version's feature spec.
    - ``flow_band`` [0.2]: |signed-volume share| above which flow is buy/sell pressure.
    - ``validation_fraction`` [0.2]: unused since the purged walk-forward (kept so
      older config files load).
    - ``cv_folds`` [5]: purged walk-forward folds (expanding window).
    - ``cv_embargo`` [0]: minutes of extra gap after the purge of each fold.
    - ``skill_alpha`` [0.05]: one-sided significance level of a head's skill
      over its best naive baseline (see :mod:`ticker_registry.evaluation`).
    - ``random_seed`` [42], ``n_jobs`` [1]: threads per model head.
    - ``hyperparameters`` [{}]: per model type overrides of ``DEFAULT_HYPERPARAMETERS``,
      each within ``HYPERPARAMETER_BOUNDS`` (:mod:`ticker_registry.hyperparameters`).
    - ``namespace`` [order_flow]: registered models are named ``<namespace>.<TICKER>``.
    - ``production_alias`` [production], ``staging_alias`` [staging].
    - ``auto_promote`` [true]: promote a candidate that beats production.
    - ``mirror_stages`` [false]: also set MLflow's deprecated stages.
    - ``log_plots`` [false]: log feature-importance / confusion-matrix PNGs.
    - ``max_cached_models`` [64], ``refresh_interval`` [30.0] seconds,
      ``max_model_age`` [null] seconds before predictions are flagged stale.
    - ``performance_window`` [500]: labelled samples in the live score.
    - ``skill_drop_threshold`` [null]: live accuracy below which a retrain is
      triggered early.
    - ``registry_timeout`` [10.0] seconds: deadline of one registry request.
    - ``predict_timeout`` [1.0] seconds: the async manager's budget for a prediction whose
      model is not loaded yet (loaded off the event loop; past it ``PredictionTimeoutError``
      while the load goes on); null waits for the load. A warm prediction runs inline and
      is kept from hanging by the tree checks at load (:mod:`ticker_registry.heads`).
    - ``close_timeout`` [300] seconds: how long a closing manager (or the interpreter
      exiting) waits for an in-flight training before abandoning it; its samples stay
      for the next process.
    - ``symbol`` [null]: the strategy's ticker.
    - ``transfer_strategy`` [warm_start]: how ``create_from_template`` starts a new ticker
      from a template: ``scratch``, ``hyperparameters``, ``warm_start`` or ``pooled``
      (:mod:`ticker_registry.transfer`; the default won the comparison on real trades,
      README "Transfer to a new ticker").

    The config is frozen: assigning an attribute raises ``FrozenInstanceError`` and
    ``hyperparameters`` is a read-only mapping.
    """

    # strict: "many" is not a count, 2.0 is not an integer, "yes" is not true; nan/inf refused
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False,
                              protected_namespaces=())

    model_type: ModelType = Field("xgboost", description="model family")
    min_training_samples: int = Field(1000, ge=10, description="samples before first training")
    retrain_interval: int = Field(500, ge=1, description="new samples between retrainings")
    prediction_horizon: Number = Field(5, gt=0, le=24 * 60, description="label horizon in minutes")
    sequence_length: int = Field(20, ge=2, le=10_000, description="trades per feature window")
    large_order_threshold: Literal["auto"] | Annotated[Number, Field(gt=0)] = Field(
        "auto", description="notional of a large order")
    flow_band: Number = Field(0.2, ge=0, le=1, description="signed-volume share band")
    validation_fraction: Number = Field(0.2, ge=0.05, le=0.5, description="holdout share")
    random_seed: int = Field(42, ge=0, description="random seed")
    cv_folds: int = Field(5, ge=2, le=20, description="walk-forward folds")
    cv_embargo: Number = Field(0, ge=0, le=24 * 60, description="minutes of embargo after the purge")
    skill_alpha: Number = Field(0.05, gt=0, le=0.5, description="significance level of skill")
    n_jobs: int = Field(1, ge=1, le=256, description="threads per head")
    # thawed for strict validation (a Config's own table is read-only), frozen again after
    hyperparameters: Annotated[HyperparameterTable, BeforeValidator(_plain), AfterValidator(_freeze)] = Field(
        default_factory=lambda: MappingProxyType({}), description="per model type hyperparameters")
    namespace: Annotated[str, AfterValidator(_check_namespace)] = Field(
        "order_flow", description="registered model name prefix")
    production_alias: Alias = Field("production", description="alias of the serving version")
    staging_alias: Alias = Field("staging", description="alias of the candidate version")
    auto_promote: bool = Field(True, description="promote a better candidate automatically")
    mirror_stages: bool = Field(False, description="mirror aliases to deprecated stages")
    log_plots: bool = Field(False, description="log plots with each version")
    max_cached_models: int = Field(64, ge=1, description="models held in memory")
    refresh_interval: Number = Field(30.0, ge=0, description="seconds between alias checks")
    max_model_age: Number | None = Field(None, gt=0, description="seconds before stale")
    performance_window: int = Field(500, ge=10, description="samples in the live score")
    skill_drop_threshold: Number | None = Field(None, ge=0, le=1, description="live accuracy floor")
    registry_timeout: Number = Field(10.0, gt=0, description="seconds per registry request")
    predict_timeout: Number | None = Field(1.0, gt=0, le=3600,
                                           description="seconds a cold prediction may take")
    close_timeout: Number = Field(300.0, ge=0, le=24 * 3600,
                                  description="seconds a closing manager waits for a training")
    symbol: Text | None = Field(None, description="strategy ticker")
    transfer_strategy: TransferStrategy = Field(
        "warm_start", description="how a new ticker starts from a template")

    @field_validator("staging_alias")
    @classmethod
    def _aliases_differ(cls, staging: str, info: ValidationInfo) -> str:
        if staging == info.data.get("production_alias"):
            raise PydanticCustomError(_RULE, "production_alias and staging_alias are both {alias}; "
                                             "give them different names", {"alias": repr(staging)})
        return staging

    def __init__(self, /, **data: Any) -> None:
        # every construction (keyword, from_dict, replace) passes here, so no ValidationError escapes
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _config_error(exc, _SOURCE.get()) from None

    def __setattr__(self, name: str, value: Any) -> None:
        # pydantic's frozen models raise its ValidationError here; keep the builtin contract
        raise dataclasses.FrozenInstanceError(
            f"cannot assign to field {name!r}: a Config is frozen; use config.replace({name}=...)")

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}: a Config is frozen")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None = None, *, source: str = "<dict>") -> Config:
        """Build a config from a mapping; unknown keys are refused.

        ``source`` (a file name, say) is quoted in error messages.
        """
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"config from {source} is {_shown(data)} (type {type(data).__name__}), "
                              "not a mapping of config keys to values")
        odd = [k for k in data if not isinstance(k, str)]
        if odd:
            raise ConfigError(f"config key {odd[0]!r} in {source} is not a name; keys are "
                              "names such as 'model_type'")
        token = _SOURCE.set(source)
        try:
            return cls(**data)
        finally:
            _SOURCE.reset(token)

    @classmethod
    def model_validate(cls, obj: Any, **_: Any) -> Config:
        """pydantic's entry point, routed through :meth:`from_dict` so a refusal is a ConfigError."""
        return obj if isinstance(obj, Config) else cls.from_dict(obj)

    def replace(self, **changes: Any) -> Config:
        """Return a copy with ``changes`` applied and validated."""
        return Config.from_dict({**self.to_dict(), **changes})

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Config:
        """:meth:`replace` under pydantic's name: pydantic's own copies ``update`` unvalidated."""
        return self.replace(**(update or {}))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every key (JSON-serialisable)."""
        return {name: _plain(getattr(self, name)) for name in type(self).model_fields}

    def model_hyperparameters(self) -> dict[str, Any]:
        """Hyperparameters of ``model_type``: defaults overlaid with the config's."""
        return {**DEFAULT_HYPERPARAMETERS[self.model_type],
                **self.hyperparameters.get(self.model_type, {})}


#: Anything :func:`load_config` turns into a Config.
ConfigSource = Config | Mapping[str, Any] | str | os.PathLike[str] | None


def load_config(source: ConfigSource = None) -> Config:
    """A :class:`Config` from any of the forms the public API accepts.

    Parameters
    ----------
    source
        A ``Config`` (returned as is), a mapping of config keys, the path of a YAML
        file (``str`` or ``Path``; strict YAML, at most :data:`MAX_CONFIG_BYTES`), or
        None for the defaults.

    Raises
    ------
    ConfigError
        The file cannot be read or parsed, a key or value is invalid, or ``source``
        is none of the forms above.
    """
    if source is None:
        return Config()
    if isinstance(source, Config):
        return source
    if isinstance(source, Mapping):
        return Config.from_dict(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        return Config.from_dict(read_config_file(path), source=str(path))
    raise ConfigError(f"config is {_shown(source)} (type {type(source).__name__}); pass {CONFIG_FORMS}")


# --- ValidationError -> ConfigError ------------------------------------------------------

_KINDS = {int: "an integer", float: "a number", str: "a non-empty string", bool: "true or false"}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _bounds(constraints: tuple[Any, ...]) -> str:
    words = []
    for c in constraints:
        if isinstance(c, FieldInfo):  # a Field(...) nested in Annotated
            words.append(_bounds(tuple(c.metadata)).strip())
        elif isinstance(c, annotated_types.Gt):
            words.append(f"> {_number(c.gt)}")  # type: ignore[arg-type]
        elif isinstance(c, annotated_types.Ge):
            words.append(f">= {_number(c.ge)}")  # type: ignore[arg-type]
        elif isinstance(c, annotated_types.Le):
            words.append(f"<= {_number(c.le)}")  # type: ignore[arg-type]
    words = [w for w in words if w]
    return " " + " and ".join(words) if words else ""


def _form(annotation: Any, constraints: tuple[Any, ...] = ()) -> str:
    """The allowed form of a field in words, read from its type and constraints."""
    if get_origin(annotation) is Annotated:
        inner, *meta = get_args(annotation)
        return _form(inner, (*constraints, *meta))
    if get_origin(annotation) is Literal:
        choices = get_args(annotation)
        return repr(choices[0]) if len(choices) == 1 else "one of: " + ", ".join(map(str, choices))
    members = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    null = " (or null)" if NoneType in members else ""
    members = tuple(m for m in members if m is not NoneType)
    if set(members) == {int, float}:
        return "a number" + _bounds(constraints) + null
    if len(members) == 1 and members[0] in _KINDS:
        return _KINDS[members[0]] + _bounds(constraints) + null
    return " or ".join(_form(m) for m in members) + null


def _explain(error: Mapping[str, Any], source: str) -> tuple[str, str]:
    """(path, message) of one pydantic error, in our words."""
    loc, kind, value = error["loc"], error["type"], error.get("input")
    known = ", ".join(sorted(Config.model_fields))
    key = loc[0]
    if kind == "extra_forbidden" and len(loc) == 1:
        return key, f"unknown config key {key!r} in {source}; known keys are: {known}"
    if key == "hyperparameters" and len(loc) >= 2:
        model_type = loc[1]
        if len(loc) == 2 and kind in ("extra_forbidden", "invalid_key"):
            return f"{key}.{model_type}", (f"unknown model type {model_type!r} under hyperparameters "
                                          f"in {source}; use one of: {', '.join(MODEL_TYPES)}")
        if len(loc) == 2:
            return f"{key}.{model_type}", (f"hyperparameters.{model_type} in {source} must be a "
                                          f"mapping of hyperparameter names to values, got "
                                          f"{_shown(value)}")
        name, params = loc[2], sorted(HYPERPARAMETER_BOUNDS[model_type])
        path = f"{model_type}.{name}"
        if kind in ("extra_forbidden", "invalid_key"):
            return f"{key}.{path}", (f"unknown hyperparameter {path} in {source}; known for "
                                     f"{model_type}: {', '.join(params)}")
        return f"{key}.{path}", (f"invalid hyperparameter {path}={_shown(value)} in {source}; it "
                                 f"must be {describe_bounds(model_type, name)}")
    field = Config.model_fields[key]
    if kind == _RULE:
        form = error["msg"]
    elif key == "hyperparameters":
        form = ("hyperparameters (per model type hyperparameters) must be a mapping of model type "
                "to hyperparameters, e.g. {xgboost: {max_depth: 3}}")
    else:
        form = f"{key} ({field.description}) must be {_form(field.annotation, tuple(field.metadata))}"
    return key, f"invalid config value {key}={_shown(value)} in {source}; {form}"


def _config_error(exc: ValidationError, source: str) -> ConfigError:
    """ONE ConfigError for a pydantic ValidationError: its first problem in full, the rest named.

    Unknown keys come first (a misspelt key is the likeliest cause); a union's
    per-member errors collapse into one per field.
    """
    errors = sorted(exc.errors(include_url=False),
                    key=lambda e: e["type"] not in ("extra_forbidden", "invalid_key"))
    explained: dict[str, str] = {}
    for error in errors:
        path, message = _explain(error, source)
        explained.setdefault(path, message)
    paths, messages = list(explained), list(explained.values())
    text = messages[0]
    if len(paths) > 1:
        more = ", ".join(paths[1:6])
        text += f" (also invalid: {more}{', ...' if len(paths) > 6 else ''})"
    return ConfigError(text)
