"""The one epoch rule: every module turns a time into integer UTC nanoseconds here.

Readers, live features, the strategy, the sample store and the manager all call
:func:`to_epoch_ns` (one value) or :func:`to_epoch_ns_array` (a column), so the
same instant given in any form gives the same nanosecond everywhere.

The rule
--------
- An integer or float epoch's unit is ``unit`` when given (``"s"``, ``"ms"``,
  ``"us"``, ``"ns"``), else inferred from its magnitude: below 1e11 seconds
  (until the year 5138), below 1e14 milliseconds, below 1e17 microseconds,
  otherwise nanoseconds. Epoch times of trades (after 1973) are never
  ambiguous under this rule. A float epoch with a fraction is rounded to the
  microsecond (a float64 epoch holds about 0.2 us, not nanoseconds).
- ``datetime``, ``numpy.datetime64``, ``pandas.Timestamp`` and ISO-8601 text
  are exact; naive values are taken as UTC.
- A time at or before 1970-01-01 or beyond the int64 nanosecond range
  (year 2262) is refused with :class:`~ticker_registry.exceptions.TimestampError`
  naming the value, never an ``OverflowError``.

This module imports only numpy, pandas and the error tree, so it ships inside
every model version with the feature code.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

import numpy as np
import pandas as pd

from .exceptions import TimestampError

__all__ = ["EPOCH_UNITS", "UNIT_BOUNDS", "to_epoch_ns", "to_epoch_ns_array"]

#: Epoch magnitude bounds: below the first seconds, then ms, then us, else ns.
UNIT_BOUNDS: tuple[float, float, float] = (1e11, 1e14, 1e17)
#: Nanoseconds per unit.
EPOCH_UNITS: dict[str, int] = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_ORDERED_UNITS = ("s", "ms", "us", "ns")
_MAX_NS = np.iinfo(np.int64).max
_HINT = ("expected epoch seconds/ms/us/ns after 1970 (unit inferred from magnitude) "
         "or an ISO-8601 time such as '2024-01-01T00:00:00Z'")


def _unit_factor(magnitude: float, unit: str | None) -> int:
    if unit is None:
        return EPOCH_UNITS[_ORDERED_UNITS[int(np.searchsorted(UNIT_BOUNDS, magnitude, side="right"))]]
    try:
        return EPOCH_UNITS[unit]
    except KeyError:
        raise TimestampError(f"unknown epoch unit {unit!r}; use one of "
                             f"{', '.join(EPOCH_UNITS)} or None to infer it") from None


def to_epoch_ns(value: Any, *, unit: str | None = None) -> int:
    """One time as integer nanoseconds since the epoch (UTC).

    Parameters
    ----------
    value
        An int or float epoch, a ``datetime``/``datetime64``/``Timestamp``, or
        ISO-8601 text.
    unit
        The epoch unit of a number (``"s"``, ``"ms"``, ``"us"``, ``"ns"``);
        ``None`` infers it from the magnitude (see the module docstring).

    Raises
    ------
    TimestampError
        If the value is not a time, is not after 1970, or is out of range.
    """
    if isinstance(value, (bool, np.bool_)):
        raise TimestampError(f"timestamp {value!r} is not a time; {_HINT}")
    if isinstance(value, (int, np.integer)):
        v = int(value)
        if v <= 0:
            raise TimestampError(f"timestamp {value!r} is not after 1970; {_HINT}")
        ns = v * _unit_factor(v, unit)
        if ns > _MAX_NS:
            raise TimestampError(f"timestamp {value!r} is beyond the year 2262; {_HINT}")
        return ns
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if not math.isfinite(f) or f <= 0:
            raise TimestampError(f"timestamp {value!r} is not a finite time after 1970; {_HINT}")
        ns_f = f * _unit_factor(f, unit)
        if ns_f >= _MAX_NS:
            raise TimestampError(f"timestamp {value!r} is beyond the year 2262; {_HINT}")
        return int(round(ns_f / 1_000)) * 1_000  # float64 epochs hold about 0.2 us: round to us
    if not isinstance(value, (str, _dt.datetime, _dt.date, np.datetime64, pd.Timestamp)):
        raise TimestampError(f"timestamp {value!r} ({type(value).__name__}) is not a time; {_HINT}")
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise TimestampError(f"timestamp {value!r} is not a time ({exc}); {_HINT}") from None
    if stamp is pd.NaT:
        raise TimestampError(f"timestamp {value!r} is not a time; {_HINT}")
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    try:
        ns = int(stamp.as_unit("ns").value)
    except (OverflowError, ValueError) as exc:
        raise TimestampError(f"timestamp {value!r} is out of range ({exc}); {_HINT}") from None
    if ns <= 0:
        raise TimestampError(f"timestamp {value!r} is not after 1970; {_HINT}")
    return ns


def to_epoch_ns_array(values: Any, *, unit: str | None = None) -> np.ndarray:
    """A column of times as int64 nanoseconds; ``-1`` marks a value that is not a valid time.

    The vector form of :func:`to_epoch_ns` for readers, which report bad rows
    themselves: numbers follow the same unit rule, datetimes are exact, text
    is parsed as ISO-8601.
    """
    arr = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    if arr.dtype.kind == "M":
        ns_index = pd.DatetimeIndex(arr).as_unit("ns")
        out = ns_index.asi8.copy()
        out[ns_index.isna() | (out <= 0)] = -1
        return out
    if arr.dtype.kind in "iu":
        if arr.dtype == np.uint64 and arr.size and arr.max() > _MAX_NS:
            arr = arr.astype(np.float64)
        else:
            return _ints_to_ns(arr.astype(np.int64, copy=False), unit)
    if arr.dtype.kind == "b":
        return np.full(arr.size, -1, dtype=np.int64)
    if arr.dtype.kind == "O":
        kinds = set(map(type, arr))
        if kinds == {int}:
            try:
                return _ints_to_ns(np.array(arr.tolist(), dtype=np.int64), unit)
            except OverflowError:
                pass
        if kinds == {str}:
            ints = pd.to_numeric(pd.Series(arr, dtype=object), errors="coerce")
            if ints.dtype.kind == "i":
                return _ints_to_ns(ints.to_numpy(np.int64), unit)
    num = _as_float(arr)
    out = np.full(arr.size, -1, dtype=np.int64)
    if arr.dtype.kind == "O":
        text = np.isnan(num) & np.fromiter((isinstance(v, str) for v in arr), bool, arr.size)
        if text.any():
            out[text] = _iso_to_ns(arr[text])
        stamps = np.fromiter((isinstance(v, (_dt.datetime, np.datetime64)) for v in arr), bool,
                             arr.size)
        if stamps.any():
            out[stamps] = to_epoch_ns_array(pd.to_datetime(pd.Series(arr[stamps]), utc=True,
                                                           errors="coerce").to_numpy())
    whole = np.isfinite(num) & (num == np.round(num)) & (np.abs(num) < 2**62)
    out[whole] = _ints_to_ns(num[whole].astype(np.int64), unit)
    frac = np.isfinite(num) & ~whole & (num > 0) & (num < UNIT_BOUNDS[-1])
    if frac.any():
        if unit is None:
            idx = np.searchsorted(UNIT_BOUNDS, num[frac], side="right")
            factor = np.take([EPOCH_UNITS[u] for u in _ORDERED_UNITS], idx)
        else:
            factor = np.full(int(frac.sum()), _unit_factor(0.0, unit))
        scaled = num[frac] * factor
        micros = np.round(np.where(scaled < _MAX_NS, scaled, -1_000) / 1_000).astype(np.int64)
        out[frac] = micros * 1_000
    return out


def _as_float(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind in "iuf":
        return arr.astype(np.float64, copy=False)
    if arr.dtype.kind != "O":
        return np.full(arr.shape, np.nan)
    arr = arr.copy()
    arr[np.fromiter((isinstance(v, (bool, np.bool_)) for v in arr), bool, arr.size)] = None
    out = pd.to_numeric(pd.Series(arr, dtype=object), errors="coerce")
    return out.to_numpy(dtype=np.float64, na_value=np.nan)


def _ints_to_ns(ints: np.ndarray, unit: str | None = None) -> np.ndarray:
    """Scale integer epochs to ns; -1 for non-positive or out-of-range values."""
    if unit is None:
        idx = np.searchsorted(UNIT_BOUNDS, ints, side="right")
        factor = np.take(np.asarray([EPOCH_UNITS[u] for u in _ORDERED_UNITS], dtype=np.int64), idx)
    else:
        factor = np.full(ints.shape, _unit_factor(0.0, unit), dtype=np.int64)
    ok = (ints > 0) & (ints <= _MAX_NS // factor)
    return np.where(ok, ints * np.where(ok, factor, 1), -1)


def _iso_to_ns(arr: np.ndarray) -> np.ndarray:
    parsed = pd.to_datetime(pd.Series(arr, dtype=object), utc=True, format="ISO8601", errors="coerce")
    ns_index = pd.DatetimeIndex(parsed).as_unit("ns")
    out = ns_index.asi8.copy()
    out[ns_index.isna() | (out <= 0)] = -1
    return out
