"""One training as MLflow records it: a run, and the LoggedModel the run produced.

The run carries the params (feature spec, hyperparameters, evaluation
settings), the headline metrics and the per-fold walk-forward figures as
stepped metrics (step = fold: the UI plots them); the LoggedModel carries the
same params and headline metrics and holds the pyfunc model directory
(:mod:`ticker_registry.store.packaging`). The sha256 of each native model file
is taken as it is written (:func:`native_digests`); the version records it in
its tag ``native.sha256`` and ``doctor`` checks the store's copy against it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ..model import OrderFlowModel, package_versions
from ..records import TrainingLineage
from .packaging import NATIVE_SUBDIR, local_artifact_dir, save_pyfunc

if TYPE_CHECKING:
    from .adapter import MlflowStore

__all__ = ["NATIVE_SHA256_TAG", "LoggedTraining", "log_training", "log_tuning",
           "native_digests", "native_sha256_mismatch", "native_sha256_tag"]

#: The version tag holding the sha256 of each native model file (JSON ``{path: hexdigest}``).
NATIVE_SHA256_TAG = "native.sha256"
#: MLflow's limit on a model version tag's value.
_TAG_LIMIT = 5000


@dataclass(frozen=True)
class LoggedTraining:
    """The run of a training and the LoggedModel it produced (its files at ``artifact_location``)."""

    run_id: str
    model_id: str
    artifact_location: str
    native_sha256: str = ""


def native_digests(folder: Path) -> dict[str, str]:
    """The sha256 of every file under a native model folder: ``{relative posix path: hex}``.

    The one rule for what :data:`NATIVE_SHA256_TAG` records and ``doctor`` verifies.
    """
    folder = Path(folder)
    digests = {}
    for file in sorted(folder.rglob("*")):
        if file.is_file():
            sha = hashlib.sha256()
            with file.open("rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    sha.update(block)
            digests[file.relative_to(folder).as_posix()] = sha.hexdigest()
    return digests


def native_sha256_tag(digests: dict[str, str]) -> str:
    """The value of :data:`NATIVE_SHA256_TAG` for ``digests``: the JSON of the per-file digests,
    or, should it not fit MLflow's 5000 characters, ``{"*": one digest over the sorted pairs}``."""
    text = json.dumps(digests, sort_keys=True, separators=(",", ":"))
    if len(text) <= _TAG_LIMIT:
        return text
    return json.dumps({"*": _combined_digest(digests)})


def native_sha256_mismatch(folder: Path, tag: str) -> str:
    """How the native files in ``folder`` differ from their :data:`NATIVE_SHA256_TAG`; "" if alike.

    Raises
    ------
    ValueError
        ``tag`` is not a value :func:`native_sha256_tag` writes.
    """
    expected = json.loads(tag)
    if not isinstance(expected, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in expected.items()):
        raise ValueError(f"{NATIVE_SHA256_TAG} {tag[:80]!r} is not a JSON object of digests")
    actual = native_digests(folder)
    if set(expected) == {"*"}:
        return "" if _combined_digest(actual) == expected["*"] else \
            "native files differ from their sha256 recorded at registration"
    missing = sorted(set(expected) - set(actual))
    changed = sorted(k for k in expected if k in actual and actual[k] != expected[k])
    extra = sorted(set(actual) - set(expected))
    parts = [f"{label} {', '.join(names)}" for label, names in
             (("missing", missing), ("sha256 differs", changed), ("unexpected", extra)) if names]
    return f"native files differ from registration: {'; '.join(parts)}" if parts else ""


def _combined_digest(digests: dict[str, str]) -> str:
    """One sha256 over the sorted ``(path, digest)`` pairs (the fallback of a long tag)."""
    return hashlib.sha256("\n".join(f"{k}\t{digests[k]}" for k in sorted(digests))
                          .encode()).hexdigest()


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
    try:
        if local is not None:  # embedded store: write in place rather than save + copy
            save_pyfunc(model, local, **identity)
            digests = native_digests(local / NATIVE_SUBDIR)
        else:
            with tempfile.TemporaryDirectory(prefix="ticker-registry-model-") as tmp:
                save_pyfunc(model, Path(tmp) / "model", **identity)
                digests = native_digests(Path(tmp) / "model" / NATIVE_SUBDIR)
                store.upload_logged_model(model_id, Path(tmp) / "model")
    except BaseException:
        # a full disk, an interrupt: no half-written model stays behind, and the run and
        # LoggedModel say FAILED (doctor and `mlflow gc` know what to do with them)
        if local is not None:
            shutil.rmtree(local, ignore_errors=True)
        with contextlib.suppress(Exception):
            store.finalize_logged_model(model_id, "FAILED")
            store.finish_run(run_id, "FAILED")
        raise
    store.finalize_logged_model(model_id)
    return LoggedTraining(run_id, model_id, location, native_sha256_tag(digests))


def log_tuning(store: MlflowStore, experiment: str, ticker: str, *, params: dict[str, str],
               metrics: dict[str, float], trial_scores: list[tuple[int, float]],
               table: pd.DataFrame) -> str:
    """Log one tuning as a finished run ``tune-<ticker>``: params, metrics, the score of each
    trial as the stepped metric ``trial_score`` (step = trial) and the trial table as the
    artifact ``tuning/trials.csv``. Returns the run id."""
    run_id = store.create_run(experiment, tags={"ticker": ticker, "kind": "tuning",
                                                "mlflow.runName": f"tune-{ticker}"})
    try:
        store.log_metrics(run_id, metrics, params=params,
                          stepped=[("trial_score", score, n) for n, score in trial_scores])
        with tempfile.TemporaryDirectory(prefix="ticker-registry-tuning-") as tmp:
            table.to_csv(Path(tmp) / "trials.csv", index=False)
            store.log_artifacts(run_id, Path(tmp), "tuning")
    except BaseException:
        with contextlib.suppress(Exception):
            store.finish_run(run_id, "FAILED")
        raise
    store.finish_run(run_id)
    return run_id
