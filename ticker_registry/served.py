"""Serving a saved order-flow model: load its directory, predict, with numpy and pandas only.

This module and the four it imports (:mod:`.features`, :mod:`.heads`,
:mod:`.timestamps`, :mod:`.exceptions`) ship inside every model version, as
the package ``order_flow_portable`` in MLflow's ``code/`` folder: the
version's pyfunc wrapper imports nothing else of ours, so plain MLflow loads
and serves it where ticker-registry is not installed. The library serves
through the same code (:class:`~ticker_registry.model.OrderFlowModel`
delegates ``load``, ``predict_matrix`` and ``predict`` here), so the two
cannot drift. Only relative imports of those modules are allowed here.

A version serves each head either with its native model or with a constant
baseline (``serving`` in ``model.json``: ``model`` or ``baseline``, decided
by the evaluation at training time). :meth:`ServedModel.predict` accepts two
inputs, told apart by their columns:

- **features**: the ``FEATURE_NAMES`` columns, any numeric dtype (int64
  included; extra columns are ignored), one prediction per row;
- **raw trades**: ``timestamp`` (epoch s/ms/us/ns or ISO-8601), ``price``,
  ``quantity``, ``side`` (``buy``/``sell`` or +1/-1), optionally ``bid``,
  ``ask``, ``bid_size``, ``ask_size``, oldest first; the features of the
  newest trade are computed with the version's own feature spec from the last
  ``sequence_length`` trades (the quote columns of the last row are the quote
  at the event), and one prediction is returned.

A missing column, a NaN or a value of the wrong kind raises
:class:`~ticker_registry.exceptions.PredictionInputError` with one line that
names the column.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .exceptions import ModelFormatError, PredictionInputError
from .features import FEATURE_NAMES, FLOW_TYPES, LABEL_NAMES, FeatureSpec, live_feature_vector
from .heads import HEAD_SUFFIX, Head, load_head

__all__ = ["HEADS", "MANIFEST", "MODEL_FORMAT_VERSION", "PREDICTION_COLUMNS", "QUOTE_COLUMNS",
           "TRADE_COLUMNS", "ServedModel", "feature_matrix", "input_kind", "predict_matrix",
           "prediction_frame", "read_manifest", "serving_constants", "trades_feature_vector"]

#: Version of the ``model.json`` layout this code reads and writes.
MODEL_FORMAT_VERSION = 1
#: The manifest of a saved model directory.
MANIFEST = "model.json"
#: The three heads, in output order (the labels they are trained on).
HEADS: tuple[str, ...] = LABEL_NAMES
#: Columns of a prediction frame, in order.
PREDICTION_COLUMNS: tuple[str, ...] = (
    "flow_type", *(f"p_{c}" for c in FLOW_TYPES), "impact", "time_to_execution",
    *(f"{h}_source" for h in HEADS))
#: Required columns of a raw-trades input.
TRADE_COLUMNS: tuple[str, ...] = ("timestamp", "price", "quantity", "side")
#: Optional quote columns of a raw-trades input (their last row is the quote at the event).
QUOTE_COLUMNS: tuple[str, ...] = ("bid", "ask", "bid_size", "ask_size")
_SOURCES = ("model", "baseline")


# --------------------------------------------------------------------------- manifest
def read_manifest(directory: Path) -> dict[str, Any]:
    """Read and sanity-check ``model.json`` of a saved model directory.

    Raises
    ------
    ModelFormatError
        The file is missing or unreadable, or names an unknown format, model type or head set.
    """
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelFormatError(f"{directory} is not a saved OrderFlowModel: {MANIFEST} is missing"
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


def safe_member(name: Any) -> str:
    """``name`` if it is a plain file name inside the model directory, else ``ModelFormatError``."""
    if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
        raise ModelFormatError(f"model manifest names an unsafe file {name!r}")
    return name


def serving_map(manifest: Mapping[str, Any], where: str) -> dict[str, str]:
    """The manifest's per-head serving map (``model`` everywhere when absent), checked."""
    serving = manifest.get("serving") or {h: "model" for h in HEADS}
    if set(serving) != set(HEADS) or not set(serving.values()) <= set(_SOURCES):
        raise ModelFormatError(f"{where} has a bad serving map {serving!r}")
    return dict(serving)


def serving_constants(serving: Mapping[str, str],
                      baselines: Any) -> dict[str, np.ndarray | float]:
    """The constant prediction of each head served by its baseline (the hot path reads these).

    ``baselines`` is ``model.json``'s ``baselines``; its ``heads`` entry holds,
    per head, the baseline ``kind`` chosen and the fitted ``values``.
    """
    per_head: dict[str, Any] = (baselines.get("heads", {}) if isinstance(baselines, dict) else {})
    constant: dict[str, np.ndarray | float] = {}
    for head in HEADS:
        if serving.get(head) != "baseline" or head not in per_head:
            continue
        info = per_head[head]
        value = info["values"][info["kind"]]
        constant[head] = (np.asarray(value, dtype=np.float64) if head == "flow_type"
                          else float(value))
    return constant


