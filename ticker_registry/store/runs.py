"""One training as MLflow records it: a run, and the LoggedModel the run produced.

The run carries the params (feature spec, hyperparameters, evaluation
settings), the headline metrics and the per-fold walk-forward figures as
stepped metrics (step = fold: the UI plots them); the LoggedModel carries the
same params and headline metrics and holds the pyfunc model directory
(:mod:`ticker_registry.store.packaging`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ..model import OrderFlowModel, package_versions
from ..records import TrainingLineage
from .packaging import local_artifact_dir, save_pyfunc

if TYPE_CHECKING:
    from .adapter import MlflowStore

__all__ = ["LoggedTraining", "log_training"]


@dataclass(frozen=True)
class LoggedTraining:
    """The run of a training and the LoggedModel it produced (its files at ``artifact_location``)."""

    run_id: str
    model_id: str
    artifact_location: str


def training_params(ticker: str, model: OrderFlowModel) -> dict[str, str]:
    """The params of a training's run and LoggedModel."""
    cfg = model.config
    params = {"ticker": ticker, "model_type": cfg.model_type,
              **{f"spec.{k}": v for k, v in model.spec_.to_dict().items()
                 if k not in ("feature_names", "flow_types")},
              **{f"hp.{k}": v for k, v in cfg.model_hyperparameters().items()},
              "cv_folds": cfg.cv_folds, "cv_embargo": cfg.cv_embargo,
              "skill_alpha": cfg.skill_alpha, "random_seed": cfg.random_seed}
    return {k: str(v) for k, v in params.items()}


def log_training(store: MlflowStore, experiment: str, ticker: str, model: OrderFlowModel, *,
                 lineage: TrainingLineage, key: str, log_plots: bool = False,
                 holdout: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> LoggedTraining:
    """Log ``model``'s training as a run and a READY LoggedModel with the model files in place.

    The run stays RUNNING: the caller finishes it once the version exists, so a
    crash in between leaves a run that ``doctor`` recognises as an orphan.
    """
    params = training_params(ticker, model)
    run_id = store.create_run(experiment, tags={
        "ticker": ticker, "idempotency_key": key, "mlflow.runName": f"train-{ticker}",
        **lineage.tags(), **{f"package.{k}": v for k, v in package_versions().items()}})
    model_id, location = store.create_logged_model(
        experiment, name=ticker, run_id=run_id, model_type=model.config.model_type,
        params=params, tags={"ticker": ticker, "idempotency_key": key})
    folds = [(f"fold_{k}", float(v), int(fold["fold"]))
             for fold in getattr(model, "folds_", []) for k, v in fold.items() if k != "fold"]
    store.log_metrics(run_id, model.metrics_, model_id=model_id, params=params, stepped=folds)
    if log_plots:
        from ..plots import write_plots

        with tempfile.TemporaryDirectory(prefix="ticker-registry-plots-") as tmp:
            write_plots(model, Path(tmp) / "plots", *(holdout or (None, None)))
            store.log_artifacts(run_id, Path(tmp) / "plots", "plots")
    identity = {"model_id": model_id, "run_id": run_id, "artifact_uri": location}
    local = local_artifact_dir(location)
    if local is not None:  # embedded store: write in place rather than save + copy
        save_pyfunc(model, local, **identity)
    else:
        with tempfile.TemporaryDirectory(prefix="ticker-registry-model-") as tmp:
            save_pyfunc(model, Path(tmp) / "model", **identity)
            store.upload_logged_model(model_id, Path(tmp) / "model")
    store.finalize_logged_model(model_id)
    return LoggedTraining(run_id, model_id, location)
