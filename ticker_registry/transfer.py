"""Transfer to a new ticker: start its first version from a template instead of from nothing.

Pure apart from the fitting (no MLflow, no I/O): the manager finds the template, hands
it here and registers the result (:meth:`~ticker_registry.manager.SyncTickerModelManager.
create_from_template`). Every strategy gives a :data:`~ticker_registry.walk_forward.
HeadTrainer`, so the new ticker's purged walk-forward on **its own rows** fits each fold
the way the served version is fitted: the first version is judged like any other
candidate, and a head without skill on the new ticker's data is served by its baseline.

Strategies (config ``transfer_strategy``; all but ``scratch`` take the template's model
type and hyperparameters, tuned ones if it was tuned)
-------------------------------------------------------------------------------------------
``scratch``
    The new ticker's own config; the template is not used. The reference.
``hyperparameters``
    (a) The template's model type and hyperparameters, trained on the new ticker's rows.
``warm_start``
    (b) As (a), and each head continues boosting from the template's head: its trees stay,
    ``n_estimators`` new ones are fitted to what they leave on the new ticker's rows
    (XGBoost ``xgb_model``, LightGBM ``init_model``). A random forest cannot continue: it
    falls back to (a), and the lineage says so (:func:`effective_strategy`). The template's
    trees predict in the template's units: ``flow_type`` (relative classes) and ``impact``
    (basis points) carry over, but ``time_to_execution`` is in seconds and follows each
    market's trade rate, and continuing from another market's times lost up to 1.5 of skill
    on real trades. So ``time_to_execution`` continues from the template only when the
    median of the labels being fitted is within :data:`SCALE_RATIO` of the template's median
    (``Template.time_median``; decided per fit from the rows being fitted); otherwise it is
    trained as in (a). :attr:`HeadTrainerWithLog.warm_heads` tells which heads continued in
    the last fit of each head.
``pooled``
    (c) As (a), trained on the new ticker's rows plus the template tickers' rows, each
    template row moved into the new ticker's units: every feature z-scored with its own
    ticker's statistics and scaled back with the new ticker's (the statistics of the rows
    being fitted, never of later ones), ``impact`` the same way, ``time_to_execution``
    scaled by the ratio of medians (it stays positive), ``flow_type`` as it is (its classes
    are already relative). Trees split on order, so this is a model on z-scored features
    of every ticker, written in the new ticker's units: it serves with no new step.
    Only template rows no later than the newest row being fitted are used (so a fold's
    purge holds for them too), at most :data:`POOL_ROWS` per template ticker, the newest.

Which strategy is the default was decided on real trades (``python -m benchmarks.quality
--transfer``; README, "Transfer to a new ticker").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, get_args

import numpy as np
import pandas as pd

from .config import Config, TransferStrategy
from .evaluation import N_CLASSES
from .exceptions import InvalidArgumentError
from .heads import WARM_STARTABLE, Head, train_head
from .hyperparameters import HYPERPARAMETER_BOUNDS
from .model import _event_times, _label_arrays, feature_matrix
from .walk_forward import HeadTrainer, config_trainer

__all__ = ["POOL_ROWS", "SCALE_RATIO", "STRATEGIES", "HeadTrainerWithLog", "Template",
           "TemplateRows", "check_strategy", "continues", "effective_strategy",
           "pooled_rows", "transfer_config", "transfer_trainer"]

#: The strategies, in the order the comparison lists them.
STRATEGIES = ("scratch", "hyperparameters", "warm_start", "pooled")
assert get_args(TransferStrategy) == STRATEGIES
#: Most rows one template ticker adds to a pooled fit (its newest).
POOL_ROWS = 20_000
#: ``time_to_execution`` warm-starts only when the median label of the rows being fitted is
#: within this factor of the template's median (module docstring).
SCALE_RATIO = 2.0


@dataclass(frozen=True)
class TemplateRows:
    """One template ticker's rows for a pooled fit: features, labels by head, event times."""

    ticker: str
    x: np.ndarray
    labels: Mapping[str, np.ndarray]
    event_ns: np.ndarray

    @classmethod
    def of(cls, ticker: str, X: pd.DataFrame, y: pd.DataFrame) -> TemplateRows:
        """The rows of a training set (:func:`ticker_registry.build_training_set`)."""
        return cls(ticker, feature_matrix(X), _label_arrays(y, len(X)), _event_times(X))


@dataclass(frozen=True)
class Template:
    """What a new ticker may take from a template version.

    ``heads`` are the version's native heads (warm start); ``rows`` the training rows of one
    or more template tickers (pooled), empty when not given.
    """

    ticker: str
    version: int | None
    model_type: str
    hyperparameters: Mapping[str, int | float]
    heads: Mapping[str, Head] = field(default_factory=dict)
    rows: Sequence[TemplateRows] = ()
    #: The median ``time_to_execution`` of the template's training rows (None: unknown, so
    #: that head never warm-starts).
    time_median: float | None = None


def check_strategy(strategy: str) -> None:
    """Refuse an unknown strategy name (``InvalidArgumentError`` naming the known ones)."""
    if strategy not in STRATEGIES:
        raise InvalidArgumentError(f"unknown transfer strategy {strategy!r}; use one of: "
                                   f"{', '.join(STRATEGIES)}")


def effective_strategy(strategy: str, template: Template) -> str:
    """The strategy that will run: ``warm_start`` of a family that cannot continue (a random
    forest) is ``hyperparameters``."""
    check_strategy(strategy)
    if strategy == "warm_start" and template.model_type not in WARM_STARTABLE:
        return "hyperparameters"
    return strategy


