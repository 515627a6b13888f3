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
"""

from __future__ import annotations

import functools
import json
import math
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import Config, load_config
from .exceptions import ModelFormatError, NotTrainedError, TrainingDataError
from .features import FEATURE_NAMES, FLOW_TYPES, FeatureSpec
from .heads import HEAD_SUFFIX, Head, load_head, train_head

__all__ = ["HEADS", "MODEL_FORMAT_VERSION", "MIN_TRAINING_ROWS", "OrderFlowModel",
           "package_versions", "score_predictions"]

HEADS: tuple[str, ...] = ("flow_type", "impact", "time_to_execution")
MODEL_FORMAT_VERSION = 1
MIN_TRAINING_ROWS = 30
_MANIFEST = "model.json"
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


def _flow_codes(values: Any) -> np.ndarray:
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


def score_predictions(flow_true: np.ndarray, proba: np.ndarray, impact_true: np.ndarray,
                      impact_pred: np.ndarray, tte_true: np.ndarray,
                      tte_pred: np.ndarray) -> dict[str, float]:
    """Holdout metrics of the three heads (flow classes as integer codes)."""
    from sklearn.metrics import accuracy_score, f1_score

    flow_pred = np.argmax(proba, axis=1)
    labels = list(range(len(FLOW_TYPES)))
    return {
        "flow_type_accuracy": float(accuracy_score(flow_true, flow_pred)),
        "flow_type_f1_macro": float(f1_score(flow_true, flow_pred, labels=labels,
                                             average="macro", zero_division=0)),
        "impact_mse": float(np.mean((impact_true - impact_pred) ** 2)),
        "impact_mae": float(np.mean(np.abs(impact_true - impact_pred))),
        "time_to_execution_mse": float(np.mean((tte_true - tte_pred) ** 2)),
        "time_to_execution_mae": float(np.mean(np.abs(tte_true - tte_pred))),
    }


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
    def fit(self, X: pd.DataFrame, y: pd.DataFrame) -> OrderFlowModel:
        """Train the three heads; the last ``validation_fraction`` of rows is the holdout.

        Raises
        ------
        TrainingDataError
            Too few rows, non-finite values, a single flow_type class or
            constant features.
        """
        cfg = self.config
        features = _feature_matrix(X)
        missing = [c for c in HEADS if not isinstance(y, pd.DataFrame) or c not in y.columns]
        if missing:
            raise TrainingDataError(f"labels y lack column(s) {missing}; y must be a DataFrame "
                                    f"with {', '.join(HEADS)} (see build_training_set)")
        if len(y) != len(features):
            raise TrainingDataError(f"X has {len(features)} rows but y has {len(y)} rows; give "
                                    "one label row per feature row")
        flow = _flow_codes(y["flow_type"])
        impact = y["impact"].to_numpy(dtype=np.float64)
        tte = y["time_to_execution"].to_numpy(dtype=np.float64)
        n = len(features)
        if n < MIN_TRAINING_ROWS:
            raise TrainingDataError(f"{n} training rows; at least {MIN_TRAINING_ROWS} are needed "
                                    "to train and hold out a validation window")
        if not (np.isfinite(impact).all() and np.isfinite(tte).all()):
            raise TrainingDataError("impact and time_to_execution targets must be finite numbers")
        if len(np.unique(flow)) < 2:
            raise TrainingDataError(
                f"flow_type is {FLOW_TYPES[flow[0]]!r} in all {n} rows; a classifier needs at "
                "least two classes: give a longer or more varied trade history")
        if np.all(features == features[0]):
            raise TrainingDataError(f"all {n} training rows have identical features; "
                                    "the data carry no information to learn from")
        n_valid = max(1, int(math.ceil(n * cfg.validation_fraction)))
        train, valid = slice(0, n - n_valid), slice(n - n_valid, n)
        hp = cfg.model_hyperparameters()
        Xt = features[train]

        def head(target: np.ndarray, n_classes: int) -> Head:
            return train_head(cfg.model_type, Xt, target[train], n_classes=n_classes,
                              hyperparameters=hp, seed=cfg.random_seed, n_jobs=cfg.n_jobs)

        self.heads_: dict[str, Head] = {"flow_type": head(flow, len(FLOW_TYPES)),
                                        "impact": head(impact, 0),
                                        "time_to_execution": head(tte, 0)}
        counts = np.bincount(flow[train], minlength=len(FLOW_TYPES))
        self.baselines_ = {"majority_class": int(np.argmax(counts)),
                           "median_time_to_execution": float(np.median(tte[train]))}
        self.spec_ = FeatureSpec.from_config(cfg)
        self.metrics_ = {**self._score(features[valid], flow[valid], impact[valid], tte[valid]),
                         "n_train": float(n - n_valid), "n_valid": float(n_valid)}
        self.validation_start_ = str(X.index[n - n_valid]) if isinstance(
            X.index, pd.DatetimeIndex) else None
        return self

    def score(self, X: pd.DataFrame, y: pd.DataFrame) -> dict[str, float]:
        """Metrics of this model and of its naive baselines on ``(X, y)``."""
        self._check_fitted()
        return self._score(_feature_matrix(X), _flow_codes(y["flow_type"]),
                           y["impact"].to_numpy(dtype=np.float64),
                           y["time_to_execution"].to_numpy(dtype=np.float64))

    def _score(self, features: np.ndarray, flow: np.ndarray, impact: np.ndarray,
               tte: np.ndarray) -> dict[str, float]:
        raw = self.predict_matrix(features)
        model = score_predictions(flow, raw[:, :3], impact, raw[:, 3], tte, raw[:, 4])
        n = len(features)
        majority = np.zeros((n, len(FLOW_TYPES)))
        majority[:, int(self.baselines_["majority_class"])] = 1.0
        baseline = score_predictions(flow, majority, impact, np.zeros(n), tte,
                                     np.full(n, self.baselines_["median_time_to_execution"]))
        return {**model, **{f"baseline_{k}": v for k, v in baseline.items()}}

    # ------------------------------------------------------------------ predicting
    def _check_fitted(self) -> None:
        if not hasattr(self, "heads_"):
            raise NotTrainedError("this OrderFlowModel is not trained yet; call fit(X, y) "
                                  "or load a saved version first")

    def predict_matrix(self, features: np.ndarray) -> np.ndarray:
        """Raw predictions as an (n, 5) array: three class probabilities, impact, time.

        The hot path: no pandas, no validation beyond the fitted check.
        """
        self._check_fitted()
        out = np.empty((len(features), len(FLOW_TYPES) + 2))
        out[:, :3] = self.heads_["flow_type"].predict(features)
        out[:, 3] = self.heads_["impact"].predict(features)
        out[:, 4] = self.heads_["time_to_execution"].predict(features)
        return out

    def predict(self, X: pd.DataFrame | np.ndarray) -> pd.DataFrame:
        """Predict ``flow_type``, ``p_<class>`` for each class, ``impact`` and ``time_to_execution``."""
        self._check_fitted()
        raw = self.predict_matrix(_feature_matrix(X))
        index = X.index if isinstance(X, pd.DataFrame) else None
        frame = pd.DataFrame({"flow_type": np.asarray(FLOW_TYPES, dtype=object)[
            np.argmax(raw[:, :3], axis=1)]}, index=index)
        for i, name in enumerate(FLOW_TYPES):
            frame[f"p_{name}"] = raw[:, i]
        frame["impact"] = raw[:, 3]
        frame["time_to_execution"] = raw[:, 4]
        return frame

    def feature_importances(self) -> pd.DataFrame:
        """Gain (or impurity) importance of each feature, one column per head."""
        self._check_fitted()
        return pd.DataFrame({h: self.heads_[h].importances(len(FEATURE_NAMES)) for h in HEADS},
                            index=list(FEATURE_NAMES))

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        """Write the heads in native formats plus ``model.json``; return the directory."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        suffix = HEAD_SUFFIX[self.config.model_type]
        for name, head in self.heads_.items():
            head.save(directory / f"{name}{suffix}")
        manifest = {
            "format_version": MODEL_FORMAT_VERSION,
            "model_type": self.config.model_type,
            "heads": {name: f"{name}{suffix}" for name in HEADS},
            "feature_spec": self.spec_.to_dict(),
            "config": self.config.to_dict(),
            "metrics": self.metrics_,
            "baselines": self.baselines_,
            "validation_start": self.validation_start_,
            "package_versions": package_versions(),
        }
        (directory / _MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
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
        try:
            config = Config.from_dict(manifest["config"], source=str(directory / _MANIFEST))
            spec = FeatureSpec.from_dict(manifest["feature_spec"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFormatError(f"{directory / _MANIFEST} has a bad config or feature spec: "
                                   f"{exc}") from None
        if tuple(spec.feature_names) != FEATURE_NAMES:
            raise ModelFormatError(f"model in {directory} uses features {spec.feature_names}, "
                                   "which this version of ticker-registry does not compute")
        model = cls(config)
        jobs = config.n_jobs if n_jobs is None else n_jobs
        model.heads_ = {
            name: load_head(config.model_type, directory / _safe_member(manifest["heads"][name]),
                            n_classes=len(FLOW_TYPES) if name == "flow_type" else 0, n_jobs=jobs)
            for name in HEADS
        }
        model.spec_ = spec
        model.metrics_ = {k: float(v) for k, v in manifest.get("metrics", {}).items()}
        model.baselines_ = manifest["baselines"]
        model.validation_start_ = manifest.get("validation_start")
        return model


def read_model_manifest(directory: Path) -> dict[str, Any]:
    """Read and sanity-check ``model.json`` of a saved model directory."""
    path = directory / _MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelFormatError(f"{directory} is not a saved OrderFlowModel: {_MANIFEST} is missing"
                               ) from None
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"cannot read {path}: {exc}") from None
    found = manifest.get("format_version") if isinstance(manifest, dict) else None
    if found != MODEL_FORMAT_VERSION:
        raise ModelFormatError(f"{path} has format_version {found!r}; "
                               f"this ticker-registry reads version {MODEL_FORMAT_VERSION}")
    if manifest.get("model_type") not in HEAD_SUFFIX or set(manifest.get("heads", {})) != set(HEADS):
        raise ModelFormatError(f"{path} names an unknown model type or head set")
    return manifest


def _safe_member(name: Any) -> str:
    if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
        raise ModelFormatError(f"model manifest names an unsafe file {name!r}")
    return name


def _feature_matrix(X: pd.DataFrame | np.ndarray) -> np.ndarray:
    if isinstance(X, pd.DataFrame):
        missing = [c for c in FEATURE_NAMES if c not in X.columns]
        if missing:
            raise TrainingDataError(f"feature frame lacks column(s) {missing}; build features with "
                                    "build_training_set or compute_live_features")
        matrix = X[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
    else:
        matrix = np.asarray(X, dtype=np.float64)
        if matrix.ndim == 1:
            matrix = matrix.reshape(1, -1)
        if matrix.shape[1] != len(FEATURE_NAMES):
            raise TrainingDataError(f"feature matrix has {matrix.shape[1]} columns; expected "
                                    f"{len(FEATURE_NAMES)} ({', '.join(FEATURE_NAMES)})")
    if not np.isfinite(matrix).all():
        raise TrainingDataError("features contain NaN or infinite values")
    return np.ascontiguousarray(matrix)
