"""Order-flow features and labels: pure functions, batch and live.

Every function here takes arrays or frames and returns new ones: no I/O, no clock, no
globals, no mutation of inputs. Window sizes and thresholds travel in a frozen
:class:`FeatureSpec`, saved with each model version, so a version always computes its
features the same way. This file ships inside each version: it imports only
:mod:`.exceptions`, :mod:`.timestamps` and :mod:`.live_features` of the package.

The feature window of an event is the ``sequence_length`` trades ending at (and
including) that trade; nothing after the event is read. Batch and live windows go
through the same checks and kernels, rolling sums accumulated in a fixed order, so
:func:`compute_live_features` on a window returns bit-for-bit what
:func:`build_training_set` gives for the same event; a live window of plain trade dicts
is computed by the one-row form of the kernels in Python floats
(:mod:`.live_features`, the hot path), with the same operations in the same order. The
definitions are tabled in the README ("Features and labels").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from .exceptions import SampleValidationError, TradeDataError, TrainingDataError
from .live_features import MARKET_KEYS as _MARKET_KEYS
from .live_features import MIN_DURATION_S as _MIN_DURATION_S
from .live_features import NO_QUOTE, live_quote, plain_window, quote_row, to_side, window_row
from .live_features import NS as _NS
from .timestamps import to_epoch_ns

if TYPE_CHECKING:  # only for annotations: this module must import nothing else of the package
    from .config import Config

__all__ = ["FEATURE_NAMES", "FLOW_TYPES", "LABEL_NAMES", "FeatureSpec", "auto_large_order_threshold",
           "build_training_set", "compute_live_features", "flow_class", "live_feature_vector"]

#: Feature columns, in the order every model sees them.
FEATURE_NAMES: tuple[str, ...] = (
    # the trade window (columns 0-10)
    "signed_volume_imbalance", "buy_trade_share", "trade_intensity", "realized_volatility_bps",
    "vwap_deviation_bps", "window_return_bps", "large_order_count", "large_order_share",
    "time_since_large_order_s", "log_mean_notional", "last_side",
    # the quote at the event (columns 11-14; zero without market data)
    "spread_bps", "mid_deviation_bps", "book_imbalance", "has_market_data",
)
_WINDOW_COLUMNS = len(FEATURE_NAMES) - len(_MARKET_KEYS)  # the trade-window columns (0-10)
#: flow_type classes; the class code is the position in this tuple.
FLOW_TYPES: tuple[str, ...] = ("sell_pressure", "balanced", "buy_pressure")
#: The labels, one per model head, in output order (``evaluation.HEADS`` is this tuple).
LABEL_NAMES: tuple[str, ...] = ("flow_type", "impact", "time_to_execution")

#: Share of trades whose notional is at least the automatic large-order threshold.
AUTO_THRESHOLD_QUANTILE = 0.95


@dataclass(frozen=True)
class FeatureSpec:
    """The frozen recipe of features and labels, saved with every model version."""

    sequence_length: int = 20
    prediction_horizon: float = 5.0
    large_order_threshold: float = 1000.0
    flow_band: float = 0.2
    feature_names: tuple[str, ...] = FEATURE_NAMES
    flow_types: tuple[str, ...] = FLOW_TYPES
    version: int = 1

    @classmethod
    def from_config(cls, config: Config, *, price: np.ndarray | None = None,
                    quantity: np.ndarray | None = None) -> FeatureSpec:
        """The spec of ``config``; ``large_order_threshold: auto`` is set from the trades given
        (``TrainingDataError`` if none are)."""
        threshold = config.large_order_threshold
        if threshold == "auto":
            if price is None or quantity is None:
                raise TrainingDataError(
                    "large_order_threshold is 'auto', which is set from a ticker's own trades, "
                    "but no trades were given here; train from trades first (the version's spec "
                    "then records the value) or set large_order_threshold to a number")
            threshold = auto_large_order_threshold(price, quantity)
        return cls(sequence_length=config.sequence_length,
                   prediction_horizon=float(config.prediction_horizon),
                   large_order_threshold=float(threshold), flow_band=float(config.flow_band))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        return cls(**{**data, "feature_names": tuple(data.get("feature_names", FEATURE_NAMES)),
                      "flow_types": tuple(data.get("flow_types", FLOW_TYPES))})

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "feature_names": list(self.feature_names),
                "flow_types": list(self.flow_types)}

    @property
    def horizon_ns(self) -> int:
        return int(round(self.prediction_horizon * 60 * _NS))


def _spec(config: Config | FeatureSpec, price: np.ndarray | None = None,
          quantity: np.ndarray | None = None) -> FeatureSpec:
    return config if isinstance(config, FeatureSpec) else FeatureSpec.from_config(
        config, price=price, quantity=quantity)


def auto_large_order_threshold(price: np.ndarray, quantity: np.ndarray) -> float:
    """The ``large_order_threshold: auto`` rule: a large order is the size of the largest 5 %.

    The 95th percentile of per-trade notional (quote currency), rounded to the
    nearest (in log scale) of 1, 2 or 5 times a power of ten, so it is stable
    across retrainings on overlapping data and readable in the spec.
    """
    notional = np.asarray(price, dtype=np.float64) * np.asarray(quantity, dtype=np.float64)
    notional = notional[np.isfinite(notional) & (notional > 0)]
    if notional.size == 0:
        raise TrainingDataError("no trade with a positive notional to set large_order_threshold "
                                "from; give trades with positive price and quantity")
    raw = float(np.quantile(notional, AUTO_THRESHOLD_QUANTILE))
    steps = np.array([1.0, 2.0, 5.0, 10.0]) * 10.0 ** np.floor(np.log10(raw))
    return float(steps[int(np.argmin(np.abs(np.log(steps) - np.log(raw))))])


def flow_class(share: Any, flow_band: float) -> Any:
    """The ``FLOW_TYPES`` code of a signed-volume share (or of each): the rule of the
    ``flow_type`` label, of the persistence baseline and of labels made live."""
    return np.where(share > flow_band, 2, np.where(share < -flow_band, 0, 1))


def horizon_labels(share: Any, price: Any, last_price: Any, wait_s: Any, horizon_s: float,
                   flow_band: float) -> tuple[Any, Any, Any]:
    """``(flow code, impact bps, time_to_execution s)`` of events (arrays or scalars) from
    what their horizon saw: the signed share of the volume traded, the last price (NaN: no
    trade) and the wait until the large-order notional traded (NaN: not within the horizon).
    The one label rule of training sets and of labels made live (the strategy)."""
    with np.errstate(invalid="ignore"):
        impact = np.where(np.isnan(last_price), 0.0, np.log(last_price / price) * 1e4)
    tte = np.where(np.isnan(wait_s), horizon_s, np.minimum(wait_s, horizon_s))
    return flow_class(share, flow_band), impact, tte


# --------------------------------------------------------------------------- kernels
def _rolling_sum(x: np.ndarray, n: int) -> np.ndarray:
    """Sum over each length-``n`` window, accumulated left to right (exact order).

    Both branches add the same values in the same order, so a live window (one row) gets
    bit-for-bit the batch result; the one-row branch avoids numpy's per-call overhead."""
    if len(x) == n:
        values = x.tolist()
        acc = values[0]
        for v in values[1:]:
            acc += v
        return np.array([acc])
    w = sliding_window_view(x, n)
    acc = w[:, 0].copy()
    for j in range(1, n):
        acc += w[:, j]
    return acc


