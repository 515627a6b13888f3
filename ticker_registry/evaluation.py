"""Honest evaluation: purged walk-forward, proper scores, naive baselines, significance.

Pure functions on arrays: no MLflow, no I/O, no clock. The model's training
(:mod:`ticker_registry.model`), the promotion gate, ``compare``, ``best``, the report, the
``evaluate`` command and the quality benchmark all decide with the functions here, so they
can never disagree.

Walk-forward
------------
Rows are events in time order; each label looks ``horizon`` ahead of its event. The rows are
cut into ``n_folds + 1`` contiguous blocks of equal size. Fold ``k`` (1..n_folds) tests
block ``k`` and trains on the rows before it (expanding window), **purged**: a training row
whose label window ``(t, t + horizon]`` plus the ``embargo`` reaches the first test event is
dropped, so no training label has seen the test period.

Scores and baselines (per head, per row, lower is better)
---------------------------------------------------------
==================  ==========================  =================================================
head                loss                        naive baselines (fitted on the fold's training)
==================  ==========================  =================================================
flow_type           log-loss (nats)             class prior (Laplace-smoothed frequencies);
                                                accuracy also against the majority class and
                                                persistence (the window's own flow continuing)
impact              squared error (bps²)        zero; training mean; training median
time_to_execution   squared error (s²)          training mean; training median
==================  ==========================  =================================================

A head's *best baseline* is the one with the lower pooled out-of-sample loss
(chosen after the fact, which only makes the bar higher).

Skill and significance
----------------------
``skill = 1 - loss_model / loss_baseline`` on all out-of-sample rows pooled (0: as good as
the baseline, 1: perfect). Its uncertainty comes from the per-row loss differences
``d = loss_baseline - loss_model``, clustered into consecutive time blocks of
``2 x horizon`` (labels within a horizon of each other overlap, so single rows are not
independent): the cluster-robust standard error of the mean of ``d`` gives ``z``. A head
**has skill** only when ``z`` exceeds the one-sided normal quantile of ``alpha`` (config
``skill_alpha``, default 0.05, so z > 1.645). Heads trained on shuffled labels reach that
on far fewer than 5 % of trainings (``benchmarks/quality.py``).

A head whose training label has fewer than :data:`MIN_DISTINCT_VALUES` distinct values
is **not evaluable**: no skill, no score, its baseline serves it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from .features import FLOW_TYPES, LABEL_NAMES, flow_class

__all__ = ["BASELINE_KINDS", "HEADS", "LOSS_METRICS", "MIN_DISTINCT_VALUES", "N_CLASSES",
           "BaselineModel", "Fold", "HeadComparison", "HeadEvaluation", "compare_losses",
           "evaluation_rows", "fit_baselines", "gate_verdict", "head_losses", "head_skill",
           "judge_head", "persistence_class", "purged_folds", "put_head", "SKILL_SCORE_METRICS",
           "served_skill_score", "take_head", "z_threshold"]

#: The three heads, in output order: the labels they are trained on.
HEADS: tuple[str, ...] = LABEL_NAMES
N_CLASSES = len(FLOW_TYPES)
#: The recorded loss metric of each head (``metric.<name>`` on a version, lower is better).
LOSS_METRICS: dict[str, str] = {"flow_type": "flow_type_logloss", "impact": "impact_mse",
                                "time_to_execution": "time_to_execution_mse"}
#: Fewer distinct training label values than this: the head is not evaluable.
MIN_DISTINCT_VALUES = 3
_PROB_FLOOR = 1e-6
#: Baseline kinds each head is judged against, in the order they are listed (and tie-broken).
BASELINE_KINDS: dict[str, tuple[str, ...]] = {
    "flow_type": ("prior",), "impact": ("zero", "mean", "median"),
    "time_to_execution": ("mean", "median")}
#: The baseline that serves a head which is not evaluable.
_FALLBACK_BASELINE = {"flow_type": "prior", "impact": "mean", "time_to_execution": "median"}


# --------------------------------------------------------------------------- prediction matrix
def _columns(head: str) -> slice | int:
    """Where a head sits in an (n, 5) prediction matrix: 3 class probabilities, impact, time."""
    return slice(0, N_CLASSES) if head == "flow_type" else N_CLASSES + HEADS.index(head) - 1


def take_head(matrix: np.ndarray, head: str) -> np.ndarray:
    """A head's part of an (n, 5) prediction matrix: 3 class probabilities, impact, time."""
    return matrix[:, _columns(head)]


def put_head(matrix: np.ndarray, head: str, values: np.ndarray) -> None:
    """Write a head's predictions into an (n, 5) prediction matrix (see :func:`take_head`)."""
    matrix[:, _columns(head)] = values


