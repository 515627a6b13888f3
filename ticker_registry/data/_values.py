"""Vectorised parsing of raw trade values: numbers, epoch times, ISO times, sides.

Every function takes a column as a reader found it (numbers, strings, JSON
values or typed arrays) and returns a numpy array of the same length in which
a sentinel marks values that do not parse: NaN for numbers, -1 for times, 0
for sides. Deciding what a bad value means is left to the caller.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..timestamps import to_epoch_ns_array

__all__ = ["as_array", "to_epoch_ns", "to_float", "to_int64_exact", "to_side"]



def as_array(values: Any) -> np.ndarray:
    """Return ``values`` as a numpy array (pandas string columns become object arrays)."""
    if isinstance(values, pd.Series):
        return values.to_numpy()
    return np.asarray(values)


def to_float(values: Any) -> np.ndarray:
    """Parse numbers or numeric text to float64; anything else (bools included) becomes NaN."""
    arr = as_array(values)
    if arr.dtype.kind in "iuf":
        return arr.astype(np.float64, copy=False)
    if arr.dtype.kind != "O":
        return np.full(arr.shape, np.nan)
    kinds = set(map(type, arr))
    if kinds <= {int, float}:
        try:
            return np.array(arr.tolist(), dtype=np.float64)
        except OverflowError:
            pass
    if bool in kinds:
        # A JSON true/false is not a number, though Python treats it as one.
        arr = arr.copy()
        arr[np.fromiter(map(_is_bool, arr), bool, arr.size)] = None
    out = pd.to_numeric(pd.Series(arr, dtype=object), errors="coerce")
    return out.to_numpy(dtype=np.float64, na_value=np.nan)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def to_int64_exact(values: Any) -> np.ndarray | None:
    """Return exact int64 values when every value is an integer (number or digits), else None."""
    arr = as_array(values)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False) if arr.dtype != np.uint64 else None
    if arr.dtype.kind != "O" or arr.size == 0:
        return None
    kinds = set(map(type, arr))
    try:
        if kinds == {int}:
            return np.array(arr.tolist(), dtype=np.int64)
        if kinds == {str}:
            ints = pd.to_numeric(pd.Series(arr, dtype=object), errors="coerce")
            return ints.to_numpy(np.int64) if ints.dtype.kind == "i" else None
    except (OverflowError, ValueError):
        return None
    return None


def to_epoch_ns(values: Any) -> np.ndarray:
    """Epoch numbers or ISO-8601 strings -> int64 ns; -1 marks bad (the package's one rule)."""
    return to_epoch_ns_array(values)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def to_side(values: Any, kind: str) -> np.ndarray:
    """Map sides to int8 +1/-1, 0 when unknown.

    ``kind="word"`` reads buy/sell (any case) or +1/-1; ``kind="buyer_maker"``
    reads Binance's ``is_buyer_maker`` booleans, where true means the seller
    was the aggressor (-1).
    """
    arr = as_array(values)
    if arr.dtype.kind == "b":
        if kind != "buyer_maker":
            return np.zeros(arr.size, dtype=np.int8)
        return np.where(arr, -1, 1).astype(np.int8)
    table = _BUYER_MAKER if kind == "buyer_maker" else _SIDE_WORDS
    if arr.dtype.kind in "iuf":
        keys = pd.Series(arr.astype(np.float64))
    else:
        if not set(map(type, arr)) <= _SCALAR_TYPES:
            # JSON lists/dicts cannot be looked up (nor be a side): blank them.
            arr = arr.copy()
            arr[~np.fromiter(map(_is_scalar, arr), bool, arr.size)] = None
        keys = pd.Series(arr, dtype=object)
    side = keys.map(table)
    unknown = side.isna()
    if unknown.any() and arr.dtype.kind == "O":
        # Rare spellings (" Buy ", "TRUE"): normalise only the rows the table missed.
        side[unknown] = keys[unknown].map(_normalise_word).map(table)
    return side.fillna(0).to_numpy(dtype=np.int8)


_SCALAR_TYPES = {str, int, float, bool, type(None)}


def _is_scalar(value: Any) -> bool:
    return type(value) in _SCALAR_TYPES


def _normalise_word(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


_SIDE_WORDS: dict[Any, int] = {
    **{w: 1 for w in ("buy", "Buy", "BUY", "b", "B", "1", "+1", "1.0")},
    **{w: -1 for w in ("sell", "Sell", "SELL", "s", "S", "-1", "-1.0")},
    1.0: 1, -1.0: -1,
}
_BUYER_MAKER: dict[Any, int] = {
    **{w: -1 for w in ("True", "true", "TRUE", "1")},
    **{w: 1 for w in ("False", "false", "FALSE", "0")},
    True: -1, False: 1,  # also matches the numbers 1.0 and 0.0
}