def _window_features(ts_ns: np.ndarray, price: np.ndarray, qty: np.ndarray, side: np.ndarray,
                     spec: FeatureSpec) -> np.ndarray:
    """Features of every event that has a full window, as an (events, features) array.

    Row ``k`` is the event at trade index ``k + sequence_length - 1``; the market-data
    columns are left at zero (see :func:`_apply_market`)."""
    n = spec.sequence_length
    m = len(price) - n + 1
    out = np.zeros((m, len(FEATURE_NAMES)), dtype=np.float64, order="F")
    notional = price * qty
    end = slice(n - 1, None)
    qty_sum = _rolling_sum(qty, n)
    notional_sum = _rolling_sum(notional, n)
    out[:, 0] = _rolling_sum(side * qty, n) / qty_sum
    out[:, 1] = _rolling_sum((side > 0).astype(np.float64), n) / n
    duration = (ts_ns[end] - ts_ns[: m]).astype(np.float64) / _NS
    out[:, 2] = (n - 1) / np.maximum(duration, _MIN_DURATION_S)
    log_price = np.log(price)
    returns = np.diff(log_price)
    out[:, 3] = np.sqrt(_rolling_sum(returns * returns, n - 1)) * 1e4
    out[:, 4] = (price[end] / (notional_sum / qty_sum) - 1.0) * 1e4  # against the window's VWAP
    out[:, 5] = (log_price[end] - log_price[: m]) * 1e4
    large = notional >= spec.large_order_threshold
    out[:, 6] = _rolling_sum(large.astype(np.float64), n)
    out[:, 7] = _rolling_sum(np.where(large, notional, 0.0), n) / notional_sum
    positions = np.arange(len(price))
    last_large = np.maximum.accumulate(np.where(large, positions, -1))[end]
    in_window = last_large >= positions[: m]
    since = (ts_ns[end] - ts_ns[np.where(in_window, last_large, positions[: m])]).astype(np.float64)
    out[:, 8] = np.where(in_window, since / _NS, duration)
    out[:, 9] = np.log(notional_sum / n)
    out[:, 10] = side[end]
    return out


