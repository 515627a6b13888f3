"""Run the purged walk-forward of one training: fit each fold's heads, judge every head.

The statistics live in :mod:`ticker_registry.evaluation`; this module only
fits the native heads of each fold (:mod:`ticker_registry.heads`) and collects
their out-of-sample predictions. :class:`~ticker_registry.model.OrderFlowModel`
calls it in ``fit``; the ``evaluate`` command and the quality benchmark call it
through the model, so every figure comes from the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .evaluation import (
    HEADS,
    LOSS_METRICS,
    N_CLASSES,
    HeadEvaluation,
    evaluable,
    fit_baselines,
    head_losses,
    judge_head,
    persistence_class,
    purged_folds,
    put_head,
)
from .heads import Head, train_head

if TYPE_CHECKING:
    from .config import Config
    from .features import FeatureSpec

__all__ = ["GateHoldout", "HeadTrainer", "WalkForwardReport", "config_trainer", "walk_forward"]

#: Fits one head: ``(head, features, labels, event_ns) -> Head`` on the rows given (a fold's
#: training rows, or every row for the final model). The default, :func:`config_trainer`,
#: trains from scratch with the config's hyperparameters; :mod:`ticker_registry.transfer`
#: gives one that starts from a template (its trees, or its tickers' samples).
HeadTrainer = Callable[[str, np.ndarray, np.ndarray, np.ndarray], Head]


def config_trainer(cfg: Config) -> HeadTrainer:
    """Train each head from scratch with ``cfg``'s model type and hyperparameters."""
    hp = cfg.model_hyperparameters()

    def train(head: str, x: np.ndarray, y: np.ndarray, event_ns: np.ndarray) -> Head:
        return train_head(cfg.model_type, x, y, n_classes=N_CLASSES if head == "flow_type" else 0,
                          hyperparameters=hp, seed=cfg.random_seed, n_jobs=cfg.n_jobs)

    return train

@dataclass(frozen=True)
class GateHoldout:
    """The last fold's test block: rows the candidate's recipe had not trained on.

    ``served`` is the (n, 5) served prediction of the fold's model (three
    class probabilities, impact, time_to_execution), with each head from its
    model or its baseline as the final version serves it.
    """

    positions: np.ndarray
    event_ns: np.ndarray
    served: np.ndarray


@dataclass
class WalkForwardReport:
    heads: dict[str, HeadEvaluation]
    metrics: dict[str, float]
    n_oos: int
    holdout: GateHoldout | None
    holdout_start: str | None
    folds: list[dict[str, float]] = field(default_factory=list)


