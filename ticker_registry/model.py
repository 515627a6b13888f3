"""The three-head order-flow model.

:class:`OrderFlowModel` trains three heads on the same features:

- ``flow_type``: a classifier over :data:`~ticker_registry.features.FLOW_TYPES`;
- ``impact``: a regressor of the price move over the horizon (bps);
- ``time_to_execution``: a regressor of the seconds until a large order's
  notional has traded.

It follows the scikit-learn estimator contract: hyperparameters come from the
config given to the constructor, learned state ends in ``_``, ``fit`` returns
``self`` and ``predict`` raises :class:`NotTrainedError` before ``fit``.
``save`` / ``load`` use native formats only (see :mod:`ticker_registry.heads`).

``load`` verifies every head's trees before the model may serve (a crafted file is
a :class:`ModelFormatError` at load, never a prediction that hangs; see
:mod:`ticker_registry.heads`). ``save`` turns the heads into bytes in memory, writes
them and ``model.json`` to a temporary folder beside the target, then moves it into
place: a full disk (``ENOSPC``, a quota, a native library's "No space left on
device") is ONE :class:`DiskFullError` naming the folder and the bytes needed, and
the temporary folder is removed.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import Config, load_config
from .evaluation import HEADS, LOSS_METRICS, HeadEvaluation, fit_baselines, head_losses, take_head
from .exceptions import DiskFullError, ModelFormatError, NotTrainedError, TrainingDataError
from .features import FEATURE_NAMES, FLOW_TYPES, FeatureSpec
from .heads import HEAD_SUFFIX, Head
from .served import MANIFEST as _MANIFEST
from .served import (
    MODEL_FORMAT_VERSION,
    PREDICTION_COLUMNS,
    ServedModel,
    prediction_frame,
    serving_constants,
)
from .served import feature_matrix as _checked_features
from .served import predict_matrix as _served_matrix
from .served import read_manifest as read_model_manifest
from .walk_forward import HeadTrainer, config_trainer, walk_forward

__all__ = ["HEADS", "MODEL_FORMAT_VERSION", "MIN_TRAINING_ROWS", "PREDICTION_COLUMNS", "OrderFlowModel",
           "feature_matrix", "flow_codes", "manifest_config", "package_versions", "read_model_manifest"]

MIN_TRAINING_ROWS = 30
_PACKAGES = ("ticker-registry", "mlflow", "xgboost", "lightgbm", "scikit-learn", "skops", "numpy",
             "pandas")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a saved model depends on."""
    return dict(_installed_versions())


@functools.cache
def _installed_versions() -> tuple[tuple[str, str], ...]:
    # importlib.metadata scans site-packages on every call (5-10 ms; three calls per
    # registration); installed versions do not change while the process runs.
    out = []
    for name in _PACKAGES:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            out.append((name, "not installed"))
    return tuple(out)


def flow_codes(values: Any) -> np.ndarray:
    series = pd.Series(values)
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(str)
    if pd.api.types.is_numeric_dtype(series):
        codes = series.to_numpy()
        if not np.isin(codes, range(len(FLOW_TYPES))).all():
            raise TrainingDataError(f"flow_type codes must be 0..{len(FLOW_TYPES) - 1}")
        return codes.astype(np.int64)
    mapping = {name: i for i, name in enumerate(FLOW_TYPES)}
    unknown = sorted(set(series) - set(mapping))
    if unknown:
        raise TrainingDataError(f"unknown flow_type {unknown[0]!r}; use one of {list(FLOW_TYPES)}")
    return series.map(mapping).to_numpy(dtype=np.int64)