# --------------------------------------------------------------------------- predicting
def predict_matrix(heads: Mapping[str, Head], constant: Mapping[str, np.ndarray | float],
                   features: np.ndarray) -> np.ndarray:
    """Served predictions as an (n, 5) array: three class probabilities, impact, time.

    The hot path: no pandas, no validation. A head in ``constant`` is served
    by its baseline and its model is not called.
    """
    out = np.empty((len(features), len(FLOW_TYPES) + 2))
    out[:, :3] = constant["flow_type"] if "flow_type" in constant else \
        heads["flow_type"].predict(features)
    out[:, 3] = constant["impact"] if "impact" in constant else heads["impact"].predict(features)
    out[:, 4] = constant["time_to_execution"] if "time_to_execution" in constant else \
        heads["time_to_execution"].predict(features)
    return out


def prediction_frame(raw: np.ndarray, serving: Mapping[str, str],
                     index: pd.Index | None = None) -> pd.DataFrame:
    """The ``PREDICTION_COLUMNS`` frame of an (n, 5) prediction matrix."""
    frame = pd.DataFrame({"flow_type": np.asarray(FLOW_TYPES, dtype=object)[
        np.argmax(raw[:, :3], axis=1)]}, index=index)
    for i, name in enumerate(FLOW_TYPES):
        frame[f"p_{name}"] = raw[:, i]
    frame["impact"] = raw[:, 3]
    frame["time_to_execution"] = raw[:, 4]
    for head in HEADS:
        frame[f"{head}_source"] = serving[head]
    return frame