# --------------------------------------------------------------------------- folds
@dataclass(frozen=True)
class Fold:
    """One walk-forward split: row positions to train on and to test on."""

    number: int
    train: np.ndarray
    test: np.ndarray
    purged: int


def purged_folds(event_ns: np.ndarray, horizon_ns: int, n_folds: int, *,
                 embargo_ns: int = 0, min_train: int = 30) -> list[Fold]:
    """Expanding-window walk-forward folds with purge and embargo.

    Parameters
    ----------
    event_ns
        Event times (int64 ns), non-decreasing.
    horizon_ns
        How far each label looks ahead of its event.
    n_folds
        Number of test blocks; the rows are cut into ``n_folds + 1`` blocks.
    embargo_ns
        Extra gap between the last training label and the first test event.
    min_train
        Folds with fewer training rows left after the purge are skipped.

    Returns
    -------
    list of Fold
        In time order; every training row ``t`` has ``t + horizon_ns + embargo_ns < first test event``.
    """
    t = np.asarray(event_ns, dtype=np.int64)
    if n_folds < 1:
        raise ValueError(f"n_folds must be at least 1, got {n_folds!r}")
    bounds = np.linspace(0, t.size, n_folds + 2).round().astype(np.int64)
    folds = []
    for k in range(1, n_folds + 1):
        start, stop = int(bounds[k]), int(bounds[k + 1])
        if stop <= start:
            continue
        # rows before the block whose label window (plus embargo) stays before the test block
        keep = int(np.searchsorted(t[:start], t[start] - horizon_ns - embargo_ns, side="left"))
        if keep < min_train:
            continue
        folds.append(Fold(k, np.arange(keep), np.arange(start, stop), start - keep))
    return folds


# --------------------------------------------------------------------------- baselines
@dataclass(frozen=True)
class BaselineModel:
    """The constant predictions of a head's naive baselines, fitted on training labels."""

    head: str
    values: dict[str, Any]

    def predict(self, kind: str, n: int) -> np.ndarray:
        """``n`` rows of baseline ``kind``: (n, 3) probabilities for flow_type, else (n,)."""
        value = self.values[kind]
        flow = self.head == "flow_type"
        return np.tile(np.asarray(value, dtype=np.float64), (n, 1)) if flow else np.full(n, float(value))

    def to_dict(self) -> dict[str, Any]:
        return {"head": self.head, "values": dict(self.values)}

    def predictions(self, n: int) -> dict[str, np.ndarray]:
        """``n`` rows of each baseline the head is judged against (``BASELINE_KINDS`` order)."""
        return {kind: self.predict(kind, n) for kind in BASELINE_KINDS[self.head]}


def fit_baselines(head: str, y: np.ndarray) -> BaselineModel:
    """Fit every naive baseline of ``head`` on training labels ``y``."""
    y = np.asarray(y)
    if head == "flow_type":
        counts = np.bincount(y.astype(np.int64), minlength=N_CLASSES).astype(np.float64)
        prior = (counts + 1.0) / (counts.sum() + N_CLASSES)
        return BaselineModel(head, {"prior": prior.tolist(), "majority": int(np.argmax(counts))})
    values = {"mean": float(np.mean(y)), "median": float(np.median(y))}
    if head == "impact":
        values["zero"] = 0.0
    return BaselineModel(head, values)


def persistence_class(signed_volume_imbalance: np.ndarray, flow_band: float) -> np.ndarray:
    """The flow class of each event's own window: the 'flow continues' forecast."""
    return flow_class(np.asarray(signed_volume_imbalance, dtype=np.float64), flow_band)