def _apply_market(out: np.ndarray, price: np.ndarray, bid: np.ndarray, ask: np.ndarray,
                  bid_size: np.ndarray, ask_size: np.ndarray) -> None:
    """Fill the market-data columns where a quote is known (bid and ask finite)."""
    known = np.isfinite(bid) & np.isfinite(ask) & (bid > 0) & (ask >= bid)
    mid = np.where(known, (bid + ask) / 2.0, 1.0)
    out[:, 11] = np.where(known, (ask - bid) / mid * 1e4, 0.0)
    out[:, 12] = np.where(known, (price / mid - 1.0) * 1e4, 0.0)
    depth = bid_size + ask_size
    sizes = known & np.isfinite(depth) & (depth > 0)
    out[:, 13] = np.where(sizes, (bid_size - ask_size) / np.where(sizes, depth, 1.0), 0.0)
    out[:, 14] = known.astype(np.float64)


# --------------------------------------------------------------------------- batch
def _trade_arrays(trades: pd.DataFrame) -> tuple[np.ndarray, ...]:
    missing = [c for c in ("timestamp", "price", "quantity", "side") if c not in trades.columns]
    if missing:
        raise TradeDataError(
            f"trades frame lacks column(s) {missing}; expected the canonical schema "
            "timestamp, price, quantity, side (use ticker_registry.read_trades)")
    ts_ns = pd.to_datetime(trades["timestamp"], utc=True).to_numpy("datetime64[ns]").view(np.int64)
    price, qty, side = (trades[c].to_numpy(dtype=np.float64) for c in ("price", "quantity", "side"))
    return _checked_trades(ts_ns, price, qty, side, TradeDataError, "trade")


def _checked_trades(ts_ns: np.ndarray, price: np.ndarray, qty: np.ndarray, side: np.ndarray,
                    error: type[Exception], what: str) -> tuple[np.ndarray, ...]:
    """The trades, once checked: in time order, price and quantity finite and positive, side ±1.

    The one rule of batch (``error``: TradeDataError) and live (SampleValidationError) trades."""
    if len(ts_ns) > 1 and np.any(np.diff(ts_ns) < 0):
        raise error(f"{what}s are not sorted by timestamp; sort them (read_trades does)")
    ok = np.isfinite(price) & (price > 0) & np.isfinite(qty) & (qty > 0) & (np.abs(side) == 1)
    if not ok.all():
        row = int(np.argmin(ok))
        raise error(f"{what} row {row} is invalid (price={price[row]!r}, quantity={qty[row]!r}, "
                    f"side={side[row]!r}); price and quantity must be finite and positive, "
                    "side +1 or -1")
    return ts_ns, price, qty, side


