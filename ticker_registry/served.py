"""Serving a saved order-flow model: load its directory, predict, with numpy and pandas only.

This module and those it imports, directly or not (``store.packaging.SHIPPED_MODULES``),
ship inside every model version, as the package ``order_flow_portable``
in MLflow's ``code/`` folder: the version's pyfunc wrapper imports nothing else of ours, so
plain MLflow loads and serves it where ticker-registry is not installed. The library serves
through the same code (:class:`~ticker_registry.model.OrderFlowModel` delegates ``load``,
``predict_matrix`` and ``predict`` here), so the two cannot drift. Only relative imports of
those modules are allowed here.

A version serves each head either with its native model or with a constant baseline
(``serving`` in ``model.json``: ``model`` or ``baseline``, decided by the evaluation at
training time). :meth:`ServedModel.predict` accepts two inputs, told apart by their columns:

- **features**: the ``FEATURE_NAMES`` columns, any numeric dtype (int64 included; extra
  columns are ignored), one prediction per row;
- **raw trades**: ``timestamp`` (epoch s/ms/us/ns or ISO-8601), ``price``, ``quantity``,
  ``side`` (``buy``/``sell`` or +1/-1), optionally ``bid``, ``ask``, ``bid_size``,
  ``ask_size``, oldest first; the features of the newest trade are computed with the
  version's own feature spec from the last ``sequence_length`` trades (the quote columns
  of the last row are the quote at the event), and one prediction is returned.

A missing column, a NaN or a value of the wrong kind raises
:class:`~ticker_registry.exceptions.PredictionInputError` with one line that names the
column.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .exceptions import ModelFormatError, PredictionInputError
from .features import FEATURE_NAMES, FLOW_TYPES, LABEL_NAMES, FeatureSpec, live_feature_vector
from .heads import HEAD_SUFFIX, Head, load_head

__all__ = ["HEADS", "MANIFEST", "MANIFEST_FIELDS", "MODEL_FORMAT_VERSION", "PREDICTION_COLUMNS",
           "QUOTE_COLUMNS", "TRADE_COLUMNS", "ServedModel", "check_manifest", "feature_matrix",
           "input_kind", "predict_matrix", "prediction_frame", "read_manifest", "serving_constants",
           "trades_feature_vector"]

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
#: The fields of ``model.json``; a file with any other is refused (a trust list or code
#: never travels in it: the loader takes those from this package).
MANIFEST_FIELDS = frozenset({"format_version", "model_type", "heads", "feature_spec", "config",
                             "metrics", "baselines", "validation_start", "package_versions",
                             "serving", "evaluation"})
_SOURCES = ("model", "baseline")
#: Where each head sits in an (n, 5) prediction matrix: class probabilities, impact, time.
_COLUMNS: dict[str, slice | int] = {"flow_type": slice(0, len(FLOW_TYPES)),
                                    "impact": len(FLOW_TYPES), "time_to_execution": len(FLOW_TYPES) + 1}


# --------------------------------------------------------------------------- manifest
def read_manifest(directory: Path) -> dict[str, Any]:
    """Read ``model.json`` of a saved model directory, checked by :func:`check_manifest`.

    Raises
    ------
    ModelFormatError
        The file is missing, unreadable or fails :func:`check_manifest`.
    """
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelFormatError(f"{directory} is not a saved OrderFlowModel: {MANIFEST} is missing"
                               ) from None
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"cannot read {path}: {exc}") from None
    return check_manifest(manifest, str(path))


def check_manifest(doc: Any, where: str) -> dict[str, Any]:
    """``doc``, the parsed ``model.json`` at ``where``, if it is one this code can serve.

    The one check of ``model.json``, made when a model directory is loaded and when a
    bundle is verified (before any of its code or trees are touched).

    Returns ``doc`` with its ``serving`` map filled in (``model`` for every head when
    absent); raises ``ModelFormatError`` naming ``where`` and the first problem found.
    """
    def bad(what: str) -> ModelFormatError:
        return ModelFormatError(f"{where} {what}")

    if not isinstance(doc, dict):
        raise bad("is not a JSON object")
    unknown = sorted(set(doc) - MANIFEST_FIELDS)
    if unknown:
        raise bad(f"has unknown field(s) {unknown}; our loader takes its trust lists and code "
                  "from ticker-registry itself, never from a model file")
    if doc.get("format_version") != MODEL_FORMAT_VERSION:
        raise bad(f"has format_version {doc.get('format_version')!r}; this ticker-registry reads "
                  f"version {MODEL_FORMAT_VERSION}")
    model_type = doc.get("model_type")
    if not isinstance(model_type, str) or model_type not in HEAD_SUFFIX:
        raise bad(f"names an unknown model_type {model_type!r}; expected one of {sorted(HEAD_SUFFIX)}")
    files = {h: f"{h}{HEAD_SUFFIX[model_type]}" for h in HEADS}
    if doc.get("heads") != files:
        raise bad(f"names head files {str(doc.get('heads'))[:200]}; expected {files}")
    if not isinstance(doc.get("config"), dict):
        raise bad("has no config")
    spec = doc.get("feature_spec")
    names = tuple(spec.get("feature_names") or ()) if isinstance(spec, dict) else ()
    if names != FEATURE_NAMES:
        raise bad(f"uses features {str(names)[:200]}, which this version of ticker-registry "
                  "does not compute")
    if not isinstance(doc.get("metrics"), dict) or not all(
            _is_number(v, finite=False) for v in doc["metrics"].values()):
        raise bad("'metrics' is not a map of numbers")
    baselines = doc.get("baselines")
    if not isinstance(baselines, dict) or not (
            {"majority_class", "median_time_to_execution"} <= set(baselines)
            <= {"majority_class", "median_time_to_execution", "heads"}):
        raise bad("'baselines' is malformed")
    serving = doc.get("serving", {h: "model" for h in HEADS})
    if (not isinstance(serving, dict) or set(serving) != set(HEADS)
            or not set(serving.values()) <= set(_SOURCES)):
        raise bad(f"'serving' must map each head to 'model' or 'baseline', got {str(serving)[:200]!r}")
    per_head = baselines.get("heads")
    for head in (h for h in HEADS if serving[h] == "baseline"):
        info = per_head.get(head) if isinstance(per_head, dict) else None
        kind = info.get("kind") if isinstance(info, dict) else None
        values = info.get("values") if isinstance(info, dict) else None
        value = values.get(kind) if isinstance(values, dict) and isinstance(kind, str) else None
        if head == "flow_type":
            ok = (isinstance(value, list) and len(value) == len(FLOW_TYPES)
                  and all(_is_number(p) and 0 <= p <= 1 for p in value) and abs(sum(value) - 1) < 1e-6)
        else:
            ok = _is_number(value) and value is not None and abs(value) < 1e12
        if not ok:
            raise bad(f"baseline of {head} ({kind!r}: {str(value)[:80]}) is not a valid constant "
                      "prediction (the head is served by its baseline)")
    return {**doc, "serving": dict(serving)}


def _is_number(value: Any, *, finite: bool = True) -> bool:
    """An int or float, not a bool (a JSON number), and finite unless ``finite=False``."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and (not finite or math.isfinite(value)))


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
    for head, columns in _COLUMNS.items():
        out[:, columns] = constant[head] if head in constant else heads[head].predict(features)
    return out