class OrderFlowModel:
    """Three heads (flow_type, impact, time_to_execution) on the order-flow features.

    Parameters
    ----------
    config
        A :class:`~ticker_registry.config.Config`, a dict or a YAML path;
        ``model_type``, the hyperparameters, ``validation_fraction``,
        ``random_seed`` and ``n_jobs`` are read from it.

    Attributes
    ----------
    heads_ : dict of head name to native model
    metrics_ : dict of holdout metrics and naive-baseline metrics
    baselines_ : dict with the training majority class and median time
    spec_ : FeatureSpec the model was trained with
    """

    def __init__(self, config: Config | dict | str | Path | None = None) -> None:
        self.config = load_config(config)

    # ------------------------------------------------------------------ training
    def fit(self, X: pd.DataFrame, y: pd.DataFrame, *, trainer: HeadTrainer | None = None
            ) -> OrderFlowModel:
        """Evaluate by purged walk-forward, then train the three heads on every row.

        ``trainer`` fits every head, in each fold and at the end (default: from scratch;
        :mod:`ticker_registry.transfer`), so the walk-forward judges what serves. Each head
        is judged out of sample against its naive baselines (:mod:`ticker_registry.evaluation`);
        a head serves with its model only where it has significant skill, otherwise with its
        best baseline. ``X`` must be indexed by event time (``build_training_set`` and the
        sample store do this).

        Raises
        ------
        TrainingDataError
            Too few rows, no event times, non-finite values or constant features.
        """
        cfg = self.config
        features = feature_matrix(X)
        labels = _label_arrays(y, len(features))
        n = len(features)
        if n < MIN_TRAINING_ROWS:
            raise TrainingDataError(f"{n} training rows; at least {MIN_TRAINING_ROWS} are needed "
                                    "to train and evaluate a model")
        if not (np.isfinite(labels["impact"]).all() and np.isfinite(labels["time_to_execution"]).all()):
            raise TrainingDataError("impact and time_to_execution targets must be finite numbers")
        if np.all(features == features[0]):
            raise TrainingDataError(f"all {n} training rows have identical features; "
                                    "the data carry no information to learn from")
        recorded = X.attrs.get("feature_spec") if isinstance(X, pd.DataFrame) else None
        self.spec_ = FeatureSpec.from_dict(recorded) if recorded else FeatureSpec.from_config(cfg)
        event_ns = _event_times(X)
        if np.any(np.diff(event_ns) < 0):
            order = np.argsort(event_ns, kind="stable")
            features, event_ns = features[order], event_ns[order]
            labels = {h: v[order] for h, v in labels.items()}
        fit_head = trainer or config_trainer(cfg)
        report = walk_forward(features, labels, event_ns, cfg, self.spec_, fit_head)
        self.evaluation_ = report.heads
        self.serving_ = {h: e.source for h, e in report.heads.items()}
        self.gate_holdout_ = report.holdout
        self.folds_ = report.folds
        self.heads_: dict[str, Head] = {head: fit_head(head, features, labels[head], event_ns)
                                        for head in HEADS}
        fitted = {h: fit_baselines(h, labels[h]) for h in HEADS}
        self.baselines_: dict[str, Any] = {
            "majority_class": int(fitted["flow_type"].values["majority"]),
            "median_time_to_execution": float(fitted["time_to_execution"].values["median"]),
            "heads": {h: {"kind": self.evaluation_[h].baseline, **fitted[h].to_dict()}
                      for h in HEADS},
        }
        self.metrics_ = {**report.metrics, "n_train": float(n), "n_valid": float(report.n_oos)}
        self.validation_start_ = report.holdout_start
        self._prepare_serving()
        return self

    def score(self, X: pd.DataFrame, y: pd.DataFrame) -> dict[str, float]:
        """Per-head losses of this version's served predictions on ``(X, y)``."""
        self._check_fitted()
        raw = self.predict_matrix(feature_matrix(X))
        labels = _label_arrays(y, len(raw))
        scores: dict[str, float] = {}
        for head in HEADS:
            scores[LOSS_METRICS[head]] = float(head_losses(head, labels[head], take_head(raw, head)).mean())
            if head == "flow_type":
                predicted = np.argmax(take_head(raw, head), axis=1)
                scores["flow_type_accuracy"] = float(np.mean(predicted == labels[head]))
        return scores

    def _prepare_serving(self) -> None:
        """Constant rows for the heads served by their baseline (the hot path reads these)."""
        self._constant = serving_constants(self.serving_, self.baselines_)

    # ------------------------------------------------------------------ predicting
    def _check_fitted(self) -> None:
        if not hasattr(self, "heads_"):
            raise NotTrainedError("this OrderFlowModel is not trained yet; call fit(X, y) "
                                  "or load a saved version first")

    def predict_matrix(self, features: np.ndarray) -> np.ndarray:
        """Raw predictions as an (n, 5) array: three class probabilities, impact, time.

        The hot path: no pandas, no validation beyond the fitted check. The
        same code serves the version in plain MLflow (:mod:`ticker_registry.served`).
        """
        self._check_fitted()
        return _served_matrix(self.heads_, self._constant, features)

    def predict(self, X: pd.DataFrame | np.ndarray) -> pd.DataFrame:
        """Predict ``flow_type``, ``p_<class>`` for each class, ``impact`` and ``time_to_execution``.

        Plus ``<head>_source`` (``model`` or ``baseline``): the columns
        ``PREDICTION_COLUMNS``, as the version's pyfunc returns them.
        """
        self._check_fitted()
        raw = self.predict_matrix(feature_matrix(X))
        return prediction_frame(raw, self.serving_, X.index if isinstance(X, pd.DataFrame) else None)

    def feature_importances(self) -> pd.DataFrame:
        """Gain (or impurity) importance of each feature, one column per head."""
        self._check_fitted()
        return pd.DataFrame({h: self.heads_[h].importances(len(FEATURE_NAMES)) for h in HEADS},
                            index=list(FEATURE_NAMES))

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        """Write the heads in native formats plus ``model.json``; return the directory.

        Through a temporary folder beside it, so a failure leaves ``directory`` as it was.

        Raises
        ------
        DiskFullError
            The disk filled up: names the folder, the bytes needed and what to do.
        """
        self._check_fitted()
        directory = Path(directory)
        suffix = HEAD_SUFFIX[self.config.model_type]
        files: dict[str, bytes] = {}
        try:
            for name, head in self.heads_.items():
                files[f"{name}{suffix}"] = head.dump()
            manifest = {
                "format_version": MODEL_FORMAT_VERSION,
                "model_type": self.config.model_type,
                "heads": {name: f"{name}{suffix}" for name in HEADS},
                "feature_spec": self.spec_.to_dict(),
                "config": self.config.to_dict(),
                "metrics": self.metrics_,
                "baselines": self.baselines_,
                "serving": self.serving_,
                "evaluation": {h: e.to_dict() for h, e in getattr(self, "evaluation_", {}).items()},
                "validation_start": self.validation_start_,
                "package_versions": package_versions(),
            }
            files[_MANIFEST] = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")
            _write_folder(directory, files)
        except Exception as exc:
            if not _is_disk_full(exc):
                raise
            needed = sum(map(len, files.values())) if _MANIFEST in files else None  # all dumped
            raise DiskFullError(_disk_full_message(directory, needed, exc)) from exc
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, n_jobs: int | None = None) -> OrderFlowModel:
        """Load a model written by :meth:`save`.

        Raises
        ------
        ModelFormatError
            If ``model.json`` is missing or unknown, or a head cannot be loaded.
        """
        directory = Path(directory)
        manifest = read_model_manifest(directory)
        config = manifest_config(manifest, str(directory / _MANIFEST))
        served = ServedModel.load(directory, n_jobs=config.n_jobs if n_jobs is None else n_jobs,
                                  manifest=manifest)
        model = cls(config)
        model.heads_ = served.heads
        model.spec_ = served.spec
        model.metrics_ = {k: float(v) for k, v in manifest.get("metrics", {}).items()}
        model.baselines_ = served.baselines
        model.validation_start_ = manifest.get("validation_start")
        model.serving_ = served.serving
        model.evaluation_ = {h: HeadEvaluation.from_dict(e)
                             for h, e in (manifest.get("evaluation") or {}).items() if h in HEADS}
        model._constant = served.constant
        return model