def transfer_config(config: Config, strategy: str, template: Template) -> Config:
    """The new ticker's training config: ``config`` (``scratch``), else with the template's
    model type and hyperparameters."""
    check_strategy(strategy)
    if strategy == "scratch":
        return config
    table = {k: dict(v) for k, v in config.hyperparameters.items()}
    table[template.model_type] = dict(template.hyperparameters)
    return config.replace(model_type=template.model_type, hyperparameters=table)


def _stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = x.mean(axis=0), x.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)


def _move_label(head: str, y_src: np.ndarray, y_dst: np.ndarray) -> np.ndarray:
    """Template labels in the new ticker's units (see the module docstring)."""
    if head == "flow_type":
        return y_src
    if head == "time_to_execution":
        src, dst = float(np.median(y_src)), float(np.median(y_dst))
        if src > 0 and dst > 0:
            return y_src * (dst / src)
    (mu_s, sd_s), (mu_d, sd_d) = _stats(y_src), _stats(y_dst)
    return (y_src - mu_s) / sd_s * sd_d + mu_d


def pooled_rows(head: str, x: np.ndarray, y: np.ndarray, event_ns: np.ndarray,
                sources: Sequence[TemplateRows]) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` with every template's usable rows added in the new ticker's units.

    Usable: event time no later than the newest of ``event_ns``, the newest
    :data:`POOL_ROWS` of them. The new ticker's statistics are those of ``x`` and ``y``.
    """
    newest = int(event_ns.max()) if event_ns.size else np.iinfo(np.int64).max
    mu_d, sd_d = _stats(x)
    xs, ys = [x], [y]
    for src in sources:
        keep = np.flatnonzero(np.asarray(src.event_ns) <= newest)[-POOL_ROWS:]
        if keep.size == 0:
            continue
        xt, yt = src.x[keep], np.asarray(src.labels[head])[keep]
        mu_s, sd_s = _stats(xt)
        xs.append((xt - mu_s) / sd_s * sd_d + mu_d)
        ys.append(_move_label(head, yt, y).astype(y.dtype, copy=False))
    return np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys)


def _rounds(head: Head) -> int:
    """Boosting rounds of an XGBoost or LightGBM head."""
    booster: Any = getattr(head, "booster", None)
    if booster is None:
        return 0
    if hasattr(booster, "num_boosted_rounds"):
        return int(booster.num_boosted_rounds())
    return int(booster.current_iteration())


def continues(head: str, y: np.ndarray, template: Template) -> bool:
    """Whether a warm-started ``head`` fitted on labels ``y`` continues from the template's
    trees (always for ``flow_type`` and ``impact``; ``time_to_execution`` only at a similar
    scale, see the module docstring)."""
    if head != "time_to_execution":
        return True
    ref = template.time_median
    here = float(np.median(y)) if len(y) else 0.0
    if not ref or ref <= 0 or here <= 0:
        return False
    return 1.0 / SCALE_RATIO <= here / ref <= SCALE_RATIO


class HeadTrainerWithLog:
    """A head trainer that remembers, per head, whether its last fit continued the template."""

    def __init__(self, fit: HeadTrainer) -> None:
        self._fit = fit
        self.warm_heads: dict[str, bool] = {}

    def __call__(self, head: str, x: np.ndarray, y: np.ndarray, event_ns: np.ndarray) -> Head:
        return self._fit(head, x, y, event_ns)


def transfer_trainer(config: Config, strategy: str, template: Template) -> HeadTrainerWithLog:
    """The head trainer of ``strategy`` (``config`` from :func:`transfer_config`)."""
    strategy = effective_strategy(strategy, template)
    if strategy in ("scratch", "hyperparameters"):
        return HeadTrainerWithLog(config_trainer(config))
    if strategy == "pooled" and not template.rows:
        raise InvalidArgumentError(f"the pooled strategy needs the template tickers' rows and "
                                   f"{template.ticker} has none here; give its trades, or use "
                                   "transfer_strategy 'hyperparameters' or 'warm_start'")
    if strategy == "warm_start" and set(template.heads) != {"flow_type", "impact",
                                                              "time_to_execution"}:
        raise InvalidArgumentError(f"warm start needs the three heads of {template.ticker}'s "
                                   "version; load the version first")
    hp = config.model_hyperparameters()
    if strategy == "warm_start":
        # every warm start adds n_estimators rounds: a chain of them must stay a model we
        # could have trained (and that bundle import accepts)
        most = int(HYPERPARAMETER_BOUNDS[config.model_type]["n_estimators"][2])
        have = max(_rounds(h) for h in template.heads.values())
        if have + int(hp["n_estimators"]) > most:
            raise InvalidArgumentError(
                f"{template.ticker}'s version has {have} boosting rounds; warm start would add "
                f"{hp['n_estimators']}, above the {most} a model may have; use "
                "transfer_strategy 'hyperparameters' or a template trained from scratch")

    def train(head: str, x: np.ndarray, y: np.ndarray, event_ns: np.ndarray) -> Head:
        init = None
        if strategy == "warm_start":
            warm = continues(head, y, template)
            logged.warm_heads[head] = warm
            init = template.heads[head] if warm else None
        else:
            x, y = pooled_rows(head, x, y, event_ns, template.rows)
        return train_head(config.model_type, x, y,
                          n_classes=N_CLASSES if head == "flow_type" else 0,
                          hyperparameters=hp, seed=config.random_seed, n_jobs=config.n_jobs,
                          init=init)

    logged = HeadTrainerWithLog(train)
    return logged
