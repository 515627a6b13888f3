"""Per-ticker hyperparameter tuning: an Optuna search scored by purged walk-forward skill.

Pure apart from the fitting (no MLflow, no clock in the score, no I/O); the manager
saves the result in the registry (:meth:`~ticker_registry.manager.SyncTickerModelManager.tune`).

Decisions
---------
- **The final block is cut off before the study.** Rows are cut as the walk-forward cuts
  them: the last ``1 / (cv_folds + 1)`` of the rows is the final evaluation block
  (:func:`split_final_block`). The tuning part ends before it, purged: a tuning row whose
  label window (plus ``cv_embargo``) reaches the block's first event is dropped, so no label
  the study sees looks into the block. The study is handed the tuning part's arrays only;
  the final block is read once, after the study, to score the config's hyperparameters and
  the tuned ones, each trained on every tuning row. With ``large_order_threshold: auto`` the
  threshold is set from the trades before the final block (:func:`tune_on_trades`).
- **Objective: served skill over a purged walk-forward of the tuning part** (the same
  :func:`~ticker_registry.evaluation.purged_folds`, ``cv_folds`` and ``cv_embargo`` as a
  training). Per head, the pooled skill ``1 - sum(model loss) / sum(best baseline loss)``
  over the test rows of the folds so far (best baseline: the lowest pooled loss, as
  :func:`~ticker_registry.evaluation.judge_head` picks it), floored at 0 because a head
  whose model loses to its baseline is served by the baseline; the score is the mean over
  the three heads (like :func:`~ticker_registry.evaluation.served_skill_score`). No
  significance test inside the objective (a step function is a poor target for TPE); every
  version trained with the tuned set still passes the usual skill test and gate.
- **Pruning.** The running score is reported after each fold; Optuna's ``MedianPruner``
  stops a trial whose score after fold k is below the median of earlier trials at fold k
  (after :data:`STARTUP_TRIALS` complete trials, from the second fold).
- **Search space** (:data:`SEARCH_SPACE`, inside ``HYPERPARAMETER_BOUNDS``; shallow and
  heavily regularised trees are reachable): xgboost ``max_depth`` 2-8, ``learning_rate``
  log-uniform, ``min_child_weight``, ``reg_lambda``, ``subsample``, ``colsample_bytree``,
  ``n_estimators``; lightgbm the same with ``num_leaves`` and ``min_child_samples``;
  random_forest ``max_depth``, ``min_samples_leaf``, ``max_features``, ``n_estimators``.
  The config's hyperparameters are the first trial, so the best set is never worse than
  them on the tuning folds.
- **Reproducible.** ``TPESampler(seed=seed)`` (default: the config's ``random_seed``),
  heads seeded with ``random_seed``, trials run one after another: the same data, config
  and seed give the same trials and best set. With ``timeout`` the number of trials
  depends on the clock; the trials that ran are the same sequence.
- **Evidence before change.** The search's best trial replaces the config's set (trial 0)
  only when it beats it by more than fold-to-fold noise: the per-fold served-skill gains
  (each fold scored alone) must have a t statistic above the one-sided Student-t quantile
  at ``skill_alpha`` with ``folds - 1`` degrees of freedom, the same level the skill test
  uses. Otherwise the result is the config's set (``kept_default``; the search's best is
  kept in ``search_best_params``). The best of many trials always looks a little better
  on the folds it was picked on, so a small gain is no reason to change.
- **Adoption.** The final block then decides once between two candidates, the config's
  hyperparameters and the search's best set: the tuned set is adopted (``tuned.adopted``
  true; later trainings use it) only when its served skill there is not below the config's.
  Otherwise the search is still recorded (``tuned.*``, the run) but trainings keep the
  config's set. A tuned set that won on the tuning folds and lost on data it never saw is
  more likely fitted to the folds than better; and one comparison of two candidates spends
  little of the block's independence (its score is then slightly optimistic, and reported
  as it is).
- **Where the result lives** (the manager writes it): registered-model tags
  ``tuned.<param>``, ``tuned.model_type``, ``tuned.at``, ``tuned.score``, ``tuned.trials``,
  ``tuned.seed``, ``tuned.adopted``, ``tuned.run``; a run ``tune-<TICKER>`` in experiment
  ``ticker-registry/<namespace>/tuning`` with the trial table as the artifact
  ``tuning/trials.csv``. :func:`ticker_registry.tuned.apply_tuned` turns the tags back
  into a ticker's training config; every later training of that ticker (``train``,
  automatic retrains) uses an adopted set until the ticker is tuned again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import features
from .config import Config, ConfigSource, load_config
from .evaluation import HEADS, N_CLASSES, evaluable, fit_baselines, head_losses, purged_folds
from .exceptions import InvalidArgumentError, TrainingDataError
from .features import FeatureSpec
from .heads import train_head
from .hyperparameters import MODEL_TYPES
from .model import _event_times, _label_arrays, feature_matrix

__all__ = ["SEARCH_SPACE", "STARTUP_TRIALS", "TuningResult", "search_space", "split_final_block",
           "tune_hyperparameters", "tune_on_trades"]

#: The hyperparameters searched per model type: ``name: (kind, low, high, log)``.
SEARCH_SPACE: dict[str, dict[str, tuple[type, float, float, bool]]] = {
    "xgboost": {
        "n_estimators": (int, 50, 400, True), "max_depth": (int, 2, 8, False),
        "learning_rate": (float, 0.01, 0.3, True), "min_child_weight": (float, 1.0, 1000.0, True),
        "reg_lambda": (float, 0.1, 100.0, True), "subsample": (float, 0.5, 1.0, False),
        "colsample_bytree": (float, 0.5, 1.0, False),
    },
    "lightgbm": {
        "n_estimators": (int, 50, 400, True), "num_leaves": (int, 2, 64, True),
        "learning_rate": (float, 0.01, 0.3, True), "min_child_samples": (int, 5, 1000, True),
        "reg_lambda": (float, 0.1, 100.0, True), "subsample": (float, 0.5, 1.0, False),
        "colsample_bytree": (float, 0.5, 1.0, False),
    },
    "random_forest": {
        "n_estimators": (int, 50, 300, True), "max_depth": (int, 2, 16, False),
        "min_samples_leaf": (int, 5, 1000, True), "max_features": (float, 0.2, 1.0, False),
    },
}
#: Complete trials before the pruner may stop one.
STARTUP_TRIALS = 3


def search_space(model_type: str, trial: Any) -> dict[str, int | float]:
    """One hyperparameter set of ``model_type`` suggested by an Optuna ``trial``."""
    params: dict[str, int | float] = {}
    for name, (kind, low, high, log) in SEARCH_SPACE[model_type].items():
        if kind is int:
            params[name] = trial.suggest_int(name, int(low), int(high), log=log)
        else:
            params[name] = trial.suggest_float(name, float(low), float(high), log=log)
    return params


@dataclass(frozen=True)
class TuningResult:
    """What a tuning found: the best set, every trial, and the final block's verdict.

    ``final`` holds ``{"default": {...}, "tuned": {...}}``, each with ``score`` (served
    skill) and ``skill_<head>`` on the final block, trained on every tuning row.
    ``trials`` has one row per trial: ``trial``, ``state``, ``score`` (the objective),
    ``fold_scores`` (running score after each fold), ``skill_<head>``, ``params``, ``seconds``.
    """

    model_type: str
    seed: int
    best_params: dict[str, int | float]
    best_score: float
    default_params: dict[str, int | float]
    trials: list[dict[str, Any]]
    best_fold_scores: list[float]
    final: dict[str, dict[str, float]]
    n_tuning_rows: int
    n_final_rows: int
    final_start: str
    extra: dict[str, Any] = field(default_factory=dict)
    #: The search's best trial's set, chosen or not (``best_params`` is the chosen one).
    search_best_params: dict[str, int | float] = field(default_factory=dict)
    #: Why it was or was not chosen: ``gain`` (mean per-fold served-skill gain over the
    #: config's set), ``t`` (its t statistic over the folds), ``needed``, ``folds``.
    evidence: dict[str, float] = field(default_factory=dict)

    @property
    def kept_default(self) -> bool:
        """The search found no set clearly better than the config's on the tuning folds."""
        return self.best_params == self.default_params

    @property
    def adopted(self) -> bool:
        """Whether later trainings use the tuned set: only when it is not worse than the
        config's hyperparameters on the final block (module docstring, "Adoption")."""
        return self.final["tuned"]["score"] >= self.final["default"]["score"]