def manifest_config(manifest: Mapping[str, Any], where: str) -> Config:
    """The :class:`Config` recorded in a checked ``model.json`` (at ``where``).

    The loader and bundle verification both read it here.

    Raises
    ------
    ModelFormatError
        The config is not valid or names another model type than the file.
    """
    try:
        config = Config.from_dict(manifest["config"], source=where)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # ConfigError is a ValueError
        raise ModelFormatError(f"{where} has a bad config: {exc}") from None
    if config.model_type != manifest.get("model_type"):
        raise ModelFormatError(f"{where} config says model_type {config.model_type!r}, the file "
                               f"{manifest.get('model_type')!r}")
    return config


def _write_folder(directory: Path, files: Mapping[str, bytes]) -> None:
    """Write ``files`` into ``directory`` through a temporary sibling folder, removed on failure."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    stage = directory.parent / f".{directory.name}.saving-{uuid.uuid4().hex[:12]}"
    stage.mkdir()  # not tempfile.mkdtemp (0700): the folder keeps the umask's permissions
    try:
        for name, data in files.items():
            fd = os.open(stage / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
        try:
            stage.rename(directory)  # one atomic step when directory does not exist (or is empty)
        except OSError:
            if not directory.is_dir():
                raise
            for name in files:  # an existing folder: move the complete files in (no space needed)
                os.replace(stage / name, directory / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


#: Messages of native libraries (XGBoostError, LightGBMError, ...) for a full disk or quota.
_DISK_FULL_TEXT = ("no space left on device", "disk quota exceeded", "not enough space on the disk")


def _is_disk_full(exc: BaseException) -> bool:
    """``OSError(ENOSPC/EDQUOT)`` or an error whose message says so (itself or its cause)."""
    return any((isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT))
               or any(text in str(e).lower() for text in _DISK_FULL_TEXT)
               for e in (exc, exc.__cause__) if e is not None)


def _disk_full_message(directory: Path, needed: int | None, exc: BaseException) -> str:
    """One line: where, why, the space needed (or "free some space") and what to do."""
    cause = (str(exc).strip() or type(exc).__name__).splitlines()[0][:200]
    need = ("free some space" if needed is None else
            f"it needs {needed:,} bytes ({needed / 1e6:.2f} MB); free at least that much")
    return (f"no space left on the disk while saving the model to {directory} ({cause}): {need} "
            "on that disk (or use a models directory on a disk with room) and run again; nothing "
            "was left behind")


def _label_arrays(y: pd.DataFrame, n_rows: int) -> dict[str, np.ndarray]:
    """Each head's labels as an array (flow_type as class codes), one per feature row.

    Raises
    ------
    TrainingDataError
        ``y`` is not a frame with the ``HEADS`` columns or has another number of rows.
    """
    missing = [c for c in HEADS if not isinstance(y, pd.DataFrame) or c not in y.columns]
    if missing:
        raise TrainingDataError(f"labels y lack column(s) {missing}; y must be a DataFrame "
                                f"with {', '.join(HEADS)} (see build_training_set)")
    if len(y) != n_rows:
        raise TrainingDataError(f"X has {n_rows} rows but y has {len(y)} rows; give "
                                "one label row per feature row")
    return {h: flow_codes(y[h]) if h == "flow_type" else y[h].to_numpy(dtype=np.float64)
            for h in HEADS}


def _event_times(X: pd.DataFrame | np.ndarray) -> np.ndarray:
    """Event times (int64 ns) of the rows, from the frame's DatetimeIndex.

    Raises
    ------
    TrainingDataError
        Without event times the walk-forward could not purge overlapping labels.
    """
    if isinstance(X, pd.DataFrame) and isinstance(X.index, pd.DatetimeIndex):
        if X.index.hasnans:
            raise TrainingDataError("the event-time index of X has missing times (NaT); give every "
                                    "training row the time of its event")
        index = X.index if X.index.tz is not None else X.index.tz_localize("UTC")
        return index.as_unit("ns").asi8.astype(np.int64)
    raise TrainingDataError(
        f"X is indexed by {type(getattr(X, 'index', None)).__name__}, not by event time; training "
        "rows need their event times (a DatetimeIndex, as build_training_set and the sample store "
        "give) so the walk-forward can purge labels that overlap a test block")


def feature_matrix(X: pd.DataFrame | np.ndarray) -> np.ndarray:
    """The checked float64 feature matrix of ``X`` (raises ``TrainingDataError`` naming the column)."""
    return _checked_features(X, TrainingDataError)