def _labels(ts_ns: np.ndarray, price: np.ndarray, qty: np.ndarray, side: np.ndarray,
            events: np.ndarray, spec: FeatureSpec) -> pd.DataFrame:
    horizon_s = spec.horizon_ns / _NS
    end = np.searchsorted(ts_ns, ts_ns[events] + spec.horizon_ns, side="right") - 1
    signed = np.concatenate(([0.0], np.cumsum(side * qty)))
    volume = np.concatenate(([0.0], np.cumsum(qty)))
    future_volume = volume[end + 1] - volume[events + 1]
    has_future = future_volume > 0
    share = np.where(has_future, (signed[end + 1] - signed[events + 1])
                     / np.where(has_future, future_volume, 1.0), 0.0)
    notional = np.concatenate(([0.0], np.cumsum(price * qty)))
    target = notional[events + 1] + spec.large_order_threshold
    filled = np.searchsorted(notional, target, side="left") - 1  # trade index reaching target
    reached = filled < len(ts_ns)
    filled = np.minimum(filled, len(ts_ns) - 1)
    wait = (ts_ns[filled] - ts_ns[events]).astype(np.float64) / _NS
    flow, impact, tte = horizon_labels(share, price[events],
                                       np.where(end > events, price[end], np.nan),
                                       np.where(reached, wait, np.nan), horizon_s, spec.flow_band)
    flow_type = pd.Categorical.from_codes(flow, categories=list(FLOW_TYPES))
    return pd.DataFrame(dict(zip(LABEL_NAMES, (flow_type, impact, tte), strict=True)))


