"""One live window's features in plain Python floats: the one-row form of the feature kernels.

A warm ``predict_for_ticker`` computes one window of about 20 trade dicts; there numpy's
per-call overhead (some forty small-array operations) costs far more than the arithmetic.
:func:`ticker_registry.features.live_feature_vector` computes such a window here instead:
each feature with the same IEEE operations, in the same order, as the batch kernels of
:mod:`.features` (``_window_features``, ``_apply_market``), so the row is bit-for-bit the
batch row of the same event:

- sums accumulate left to right from the first value, as ``features._rolling_sum`` does
  (never :func:`sum`, which compensates from Python 3.12); a sum of 0.0/1.0 flags is an
  exact count;
- an integer nanosecond difference becomes a float before it is divided, as numpy does;
- logarithms are numpy's (its vectorised ``log`` may differ from :func:`math.log` in the
  last bit); square roots are correctly rounded in both.

Whatever is not the plain case (another kind of input, a value to refuse, a window whose
notional sums to zero) makes :func:`plain_window` or :func:`window_row` return ``None`` and
the caller takes the checked numpy path, whose values and error messages are the reference.

Pure, like :mod:`.features`, and shipped inside every model version with it: it imports
only :mod:`.exceptions` and :mod:`.timestamps` of the package, and nothing of
:mod:`.features` (which imports it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .exceptions import SampleValidationError
from .timestamps import to_epoch_ns

__all__ = ["MARKET_KEYS", "MIN_DURATION_S", "NO_QUOTE", "NS", "SIDES", "live_quote", "plain_window",
           "quote_row", "to_side", "window_row"]

#: Nanoseconds per second.
NS = 1_000_000_000
#: The shortest window duration ``trade_intensity`` divides by (seconds).
MIN_DURATION_S = 1e-3
#: The quote fields of market data, in the order of the market-data features.
MARKET_KEYS = ("bid", "ask", "bid_size", "ask_size")
#: The market-data features of an event without a quote.
NO_QUOTE = (0.0, 0.0, 0.0, 0.0)
#: The spellings of a live trade's side (text is matched stripped and lower-cased).
SIDES: dict[Any, float] = {"buy": 1.0, "b": 1.0, "sell": -1.0, "s": -1.0, 1: 1.0, -1: -1.0}
_INF = math.inf


def to_side(value: Any) -> float:
    """``+1.0`` (buy) or ``-1.0`` (sell) of a side spelled as in :data:`SIDES`; else ``ValueError``."""
    try:
        return SIDES[value.strip().lower() if isinstance(value, str) else value]
    except (KeyError, TypeError):
        raise ValueError(f"side {value!r} is not 'buy'/'sell' or +1/-1") from None


def plain_window(order_events: Any,
                 n: int) -> tuple[list[int], list[float], list[float], list[float]] | None:
    """The last ``n`` events as (epoch ns, price, quantity, side) lists, if they are plain.

    Plain: a list of dicts; integer epoch timestamps in time order (equal allowed), the
    first and the last in the same unit (so all are: the rule of :mod:`.timestamps` infers
    the unit from the magnitude); price and quantity finite positive floats or ints; a side
    of :data:`SIDES`. ``None`` for anything else: the caller's checked path accepts or
    refuses it, with its own words.
    """
    if type(order_events) is not list or len(order_events) < n:
        return None
    stamps: list[int] = []
    prices: list[float] = []
    sizes: list[float] = []
    sides: list[float] = []
    previous = 0
    try:
        for event in order_events[len(order_events) - n:]:
            if type(event) is not dict:
                return None
            stamp = event["timestamp"]
            price = event["price"]
            size = event["quantity"] if "quantity" in event else event["amount"]
            side = event["side"]
            if type(stamp) is not int or stamp < previous:
                return None
            if type(price) is not float:
                if type(price) is not int:
                    return None
                price = float(price)
            if type(size) is not float:
                if type(size) is not int:
                    return None
                size = float(size)
            if not (0.0 < price < _INF and 0.0 < size < _INF):
                return None
            sign = SIDES.get(side)
            if sign is None:
                if type(side) is not str:
                    return None
                sign = SIDES.get(side.strip().lower())
                if sign is None:
                    return None
            previous = stamp
            stamps.append(stamp)
            prices.append(price)
            sizes.append(size)
            sides.append(sign)
        first, last = stamps[0], stamps[-1]
        factor = to_epoch_ns(first) // first  # TimestampError (a ValueError) at or before 1970
        if to_epoch_ns(last) != last * factor:  # another unit, or beyond the year 2262
            return None
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    return [t * factor for t in stamps], prices, sizes, sides


def window_row(stamps: list[int], prices: list[float], sizes: list[float], sides: list[float],
               large_order_threshold: float) -> list[float] | None:
    """The eleven trade-window features of the window's newest trade (``FEATURE_NAMES[:11]``).

    ``None`` when the window's notional sums to zero (underflow), where numpy divides by zero
    and the caller's numpy kernel gives its inf/NaN values, and for a window shorter than two
    trades (which the numpy kernel refuses).
    """
    n = len(prices)
    if n < 2:
        return None
    # One pass; each sum starts from the first value and adds left to right, as
    # features._rolling_sum does. There a trade below the threshold adds 0.0 to the large
    # notional, which changes no value (a sum of non-negative notionals is never -0.0).
    qty_sum = sizes[0]
    signed = sides[0] * qty_sum
    notional_sum = prices[0] * qty_sum
    large_notional, n_large, last_large = 0.0, 0, -1
    if notional_sum >= large_order_threshold:
        large_notional, n_large, last_large = notional_sum, 1, 0
    for i in range(1, n):
        q = sizes[i]
        x = prices[i] * q
        qty_sum += q
        signed += sides[i] * q
        notional_sum += x
        if x >= large_order_threshold:
            large_notional += x
            n_large += 1
            last_large = i
    if notional_sum == 0.0:
        return None
    logs = np.log([*prices, notional_sum / n]).tolist()
    r = logs[1] - logs[0]
    squared_returns = r * r
    for i in range(2, n):
        r = logs[i] - logs[i - 1]
        squared_returns += r * r
    duration = float(stamps[-1] - stamps[0]) / NS
    return [
        signed / qty_sum,
        float(sides.count(1.0)) / n,
        (n - 1) / max(duration, MIN_DURATION_S),
        math.sqrt(squared_returns) * 1e4,
        (prices[-1] / (notional_sum / qty_sum) - 1.0) * 1e4,
        (logs[n - 1] - logs[0]) * 1e4,
        float(n_large),
        large_notional / notional_sum,
        float(stamps[-1] - stamps[last_large]) / NS if last_large >= 0 else duration,
        logs[n],
        sides[-1],
    ]


def live_quote(market_data: Any) -> tuple[float, float, float, float]:
    """The quote at a live event, in :data:`MARKET_KEYS` order (absent: NaN)."""
    if not isinstance(market_data, Mapping):
        raise SampleValidationError(
            f"market_data is a {type(market_data).__name__} ({market_data!r:.120}); pass a "
            "dict with bid, ask and optionally bid_size, ask_size, or None")
    quote = []
    for key in MARKET_KEYS:
        value = market_data.get(key)
        try:
            quote.append(math.nan if value is None else float(value))
        except (TypeError, ValueError):
            raise SampleValidationError(
                f"market_data[{key!r}] is {value!r:.80}, not a number; give bid, ask, bid_size "
                "and ask_size as numbers (or leave them out)") from None
    bid, ask, bid_size, ask_size = quote
    return bid, ask, bid_size, ask_size


def quote_row(price: float, bid: float, ask: float, bid_size: float,
              ask_size: float) -> tuple[float, float, float, float]:
    """The four market-data features of an event at ``price`` (``FEATURE_NAMES[11:]``)."""
    if not (math.isfinite(bid) and math.isfinite(ask) and bid > 0 and ask >= bid):
        return NO_QUOTE
    mid = (bid + ask) / 2.0
    depth = bid_size + ask_size
    imbalance = (bid_size - ask_size) / depth if math.isfinite(depth) and depth > 0 else 0.0
    return (ask - bid) / mid * 1e4, (price / mid - 1.0) * 1e4, imbalance, 1.0
