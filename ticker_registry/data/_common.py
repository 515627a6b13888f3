"""The canonical trade schema, value validation and canonicalisation.

Every reader turns its source into a :class:`RawTrades` (one raw column per
canonical field plus, when known, the 1-based location of each row in the
file); :func:`canonicalize` then parses and validates all columns at once with
numpy/pandas and builds the canonical frame. Readers never build the final
frame themselves, so every format shares one set of rules and one wording of
errors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import TradeDataError
from ._values import as_array, to_epoch_ns, to_float, to_int64_exact, to_side

__all__ = [
    "CANONICAL_COLUMNS",
    "ERRORS_MODES",
    "RawTrades",
    "canonicalize",
    "infer_side_tick_rule",
    "logger",
]

logger = logging.getLogger("ticker_registry.data")

CANONICAL_COLUMNS: tuple[str, ...] = ("timestamp", "price", "quantity", "side", "trade_id")
ERRORS_MODES = ("raise", "skip")


@dataclass
class RawTrades:
    """Unparsed trade columns as a reader found them.

    Parameters
    ----------
    label
        File name used in error messages.
    unit
        What a location counts: ``"line"`` (text files), ``"record"`` (JSON)
        or ``"row"`` (Parquet).
    timestamp, price, quantity
        Raw values: strings, numbers, or already typed arrays.
    side
        Raw side values, or ``None`` when the source has no side (it is then
        inferred with the tick rule).
    side_kind
        ``"buyer_maker"`` (Binance booleans: true means a sell aggressor) or
        ``"word"`` (buy/sell or +1/-1).
    trade_id
        Raw ids, or ``None`` when the source has none.
    locations
        1-based location of each row, or ``None`` on a fast path that did not
        track them (the caller then re-reads slowly to name a bad row).
    broken
        Rows that could not even be split into fields, as
        ``(location, problem)`` pairs; they are not in the columns.
    """

    label: str
    unit: str
    timestamp: Any
    price: Any
    quantity: Any
    side: Any | None
    side_kind: str = "word"
    trade_id: Any | None = None
    locations: np.ndarray | None = None
    broken: list[tuple[int, str]] = field(default_factory=list)


def infer_side_tick_rule(prices: Any) -> np.ndarray:
    """Classify trades as buys or sells with the tick rule.

    A trade above the previous price is a buy (+1), below it a sell (-1), at
    the same price it keeps the previous trade's side; the first trade is a
    buy.

    Parameters
    ----------
    prices
        Trade prices in time order (any 1-d array-like of numbers).

    Returns
    -------
    numpy.ndarray
        ``int8`` array of +1/-1, the same length as ``prices``.
    """
    p = np.asarray(prices, dtype=np.float64).ravel()
    side = np.zeros(p.size, dtype=np.int8)
    if p.size == 0:
        return side
    side[0] = 1
    side[1:] = np.sign(np.diff(p)).astype(np.int8)
    # Forward-fill the zero ticks with the last non-zero side.
    last = np.where(side != 0, np.arange(p.size), 0)
    np.maximum.accumulate(last, out=last)
    return side[last]


def canonicalize(
    raw: RawTrades,
    *,
    errors: str,
    relocate: Callable[[], RawTrades] | None = None,
) -> pd.DataFrame:
    """Validate ``raw`` and build the canonical frame.

    Parameters
    ----------
    raw
        The reader's columns.
    errors
        ``"raise"``: the first malformed row raises; ``"skip"``: malformed
        rows are dropped, counted in ``df.attrs["skipped_rows"]`` and logged.
    relocate
        Called when ``raw`` has bad rows but no locations: it must re-read the
        source and return the same rows with ``locations`` filled in.

    Raises
    ------
    TradeDataError
        On a malformed row (``errors="raise"``) or when no valid trade is left.
    """
    parsed = _parse(raw)
    bad = parsed["bad"]
    if (bad.any() or raw.broken) and raw.locations is None and relocate is not None:
        return canonicalize(relocate(), errors=errors)
    n_bad = int(bad.sum()) + len(raw.broken)
    if n_bad and errors == "raise":
        raise TradeDataError(_first_problem(raw, parsed) + _FIX_HINT)
    if n_bad:
        logger.warning(
            "%s: skipped %d malformed %s(s) (errors='skip'); first: %s",
            raw.label, n_bad, raw.unit, _first_problem(raw, parsed),
        )
    keep = ~bad
    if not keep.any():
        detail = f"; all {n_bad} {raw.unit}(s) were malformed" if n_bad else ""
        raise TradeDataError(
            f"{raw.label} holds no valid trades{detail}; "
            "check that it is a trade file and that it is not empty or truncated"
        )
    frame = _assemble(raw, parsed, keep)
    frame.attrs["skipped_rows"] = n_bad
    return frame


_FIX_HINT = "; fix or remove that row, or pass errors='skip' to drop malformed rows"


def _assemble(raw: RawTrades, parsed: dict[str, Any], keep: np.ndarray) -> pd.DataFrame:
    ids = to_int64_exact(as_array(raw.trade_id)[keep]) if raw.trade_id is not None else None
    if ids is not None and ids.size > 1:
        # one canonical form whatever the file's order: by time, then trade id; a trade id
        # seen twice is one trade (kept once, with a warning saying how many were dropped)
        order = np.lexsort((ids, parsed["timestamp"][keep]))
        sorted_ids = ids[order]
        first = np.ones(order.size, dtype=bool)
        _, first_pos = np.unique(sorted_ids, return_index=True)
        first[:] = False
        first[first_pos] = True
        dropped = int(order.size - first.sum())
        if dropped:
            logger.warning("%s: dropped %d duplicated trade(s) (a trade_id seen more than once; "
                           "the first is kept)", raw.label, dropped)
            order = order[first]
    else:
        order = np.argsort(parsed["timestamp"][keep], kind="stable")
    ts = parsed["timestamp"][keep]
    price = parsed["price"][keep][order]
    if raw.side is None:
        side = infer_side_tick_rule(price)
        logger.warning(
            "%s has no side column: aggressor side was inferred with the tick rule "
            "(up-tick buy, down-tick sell)", raw.label,
        )
    else:
        side = parsed["side"][keep][order]
    trade_id = _trade_ids(raw, keep, order)
    timestamps = pd.DatetimeIndex(ts[order].view("datetime64[ns]")).tz_localize("UTC")
    return pd.DataFrame(
        {
            "timestamp": timestamps,
            "price": price,
            "quantity": parsed["quantity"][keep][order],
            "side": side.astype(np.int8),
            "trade_id": trade_id,
        },
        index=pd.RangeIndex(order.size),
    )


def _trade_ids(raw: RawTrades, keep: np.ndarray, order: np.ndarray) -> np.ndarray:
    positions = np.arange(order.size, dtype=np.int64)
    if raw.trade_id is None:
        return positions
    exact = to_int64_exact(as_array(raw.trade_id)[keep])
    if exact is not None:
        return exact[order]
    values = to_float(raw.trade_id)[keep]
    whole = np.isfinite(values) & (values == np.round(values)) & (np.abs(values) < 2**53)
    if whole.all():
        return values.astype(np.int64)[order]
    example = _raw_value(as_array(raw.trade_id)[keep], int(np.flatnonzero(~whole)[0]))
    logger.warning(
        "%s: trade ids are not all integers (e.g. %r); using row positions as trade_id",
        raw.label, example,
    )
    return positions


# --- parsing -----------------------------------------------------------------


def _parse(raw: RawTrades) -> dict[str, Any]:
    """Parse every column; ``bad`` flags rows with any value that is not a valid trade."""
    out: dict[str, Any] = {
        "timestamp": to_epoch_ns(raw.timestamp),
        "price": to_float(raw.price),
        "quantity": to_float(raw.quantity),
    }
    bad = out["timestamp"] < 0
    for name in ("price", "quantity"):
        v = out[name]
        bad |= ~(np.isfinite(v) & (v > 0))
    if raw.side is not None:
        out["side"] = to_side(raw.side, raw.side_kind)
        bad |= out["side"] == 0
    out["bad"] = bad
    return out


# --- messages ----------------------------------------------------------------


def _raw_value(values: Any, i: int) -> Any:
    v = as_array(values)[i]
    return v.item() if isinstance(v, np.generic) else v


def _number_problem(name: str, value: Any) -> str:
    try:
        number = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        return f"{name} {value!r} is not a number"
    if not np.isfinite(number):
        return f"{name} {value!r} is not a finite number"
    return f"{name} {value!r} is not positive"


def _row_problem(raw: RawTrades, parsed: dict[str, Any], i: int) -> str:
    if parsed["timestamp"][i] < 0:
        value = _raw_value(raw.timestamp, i)
        return (
            f"timestamp {value!r} is not a valid time (expected epoch seconds/ms/us "
            "after 1970 or an ISO-8601 date such as '2024-01-01T00:00:00Z')"
        )
    for name in ("price", "quantity"):
        v = parsed[name][i]
        if not (np.isfinite(v) and v > 0):
            return _number_problem(name, _raw_value(getattr(raw, name), i))
    value = _raw_value(raw.side, i)
    if raw.side_kind == "buyer_maker":
        return f"is_buyer_maker {value!r} is not a boolean (expected True or False)"
    return f"side {value!r} is not a side (expected 'buy'/'sell' or +1/-1)"


def _first_problem(raw: RawTrades, parsed: dict[str, Any]) -> str:
    candidates = list(raw.broken)
    bad_rows = np.flatnonzero(parsed["bad"])
    if bad_rows.size:
        i = int(bad_rows[0])
        loc = int(raw.locations[i]) if raw.locations is not None else i + 1
        candidates.append((loc, _row_problem(raw, parsed, i)))
    loc, problem = min(candidates, key=lambda c: c[0])
    return f"{raw.label} {raw.unit} {loc}: {problem}"