def split_final_block(event_ns: np.ndarray, horizon_ns: int, cv_folds: int,
                      embargo_ns: int = 0) -> tuple[int, int]:
    """``(end of the tuning part, start of the final block)`` as row positions.

    The final block is the last ``1 / (cv_folds + 1)`` of the rows; the tuning part is every
    row before it whose label window plus ``embargo_ns`` ends before the block's first event.
    """
    t = np.asarray(event_ns, dtype=np.int64)
    start = t.size - int(round(t.size / (cv_folds + 1)))
    if start <= 0 or start >= t.size:
        raise TrainingDataError(f"{t.size} rows are too few to hold out a final block")
    end = int(np.searchsorted(t[:start], t[start] - horizon_ns - embargo_ns, side="left"))
    return end, start


def _served_skill(sums: Mapping[str, dict[str, float]]) -> tuple[float, dict[str, float]]:
    """Mean over heads of the pooled skill floored at 0 (what serves), and each head's skill.

    ``sums[head]`` holds summed losses: ``model`` and one per baseline kind.
    """
    skills = {}
    for head in HEADS:
        base = min(v for k, v in sums[head].items() if k != "model")
        skills[head] = 1.0 - sums[head]["model"] / base if base > 0 else 0.0
    return sum(max(s, 0.0) for s in skills.values()) / len(HEADS), skills


