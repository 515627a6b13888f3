"""A ticker's tuned set in the registry: the ``tuned.*`` tags a tuning writes, and the
training config they give the ticker back.

The search itself is :mod:`ticker_registry.tuning`; the manager writes these tags on the
ticker's registered model and reads them for every training of the ticker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .config import Config
from .hyperparameters import HYPERPARAMETER_BOUNDS, MODEL_TYPES

if TYPE_CHECKING:
    from .tuning import TuningResult

__all__ = ["TUNED_PREFIX", "apply_tuned", "tuned_tags"]

#: Prefix of the registered-model tags holding a ticker's tuned set.
TUNED_PREFIX = "tuned."


def tuned_tags(result: TuningResult, at: str) -> dict[str, str]:
    """The registered-model tags that record ``result`` (tuned at ``at``, ISO time)."""
    completed = sum(r["state"] == "COMPLETE" for r in result.trials)
    return {**{f"{TUNED_PREFIX}{k}": repr(v) if isinstance(v, float) else str(v)
               for k, v in result.best_params.items()},
            f"{TUNED_PREFIX}model_type": result.model_type, f"{TUNED_PREFIX}at": at,
            f"{TUNED_PREFIX}score": f"{result.best_score:.6f}",
            f"{TUNED_PREFIX}final_score": f"{result.final['tuned']['score']:.6f}",
            f"{TUNED_PREFIX}final_default_score": f"{result.final['default']['score']:.6f}",
            f"{TUNED_PREFIX}trials": f"{completed}/{len(result.trials)}",
            f"{TUNED_PREFIX}seed": str(result.seed),
            f"{TUNED_PREFIX}kept_default": str(result.kept_default).lower(),
            f"{TUNED_PREFIX}gain_t": f"{result.evidence.get('t', 0.0):.3f}",
            f"{TUNED_PREFIX}adopted": str(result.adopted).lower()}


def apply_tuned(config: Config, tags: Mapping[str, str]) -> Config:
    """``config`` with a ticker's tuned model type and hyperparameters from its model tags
    (``config`` itself when the ticker was never tuned, or its tuned set was not adopted)."""
    model_type = tags.get(f"{TUNED_PREFIX}model_type")
    if model_type not in MODEL_TYPES or tags.get(f"{TUNED_PREFIX}adopted") == "false":
        return config
    params: dict[str, int | float] = {}
    for name, (kind, *_rest) in HYPERPARAMETER_BOUNDS[model_type].items():
        text = tags.get(f"{TUNED_PREFIX}{name}")
        try:
            params[name] = int(text) if kind is int else float(text)  # type: ignore[arg-type]
        except (TypeError, ValueError):  # absent, or edited by hand into something else
            continue
    table = {k: dict(v) for k, v in config.hyperparameters.items()}
    table[model_type] = {**table.get(model_type, {}), **params}
    return config.replace(model_type=model_type, hyperparameters=table)