def prediction_frame(raw: np.ndarray, serving: Mapping[str, str],
                     index: pd.Index | None = None) -> pd.DataFrame:
    """The ``PREDICTION_COLUMNS`` frame of an (n, 5) prediction matrix."""
    probabilities = raw[:, _COLUMNS["flow_type"]]
    frame = pd.DataFrame({"flow_type": np.asarray(FLOW_TYPES, dtype=object)[
        np.argmax(probabilities, axis=1)]}, index=index)
    for i, name in enumerate(FLOW_TYPES):
        frame[f"p_{name}"] = probabilities[:, i]
    for head in HEADS[1:]:
        frame[head] = raw[:, _COLUMNS[head]]
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
    """``"features"`` or ``"trades"``, from the columns of ``frame`` (both or neither:
    ``PredictionInputError``)."""
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

    The last ``spec.sequence_length`` rows are the window; the quote columns of the last row,
    when present and finite, are the market data at the event. Computed by
    :func:`~ticker_registry.features.live_feature_vector`, the library's live path.
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

    Build it with :meth:`load`; the library's ``OrderFlowModel.load`` does the same and adds
    what training and evaluation need.
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
        manifest = (read_manifest(directory) if manifest is None
                    else check_manifest(manifest, str(directory / MANIFEST)))
        try:
            spec = FeatureSpec.from_dict(manifest["feature_spec"])
            jobs = int(manifest["config"].get("n_jobs", 1)) if n_jobs is None else n_jobs
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFormatError(f"{directory / MANIFEST} has a bad config or feature spec: "
                                   f"{exc}") from None
        model_type = manifest["model_type"]
        heads = {h: load_head(model_type, directory / manifest["heads"][h], n_jobs=jobs,
                              n_classes=len(FLOW_TYPES) if h == "flow_type" else 0) for h in HEADS}
        return cls(model_type, heads, spec, dict(manifest["serving"]), manifest["baselines"])

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