# --------------------------------------------------------------------------- inputs
def feature_matrix(X: pd.DataFrame | np.ndarray,
                   error: type[Exception] = PredictionInputError) -> np.ndarray:
    """The C-contiguous float64 (n, features) matrix of ``X``, checked.

    ``X`` is a frame with the ``FEATURE_NAMES`` columns (any numeric dtype;
    others are ignored) or an array with that many columns. ``error`` is the
    class raised (training raises ``TrainingDataError``), with one line naming
    the first bad column.
    """
    if isinstance(X, pd.DataFrame):
        missing = [c for c in FEATURE_NAMES if c not in X.columns]
        if missing:
            raise error(f"feature frame lacks column(s) {missing}; give all of "
                        f"{', '.join(FEATURE_NAMES)} (build them with compute_live_features or "
                        "build_training_set)")
        try:
            matrix = X[list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise error(_not_numeric(X)) from None
    else:
        try:
            matrix = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise error(f"feature matrix is not numeric: {exc}") from None
        if matrix.ndim == 1:
            matrix = matrix.reshape(1, -1)
        if matrix.ndim != 2 or matrix.shape[1] != len(FEATURE_NAMES):
            raise error(f"feature matrix has shape {matrix.shape}; expected "
                        f"{len(FEATURE_NAMES)} columns ({', '.join(FEATURE_NAMES)})")
    finite = np.isfinite(matrix)
    if not finite.all():
        col = int(np.argmax(~finite.all(axis=0)))
        row = int(np.argmax(~finite[:, col]))
        raise error(f"feature {FEATURE_NAMES[col]!r} has NaN or infinite values (row {row}: "
                    f"{float(matrix[row, col])!r}); every feature must be a finite number")
    return np.ascontiguousarray(matrix)


def _not_numeric(X: pd.DataFrame) -> str:
    for name in FEATURE_NAMES:
        values = pd.to_numeric(X[name], errors="coerce")
        bad = values.isna() & X[name].notna()
        nulls = X[name].isna()
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            return (f"feature {name!r} is not numeric (row {row}: {X[name].iloc[row]!r}); every "
                    "feature must be a finite number")
        if nulls.any():
            row = int(np.argmax(nulls.to_numpy()))
            return (f"feature {name!r} has NaN or infinite values (row {row}: missing); every "
                    "feature must be a finite number")
    return "feature frame is not numeric; every feature must be a finite number"


def input_kind(frame: pd.DataFrame) -> str:
    """``"features"`` or ``"trades"``, from the columns of ``frame``.

    Raises
    ------
    PredictionInputError
        Both kinds of column, or neither.
    """
    columns = set(map(str, frame.columns))
    features = columns & set(FEATURE_NAMES)
    trades = columns & set(TRADE_COLUMNS)
    if features and trades:
        raise PredictionInputError(
            f"the input has feature columns ({', '.join(sorted(features))}) and raw-trade columns "
            f"({', '.join(sorted(trades))}); send one kind per request")
    if features:
        return "features"
    if trades:
        return "trades"
    raise PredictionInputError(
        f"the input has neither the feature columns ({', '.join(FEATURE_NAMES)}) nor raw-trade "
        f"columns ({', '.join(TRADE_COLUMNS)}, optionally {', '.join(QUOTE_COLUMNS)}); "
        f"got {sorted(columns) or 'no column of either'}")


def trades_feature_vector(trades: pd.DataFrame, spec: FeatureSpec) -> np.ndarray:
    """The feature vector of the newest trade of ``trades`` (raw trades, oldest first).

    The last ``spec.sequence_length`` rows are the window; the quote columns of
    the last row, when present and finite, are the market data at the event.
    Computed by :func:`~ticker_registry.features.live_feature_vector`, the
    library's live path.
    """
    n = spec.sequence_length
    missing = [c for c in TRADE_COLUMNS if c not in trades.columns]
    if missing:
        raise PredictionInputError(
            f"raw trades lack column(s) {missing}; give {', '.join(TRADE_COLUMNS)} (optionally "
            f"{', '.join(QUOTE_COLUMNS)}) of the last {n} trades, oldest first")
    if len(trades) < n:
        raise PredictionInputError(
            f"{len(trades)} raw trade(s) given; this version computes its features from the last "
            f"sequence_length={n} trades: send at least {n} rows, oldest first")
    window = trades.iloc[-n:]
    for name in ("timestamp", "side", "price", "quantity"):
        nulls = window[name].isna().to_numpy()
        if nulls.any():
            row = len(trades) - n + int(np.argmax(nulls))
            raise PredictionInputError(f"raw trades column {name!r} is missing or NaN in row "
                                       f"{row}; every trade needs {', '.join(TRADE_COLUMNS)}")
    for name in ("price", "quantity"):
        values = pd.to_numeric(window[name], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~(np.isfinite(values) & (values > 0))
        if bad.any():
            row = int(np.argmax(bad))
            raise PredictionInputError(
                f"raw trades column {name!r} is not a finite positive number in row "
                f"{len(trades) - n + row} ({window[name].iloc[row]!r})")
    events = window[list(TRADE_COLUMNS)].to_dict("records")
    last = window.iloc[-1]
    quote = {k: _number(last[k], k) for k in QUOTE_COLUMNS if k in window.columns}
    try:
        return live_feature_vector(events, quote or None, spec)
    except ValueError as exc:  # SampleValidationError, TimestampError: the features' own words
        raise PredictionInputError(f"raw trades: {exc}") from None


def _number(value: Any, name: str) -> float | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise PredictionInputError(f"raw trades column {name!r} is not a number in the last row "
                                   f"({value!r})") from None


# --------------------------------------------------------------------------- the model
class ServedModel:
    """A saved model directory loaded for serving: native heads, baselines, feature spec.

    Build it with :meth:`load`; the library's ``OrderFlowModel.load`` does the
    same and adds what training and evaluation need.
    """

    def __init__(self, model_type: str, heads: dict[str, Head], spec: FeatureSpec,
                 serving: dict[str, str], baselines: Any) -> None:
        self.model_type = model_type
        self.heads = heads
        self.spec = spec
        self.serving = serving
        self.baselines = baselines
        self.constant = serving_constants(serving, baselines)

    @classmethod
    def load(cls, directory: str | Path, *, n_jobs: int | None = None,
             manifest: dict[str, Any] | None = None) -> ServedModel:
        """Load the heads, spec and serving map of a model directory written by ``save``.

        ``n_jobs`` defaults to the version's configured threads per head.

        Raises
        ------
        ModelFormatError
            A missing or unknown ``model.json``, a bad spec or serving map, a head that does
            not load.
        """
        directory = Path(directory)
        manifest = read_manifest(directory) if manifest is None else manifest
        where = str(directory / MANIFEST)
        try:
            spec = FeatureSpec.from_dict(manifest["feature_spec"])
            config = manifest.get("config") or {}
            jobs = int(config.get("n_jobs", 1)) if n_jobs is None else n_jobs
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFormatError(f"{where} has a bad config or feature spec: {exc}") from None
        if tuple(spec.feature_names) != FEATURE_NAMES:
            raise ModelFormatError(f"model in {directory} uses features {spec.feature_names}, "
                                   "which this version of ticker-registry does not compute")
        model_type = manifest["model_type"]
        heads = {name: load_head(model_type, directory / safe_member(manifest["heads"][name]),
                                 n_classes=len(FLOW_TYPES) if name == "flow_type" else 0,
                                 n_jobs=jobs)
                 for name in HEADS}
        if "baselines" not in manifest:
            raise ModelFormatError(f"{where} has no baselines")
        return cls(model_type, heads, spec, serving_map(manifest, where), manifest["baselines"])

    def predict_matrix(self, features: np.ndarray) -> np.ndarray:
        """Served predictions of a C-contiguous float64 feature matrix, as an (n, 5) array."""
        return predict_matrix(self.heads, self.constant, features)

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The ``PREDICTION_COLUMNS`` frame of a features frame or of raw trades (see module)."""
        if input_kind(frame) == "trades":
            return self.predict_trades(frame)
        return self.predict_features(frame)

    def predict_features(self, frame: pd.DataFrame | np.ndarray) -> pd.DataFrame:
        """One prediction per row of a features frame (its index is kept)."""
        raw = self.predict_matrix(feature_matrix(frame))
        return prediction_frame(raw, self.serving,
                                frame.index if isinstance(frame, pd.DataFrame) else None)

    def predict_trades(self, trades: pd.DataFrame) -> pd.DataFrame:
        """One prediction: the newest trade's event, from the last ``sequence_length`` trades."""
        vector = trades_feature_vector(trades, self.spec)
        return prediction_frame(self.predict_matrix(vector.reshape(1, -1)), self.serving)