def _add_fold(sums: dict[str, dict[str, float]], cfg: Config, x: np.ndarray,
              labels: Mapping[str, np.ndarray], train: np.ndarray, test: np.ndarray,
              hp: Mapping[str, Any]) -> None:
    """Fit each head on ``train``, add the summed losses on ``test`` (model and baselines)."""
    for head in HEADS:
        y_train, y_test = labels[head][train], labels[head][test]
        base = fit_baselines(head, y_train).predictions(test.size)
        acc = sums.setdefault(head, {})
        for kind, pred in base.items():
            acc[kind] = acc.get(kind, 0.0) + float(head_losses(head, y_test, pred).sum())
        if evaluable(head, y_train):
            model = train_head(cfg.model_type, x[train], y_train,
                               n_classes=N_CLASSES if head == "flow_type" else 0,
                               hyperparameters=dict(hp), seed=cfg.random_seed, n_jobs=cfg.n_jobs)
            pred = model.predict(np.ascontiguousarray(x[test]))
        else:  # not learnable: the baseline serves, so the model's loss is the baseline's
            pred = base["prior" if head == "flow_type" else "mean"]
        acc["model"] = acc.get("model", 0.0) + float(head_losses(head, y_test, pred).sum())


def _run_study(cfg: Config, x: np.ndarray, labels: dict[str, np.ndarray], event_ns: np.ndarray,
               horizon_ns: int, embargo_ns: int, *, seed: int, n_trials: int | None,
               timeout: float | None, progress: Any) -> tuple[Any, list[dict[str, Any]]]:
    """The Optuna study on the tuning part (the only arrays it is given)."""
    import optuna  # imported on use: importing the package stays fast

    folds = purged_folds(event_ns, horizon_ns, cfg.cv_folds, embargo_ns=embargo_ns)
    if not folds:
        raise TrainingDataError(f"{x.shape[0]} tuning rows are too few for a purged walk-forward "
                                f"of {cfg.cv_folds} folds; give a longer trade history")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS, n_warmup_steps=1))
    space = SEARCH_SPACE[cfg.model_type]
    study.enqueue_trial({k: v for k, v in cfg.model_hyperparameters().items() if k in space})
    rows: list[dict[str, Any]] = []

    def objective(trial: Any) -> float:
        start = time.perf_counter()
        params = search_space(cfg.model_type, trial)
        hp = {**cfg.model_hyperparameters(), **params}
        sums: dict[str, dict[str, float]] = {}
        scores: list[float] = []
        row: dict[str, Any] = {"trial": trial.number, "state": "PRUNED", "params": params}
        rows.append(row)
        per_fold: list[float] = []
        for step, fold in enumerate(folds):
            fold_sums: dict[str, dict[str, float]] = {}
            _add_fold(fold_sums, cfg, x, labels, fold.train, fold.test, hp)
            per_fold.append(_served_skill(fold_sums)[0])
            for head, acc in fold_sums.items():
                total = sums.setdefault(head, {})
                for kind, value in acc.items():
                    total[kind] = total.get(kind, 0.0) + value
            score, skills = _served_skill(sums)
            scores.append(score)
            row.update(score=score, fold_scores=list(scores), seconds=time.perf_counter() - start,
                       **{f"skill_{h}": s for h, s in skills.items()})
            trial.report(score, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        row["state"] = "COMPLETE"
        trial.set_user_attr("fold_scores", scores)
        trial.set_user_attr("fold_served", per_fold)
        return score

    def tick(study: Any, trial: Any) -> None:
        if progress is not None:
            best = study.best_value if any(t.value is not None for t in study.trials) else math.nan
            progress.update(1)
            progress.step(f"trial {trial.number + 1}: best served skill {best:+.4f}")

    study.optimize(objective, n_trials=n_trials, timeout=timeout, n_jobs=1, callbacks=[tick],
                   catch=())
    return study, rows


def tune_hyperparameters(X: pd.DataFrame, y: pd.DataFrame, config: ConfigSource = None, *,
                         n_trials: int | None = 20, timeout: float | None = None,
                         model_type: str | None = None, seed: int | None = None,
                         progress: Any = None) -> TuningResult:
    """Search ``model_type``'s hyperparameters on ``(X, y)``; the final block is held out.

    Parameters
    ----------
    X, y
        Features and labels indexed by event time (:func:`ticker_registry.build_training_set`).
    config
        Any config form; its hyperparameters are the first trial and the final block's
        "default".
    n_trials, timeout
        Stop after this many trials or seconds (whichever comes first; at least one given).
    model_type
        The family to tune (default: the config's).
    seed
        Seed of the sampler (default: the config's ``random_seed``).
    progress
        Optional bar with ``update(n)`` and ``step(text)`` (the CLI's ``Steps``), told after
        each trial.

    Raises
    ------
    InvalidArgumentError
        Unknown ``model_type``, or neither ``n_trials`` nor ``timeout`` positive.
    TrainingDataError
        Too few rows for a final block and a purged walk-forward.
    """
    cfg = load_config(config)
    if model_type is not None:
        if model_type not in MODEL_TYPES:
            raise InvalidArgumentError(f"unknown model_type {model_type!r}; use one of: "
                                       f"{', '.join(MODEL_TYPES)}")
        cfg = cfg.replace(model_type=model_type)
    if not ((n_trials and n_trials > 0) or (timeout and timeout > 0)):
        raise InvalidArgumentError(f"n_trials={n_trials!r}, timeout={timeout!r}: give a positive "
                                   "number of trials or a positive timeout in seconds")
    seed = cfg.random_seed if seed is None else int(seed)
    x = feature_matrix(X)
    labels = _label_arrays(y, len(x))
    event_ns = _event_times(X)
    if np.any(np.diff(event_ns) < 0):
        order = np.argsort(event_ns, kind="stable")
        x, event_ns, labels = x[order], event_ns[order], {h: v[order] for h, v in labels.items()}
    recorded = X.attrs.get("feature_spec")
    spec = FeatureSpec.from_dict(recorded) if recorded else FeatureSpec.from_config(cfg)
    embargo = int(round(cfg.cv_embargo * 60 * 1e9))
    end, start = split_final_block(event_ns, spec.horizon_ns, cfg.cv_folds, embargo)
    study, rows = _run_study(cfg, x[:end], {h: v[:end] for h, v in labels.items()},
                             event_ns[:end], spec.horizon_ns, embargo, seed=seed,
                             n_trials=n_trials, timeout=timeout, progress=progress)
    if not any(r["state"] == "COMPLETE" for r in rows):
        raise TrainingDataError("no trial completed; give more trials or a longer timeout")
    chosen, evidence = _choose(study.trials[0], study.best_trial, float(cfg.skill_alpha))
    best = dict(chosen.params)
    default = {k: v for k, v in cfg.model_hyperparameters().items() if k in best}
    tuning, final = np.arange(end), np.arange(start, len(x))
    verdict = {}
    for name, params in (("default", default), ("tuned", best)):
        sums: dict[str, dict[str, float]] = {}
        _add_fold(sums, cfg, x, labels, tuning, final, {**cfg.model_hyperparameters(), **params})
        score, skills = _served_skill(sums)
        verdict[name] = {"score": score, **{f"skill_{h}": s for h, s in skills.items()}}
    for row in rows:
        row["best"] = row["trial"] == chosen.number
    return TuningResult(
        model_type=cfg.model_type, seed=seed, best_params=best, best_score=float(chosen.value),
        default_params=default, trials=rows,
        best_fold_scores=list(chosen.user_attrs.get("fold_scores", [])), final=verdict,
        n_tuning_rows=end, n_final_rows=len(x) - start,
        final_start=str(np.datetime64(int(event_ns[start]), "ns")) + "Z",
        search_best_params=dict(study.best_params), evidence=evidence)


def _choose(base: Any, best: Any, alpha: float) -> tuple[Any, dict[str, float]]:
    """The search's best trial if it beats the config's (trial 0) by more than fold-to-fold
    noise, else trial 0; and the evidence: the mean per-fold gain in served skill, its
    t statistic over the folds, and the one-sided Student-t quantile it had to exceed."""
    from scipy.stats import t as student_t  # scikit-learn's dependency: always installed

    gains = (np.asarray(best.user_attrs.get("fold_served", []), dtype=float)
             - np.asarray(base.user_attrs.get("fold_served", []), dtype=float))
    k = gains.size
    if best.number == base.number or k < 2:
        return base, {"gain": 0.0, "t": 0.0, "needed": math.inf, "folds": float(k)}
    mean, sd = float(gains.mean()), float(gains.std(ddof=1))
    t = mean / (sd / math.sqrt(k)) if sd > 0 else (math.inf if mean > 0 else 0.0)
    needed = float(student_t.ppf(1.0 - alpha, k - 1))
    evidence = {"gain": mean, "t": t, "needed": needed, "folds": float(k)}
    return (best if t > needed else base), evidence


def tune_on_trades(trades: pd.DataFrame, config: ConfigSource = None, *,
                   market: pd.DataFrame | None = None, **options: Any) -> TuningResult:
    """Build the training set from canonical trades and tune on it (options: see
    :func:`tune_hyperparameters`). An ``auto`` threshold is set from the trades before the
    final block, so even the feature recipe is not drawn from it."""
    cfg = load_config(config)
    recipe: Config | FeatureSpec = cfg
    if cfg.large_order_threshold == "auto":
        head = trades.iloc[: len(trades) * cfg.cv_folds // (cfg.cv_folds + 1)]
        recipe = FeatureSpec.from_config(cfg, price=head["price"].to_numpy(),
                                         quantity=head["quantity"].to_numpy())
    X, y = features.build_training_set(trades, recipe, market=market)
    return tune_hyperparameters(X, y, cfg, **options)