def build_training_set(trades: pd.DataFrame, config: Config | FeatureSpec,
                       market: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features ``X`` and labels ``y`` for every event with a full past window and horizon.

    The public :func:`ticker_registry.build_training_set` (documented there, once) calls
    this with ``config`` already a :class:`Config` or a model's :class:`FeatureSpec`.
    """
    ts_ns, price, qty, side = _trade_arrays(trades)
    spec = _spec(config, price, qty)
    n = spec.sequence_length
    if len(price) < n:
        raise TrainingDataError(f"only {len(price)} trades; at least sequence_length={n} trades "
                                f"plus a {spec.prediction_horizon:g}-minute horizon are needed "
                                "to build one training row")
    last_event = np.searchsorted(ts_ns, ts_ns[-1] - spec.horizon_ns, side="right") - 1
    if last_event < n - 1:
        raise TrainingDataError(
            f"the {len(price)} trades span {(ts_ns[-1] - ts_ns[0]) / _NS / 60:.2f} minutes; "
            f"training rows need {n} trades of history plus a {spec.prediction_horizon:g}-minute "
            "horizon after each event: give a longer trade history")
    feats = _window_features(ts_ns, price, qty, side, spec)[: last_event - n + 2]
    events = np.arange(n - 1, last_event + 1)
    if market is not None:
        _apply_market(feats, price[events], *_market_asof(market, ts_ns[events]))
    index = pd.DatetimeIndex(ts_ns[events].view("datetime64[ns]"), name="timestamp").tz_localize("UTC")
    X = pd.DataFrame(feats, columns=list(FEATURE_NAMES), index=index)
    y = _labels(ts_ns, price, qty, side, events, spec).set_axis(index)
    X.attrs["feature_spec"] = spec.to_dict()  # the recipe, with an 'auto' threshold resolved
    return X, y


def _market_asof(market: pd.DataFrame, event_ns: np.ndarray) -> tuple[np.ndarray, ...]:
    missing = [c for c in ("timestamp", *_MARKET_KEYS[:2]) if c not in market.columns]
    if missing:
        raise TradeDataError(f"market data lacks column(s) {missing}; expected timestamp, bid, "
                             "ask and optionally bid_size, ask_size")
    m_ns = pd.to_datetime(market["timestamp"], utc=True).to_numpy("datetime64[ns]").view(np.int64)
    order = np.argsort(m_ns, kind="stable")
    m_ns = m_ns[order]
    pos = np.searchsorted(m_ns, event_ns, side="right") - 1
    known, pos = pos >= 0, np.maximum(pos, 0)
    absent = np.full(len(m_ns), np.nan)
    return tuple(np.where(known, (market[key].to_numpy(np.float64)[order] if key in market.columns
                                  else absent)[pos], np.nan) for key in _MARKET_KEYS)


# --------------------------------------------------------------------------- live
def _event_arrays(order_events: Sequence[Mapping[str, Any]] | pd.DataFrame,
                  n: int) -> tuple[np.ndarray, ...]:
    if isinstance(order_events, pd.DataFrame):
        events: Any = order_events.iloc[-n:]
    else:
        events = order_events[-n:] if isinstance(order_events, list) else list(order_events)[-n:]
    if len(events) < n:
        raise SampleValidationError(
            f"{len(events)} order events given; a live window needs the last "
            f"sequence_length={n} trades (dicts with timestamp, price, quantity, side)")
    if isinstance(events, pd.DataFrame):
        return _trade_arrays(events)
    ts = np.empty(n, dtype=np.int64)
    price, qty, side = np.empty(n), np.empty(n), np.empty(n)
    for i, event in enumerate(events):
        if not isinstance(event, Mapping):
            raise SampleValidationError(
                f"order event {i} is a {type(event).__name__} ({event!r:.120}), not a mapping; each "
                "event is a dict with timestamp, price, quantity (or amount) and side")
        try:
            ts[i] = to_epoch_ns(event["timestamp"])
            price[i] = event["price"]
            qty[i] = event["quantity"] if "quantity" in event else event["amount"]
            side[i] = to_side(event["side"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SampleValidationError(
                f"order event {i} {dict(event)!r:.300} is not a trade: {exc}; each event needs "
                "timestamp (epoch s/ms/us/ns or a datetime), price, quantity (or amount) and side "
                "('buy'/'sell' or +1/-1)") from None
    return _checked_trades(ts, price, qty, side, SampleValidationError, "order event")


def live_feature_vector(order_events: Sequence[Mapping[str, Any]] | pd.DataFrame,
                        market_data: Mapping[str, Any] | None,
                        config: Config | FeatureSpec) -> np.ndarray:
    """The feature vector (``FEATURE_NAMES`` order) of the newest event; the hot-path form.

    A list of plain trade dicts is computed in Python floats (:mod:`.live_features`); any
    other input, or a value to refuse, goes through the checked numpy path.
    """
    spec = _spec(config)
    n = spec.sequence_length
    window = plain_window(order_events, n)
    row = None if window is None else window_row(*window, spec.large_order_threshold)
    if window is None or row is None:
        ts, price, qty, side = _event_arrays(order_events, n)
        row = _window_features(ts, price, qty, side, spec)[0, :_WINDOW_COLUMNS].tolist()
        last = float(price[-1])
    else:
        last = window[1][-1]
    row.extend(quote_row(last, *live_quote(market_data)) if market_data else NO_QUOTE)
    return np.array(row)


def compute_live_features(order_events: Sequence[Mapping[str, Any]] | pd.DataFrame,
                          market_data: Mapping[str, Any] | None,
                          config: Config | FeatureSpec) -> dict[str, float]:
    """Features of one live window: the last ``sequence_length`` order events.

    The public :func:`ticker_registry.compute_live_features` (documented there, once) calls
    this with ``config`` already a :class:`Config` or a model's :class:`FeatureSpec`.
    """
    vector = live_feature_vector(order_events, market_data, config)
    return dict(zip(FEATURE_NAMES, vector.tolist(), strict=True))