def walk_forward(features: np.ndarray, labels: dict[str, np.ndarray], event_ns: np.ndarray,
                 cfg: Config, spec: FeatureSpec,
                 trainer: HeadTrainer | None = None) -> WalkForwardReport:
    """Purged walk-forward evaluation of ``cfg``'s model on ``(features, labels)``.

    Rows must be in event-time order. See :mod:`ticker_registry.evaluation`. ``trainer``
    fits each fold's heads (default: :func:`config_trainer`).
    """
    horizon = spec.horizon_ns
    embargo = int(round(cfg.cv_embargo * 60 * 1e9))
    folds = purged_folds(event_ns, horizon, cfg.cv_folds, embargo_ns=embargo)
    fit = trainer or config_trainer(cfg)
    pooled: dict[str, Any] = {h: {"model": [], "base": {}} for h in HEADS}
    extra: dict[str, list[np.ndarray]] = {"majority": [], "persistence": []}
    rows, fold_ids, fold_rows = [], [], []
    last_fold: dict[str, Any] = {}
    for fold in folds:
        train, test = fold.train, fold.test
        rows.append(test)
        fold_ids.append(np.full(test.size, fold.number))
        fold_figures: dict[str, float] = {"fold": float(fold.number), "n_train": float(train.size),
                                          "n_test": float(test.size), "purged": float(fold.purged)}
        for head in HEADS:
            y_train = labels[head][train]
            base = fit_baselines(head, y_train)
            base_preds = base.predictions(test.size)
            if evaluable(head, y_train):
                model = fit(head, features[train], y_train, event_ns[train])
                pred = model.predict(np.ascontiguousarray(features[test]))
            else:
                pred = base_preds["prior" if head == "flow_type" else "mean"]
            pooled[head]["model"].append(pred)
            for k, v in base_preds.items():
                pooled[head]["base"].setdefault(k, []).append(v)
            y_test = labels[head][test]
            best = min(float(head_losses(head, y_test, v).mean()) for v in base_preds.values())
            fold_figures[f"{head}_loss"] = float(head_losses(head, y_test, pred).mean())
            fold_figures[f"{head}_baseline_loss"] = best
            if head == "flow_type":
                extra["majority"].append(np.full(test.size, base.values["majority"]))
                extra["persistence"].append(persistence_class(features[test, 0], spec.flow_band))
            last_fold[head] = (pred, base_preds)
        fold_rows.append(fold_figures)

    heads: dict[str, HeadEvaluation] = {}
    oos = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    fold_of_row = np.concatenate(fold_ids) if fold_ids else np.zeros(0, dtype=np.int64)
    for head in HEADS:
        ok = evaluable(head, labels[head])
        reason = ("too few rows for a purged walk-forward" if not folds else
                  "" if ok else _constant_reason(head, labels[head]))
        heads[head] = judge_head(
            head, y=labels[head][oos],
            model_pred=np.concatenate(pooled[head]["model"]) if folds else np.zeros(0),
            baseline_preds={k: np.concatenate(v) for k, v in pooled[head]["base"].items()},
            event_ns=event_ns[oos], fold_of_row=fold_of_row, horizon_ns=horizon,
            alpha=cfg.skill_alpha, evaluable_head=ok and bool(folds), not_evaluable_reason=reason,
            extra_accuracy=({k: np.concatenate(v) for k, v in extra.items()}
                            if head == "flow_type" and folds else None))
    holdout = None
    holdout_start = None
    if folds:
        test = folds[-1].test
        served = np.empty((test.size, N_CLASSES + 2))
        for head in HEADS:
            pred, base_preds = last_fold[head]
            if heads[head].source != "model":
                kind = heads[head].baseline
                pred = base_preds.get(kind, next(iter(base_preds.values())))
            put_head(served, head, pred)
        holdout = GateHoldout(test, event_ns[test], served)
        holdout_start = str(np.datetime64(int(event_ns[test[0]]), "ns")) + "Z"
    return WalkForwardReport(heads, _metrics(heads), int(oos.size), holdout, holdout_start, fold_rows)


def _constant_reason(head: str, y: np.ndarray) -> str:
    values = np.unique(y)
    if values.size == 1:
        shown = values[0] if head != "flow_type" else int(values[0])
        return f"the training label is constant ({shown!r} in all {y.size} rows)"
    return f"the training label has only {values.size} distinct values"


def _metrics(heads: dict[str, HeadEvaluation]) -> dict[str, float]:
    """Flat, finite metrics of the evaluation (the version's ``metric.*`` tags and run metrics)."""
    out: dict[str, float] = {}
    for head, e in heads.items():
        key = LOSS_METRICS[head]
        if e.evaluable:
            out[key] = e.model_loss
            out[f"baseline_{key}"] = e.baseline_losses[e.baseline]
            out[f"skill_{head}"] = e.skill
            out[f"skill_{head}_low"] = e.skill_low
            out[f"skill_{head}_high"] = e.skill_high
            out[f"skill_{head}_z"] = e.z if np.isfinite(e.z) else float(np.sign(e.z) * 1e9)
            out[f"folds_won_{head}"] = float(e.folds_won)
        out[f"has_skill_{head}"] = 1.0 if e.has_skill else 0.0
        if head == "flow_type" and e.accuracy:
            out["flow_type_accuracy"] = e.accuracy["model"]
            out["baseline_flow_type_accuracy"] = e.accuracy.get("majority", e.accuracy["model"])
            if "persistence" in e.accuracy:
                out["persistence_flow_type_accuracy"] = e.accuracy["persistence"]
    return out