def head_losses(head: str, y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-row loss: log-loss for flow_type (pred = probabilities), squared error otherwise."""
    if head == "flow_type":
        p = np.clip(np.asarray(pred, dtype=np.float64), _PROB_FLOOR, 1.0)
        p = p / p.sum(axis=1, keepdims=True)
        return -np.log(p[np.arange(len(y)), np.asarray(y, dtype=np.int64)])
    return (np.asarray(y, dtype=np.float64) - np.asarray(pred, dtype=np.float64)) ** 2


def evaluable(head: str, y_train: np.ndarray) -> bool:
    """Whether a head's training labels carry enough variation to learn and to score."""
    values = np.unique(np.asarray(y_train))
    if head == "flow_type":
        return values.size >= 2
    return values.size >= MIN_DISTINCT_VALUES and float(np.std(y_train)) > 0.0


# --------------------------------------------------------------------------- significance
def z_threshold(alpha: float) -> float:
    """One-sided normal quantile: z above it is significant at level ``alpha``."""
    return NormalDist().inv_cdf(1.0 - alpha)


def _paired_test(reference_loss: np.ndarray, loss: np.ndarray, event_ns: np.ndarray,
                 horizon_ns: int) -> tuple[float, float, float]:
    """How much lower ``loss`` is than ``reference_loss`` per row: mean, its SE and z.

    The standard error is cluster-robust, the clusters consecutive blocks of ``2 x horizon``
    of event time; a zero standard error is read as certainty of the mean's sign. The one
    test of skill (model against baseline) and of the gate (candidate against production).
    """
    d = np.asarray(reference_loss, dtype=np.float64) - loss
    if d.size == 0:
        return 0.0, math.inf, 0.0
    t = np.asarray(event_ns, dtype=np.int64)
    _, clusters = np.unique((t - t.min()) // max(int(2 * horizon_ns), 1), return_inverse=True)
    mean = float(d.mean())
    sums = np.bincount(clusters, weights=d - mean)
    g = sums.size
    var = float(np.sum(sums ** 2)) / d.size ** 2 * g / (g - 1) if g >= 2 else math.inf
    se = math.sqrt(var) if var > 0 else 0.0
    z = mean / se if se > 0 else (0.0 if mean == 0 else math.copysign(math.inf, mean))
    return mean, se, z


# --------------------------------------------------------------------------- judging a head
@dataclass
class HeadEvaluation:
    """Out-of-sample evaluation of one head over the walk-forward folds."""

    head: str
    evaluable: bool
    has_skill: bool = False
    source: str = "baseline"
    baseline: str = ""
    model_loss: float = math.nan
    baseline_losses: dict[str, float] = field(default_factory=dict)
    skill: float = math.nan
    skill_low: float = math.nan
    skill_high: float = math.nan
    z: float = math.nan
    folds_won: int = 0
    n_folds: int = 0
    fold_skill: list[float] = field(default_factory=list)
    accuracy: dict[str, float] = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HeadEvaluation:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def summary(self) -> str:
        """One phrase: the head, its source and its skill with interval."""
        if not self.evaluable:
            return f"{self.head}: not evaluable ({self.reason}); baseline {self.baseline} serves"
        return (f"{self.head}: skill {self.skill:+.4f} [{self.skill_low:+.4f}, {self.skill_high:+.4f}] "
                f"vs {self.baseline}, z={self.z:.2f}, {self.folds_won}/{self.n_folds} folds; "
                f"{self.source} serves")


def judge_head(head: str, *, y: np.ndarray, model_pred: np.ndarray,
               baseline_preds: Mapping[str, np.ndarray], event_ns: np.ndarray,
               fold_of_row: np.ndarray, horizon_ns: int, alpha: float,
               evaluable_head: bool = True, not_evaluable_reason: str = "",
               extra_accuracy: Mapping[str, np.ndarray] | None = None) -> HeadEvaluation:
    """Decide whether ``head`` has skill from its pooled out-of-sample predictions.

    Parameters
    ----------
    y, model_pred, baseline_preds
        True labels and out-of-sample predictions of the model and of each baseline kind,
        for all test rows of all folds.
    event_ns, fold_of_row
        Event time and fold number of each test row.
    alpha
        One-sided significance level of the skill test.
    extra_accuracy
        flow_type only: class forecasts (majority, persistence) whose accuracy is
        reported beside the model's.
    """
    if not evaluable_head or len(y) == 0:
        return HeadEvaluation(head, False, baseline=_FALLBACK_BASELINE[head],
                              reason=not_evaluable_reason or "no out-of-sample rows")
    model_loss = head_losses(head, y, model_pred)
    base_losses = {kind: head_losses(head, y, pred) for kind, pred in baseline_preds.items()}
    best = min(base_losses, key=lambda kind: float(base_losses[kind].mean()))
    mean_d, se, z = _paired_test(base_losses[best], model_loss, event_ns, horizon_ns)
    base_mean = float(base_losses[best].mean())
    scale = base_mean if base_mean > 0 else math.inf
    half = 1.959963984540054 * se / scale if math.isfinite(se) else math.inf
    fold_skill = []
    for k in np.unique(fold_of_row):
        rows = fold_of_row == k
        base_k = float(base_losses[best][rows].mean())
        fold_skill.append(1.0 - float(model_loss[rows].mean()) / base_k if base_k > 0 else 0.0)
    has_skill = bool(z > z_threshold(alpha))
    result = HeadEvaluation(
        head, True, has_skill=has_skill, source="model" if has_skill else "baseline",
        baseline=best, model_loss=float(model_loss.mean()),
        baseline_losses={k: float(v.mean()) for k, v in base_losses.items()},
        skill=mean_d / scale, skill_low=mean_d / scale - half, skill_high=mean_d / scale + half,
        z=float(z), folds_won=int(sum(s > 0 for s in fold_skill)), n_folds=len(fold_skill),
        fold_skill=[float(s) for s in fold_skill],
        reason=(f"significant at alpha={alpha:g} (z={z:.2f})" if has_skill
                else f"not significant at alpha={alpha:g} (z={z:.2f})"))
    if head == "flow_type":
        predicted = np.argmax(np.asarray(model_pred), axis=1)
        result.accuracy = {"model": float(np.mean(predicted == y))}
        for name, forecast in (extra_accuracy or {}).items():
            result.accuracy[name] = float(np.mean(np.asarray(forecast) == y))
    return result


# --------------------------------------------------------------------------- comparing two versions
@dataclass
class HeadComparison:
    """Candidate against production on one head, on rows neither was trained on."""

    head: str
    candidate_loss: float
    production_loss: float
    improvement: float
    z: float
    verdict: str  # "better", "worse" or "same"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_losses(head: str, y: np.ndarray, candidate_pred: np.ndarray,
                   production_pred: np.ndarray, event_ns: np.ndarray, horizon_ns: int,
                   alpha: float) -> HeadComparison:
    """Paired, clustered test of the candidate's per-row loss against production's."""
    cand = head_losses(head, y, candidate_pred)
    prod = head_losses(head, y, production_pred)
    mean_d, _, z = _paired_test(prod, cand, event_ns, horizon_ns)
    threshold = z_threshold(alpha)
    verdict = "better" if z > threshold else ("worse" if z < -threshold else "same")
    prod_mean = float(prod.mean()) if prod.size else math.nan
    improvement = mean_d / prod_mean if prod_mean and prod_mean > 0 else 0.0
    return HeadComparison(head, float(cand.mean()) if cand.size else math.nan, prod_mean,
                          float(improvement), float(z), verdict)


def gate_verdict(comparisons: Sequence[HeadComparison]) -> tuple[bool, str]:
    """The candidate wins when it is significantly better on one head and worse on none."""
    worse, better = ([c for c in comparisons if c.verdict == v] for v in ("worse", "better"))
    detail = "; ".join(f"{c.head} {c.verdict} ({c.improvement:+.4f}, z={c.z:.2f})" for c in comparisons)
    if worse:
        return False, f"significantly worse on {', '.join(c.head for c in worse)}: {detail}"
    if not better:
        return False, f"not significantly better on any head: {detail}"
    return True, f"significantly better on {', '.join(c.head for c in better)}: {detail}"


# --------------------------------------------------------------------------- reading recorded metrics
def head_skill(metrics: Mapping[str, float]) -> dict[str, bool]:
    """Whether each head was found skilled (``has_skill_<head>`` metric; absent: False)."""
    return {h: float(metrics.get(f"has_skill_{h}", 0.0)) > 0 for h in HEADS}


SKILL_SCORE_METRICS = (*(f"has_skill_{h}" for h in HEADS), *(f"skill_{h}" for h in HEADS))


def served_skill_score(metrics: Mapping[str, float]) -> float:
    """Mean over the heads of the skill a version *serves* (its model's skill, 0 where the
    baseline serves), from :data:`SKILL_SCORE_METRICS`. Comparable across tickers (each head
    is scored against its own baselines), so rankings use it, never raw accuracy."""
    skilled = head_skill(metrics)
    return sum(float(metrics.get(f"skill_{h}", 0.0)) if skilled[h] else 0.0 for h in HEADS) / len(HEADS)


def evaluation_rows(heads: Mapping[str, HeadEvaluation]) -> list[dict[str, Any]]:
    """The walk-forward table, one row per head (``evaluate``, the report, the quality script)."""
    return [{
        "head": head,
        "evaluable": e.evaluable,
        "serves": e.source if e.source == "model" else f"baseline ({e.baseline})",
        "loss": "log-loss" if head == "flow_type" else "MSE",
        "model": e.model_loss if e.evaluable else None,
        "baseline": e.baseline,
        **{f"baseline_{k}": v for k, v in e.baseline_losses.items()},
        "skill": e.skill if e.evaluable else None,
        "skill_low": e.skill_low if e.evaluable else None,
        "skill_high": e.skill_high if e.evaluable else None,
        "z": e.z if e.evaluable and math.isfinite(e.z) else None,
        "folds_won": f"{e.folds_won}/{e.n_folds}" if e.evaluable else None,
        "fold_skill": [round(x, 4) for x in e.fold_skill],
        **{f"accuracy_{k}": v for k, v in e.accuracy.items()},
        "reason": e.reason,
    } for head, e in heads.items()]
