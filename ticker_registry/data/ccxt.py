"""ccxt trades: JSON (``fmt="ccxt_json"``) and CSV (``fmt="ccxt_csv"``).

JSON (optionally gzipped) holds either the list of lists freqtrade stores::

    [[timestamp_ms, id, type, side, price, amount, cost], ...]

or the list of dicts ``exchange.fetch_trades()`` returns (keys ``timestamp``,
``id``, ``side``, ``price``, ``amount``; other keys are ignored). Errors name
the 1-based record (list element), since such files are usually one line.

The CSV layout ``timestamp,id,type,side,price,amount,cost,date`` (with or
without a leading pandas index column) is a headed table; see
:mod:`ticker_registry.data.generic`.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import TradeDataError
from ._common import RawTrades, canonicalize
from ._tabular import decode_text
from .generic import read_generic_csv

__all__ = ["CCXT_LIST_FIELDS", "read_ccxt_csv", "read_ccxt_json"]

CCXT_LIST_FIELDS: tuple[str, ...] = ("timestamp", "id", "type", "side", "price", "amount", "cost")
_DICT_KEYS = ("timestamp", "id", "side", "price", "amount")
_PICK = {"timestamp": 0, "id": 1, "side": 3, "price": 4, "amount": 5}


def read_ccxt_csv(data: bytes, label: str, *, errors: str) -> pd.DataFrame:
    """Read a ccxt trades CSV into the canonical frame (side column required)."""
    return read_generic_csv(data, label, errors=errors, require_side=True)


def read_ccxt_json(data: bytes, label: str, *, errors: str) -> pd.DataFrame:
    """Read a ccxt JSON trade list (list of lists or list of dicts) into the canonical frame."""
    with _gc_paused():
        records = _load_json(data, label)
        columns, locations, broken = _split_records(records)
        del records
    raw = RawTrades(
        label=label,
        unit="record",
        timestamp=columns["timestamp"],
        price=columns["price"],
        quantity=columns["amount"],
        side=columns["side"],
        trade_id=columns["id"],
        locations=locations,
        broken=broken,
    )
    with _gc_paused():
        return canonicalize(raw, errors=errors)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC: millions of acyclic JSON objects would trigger it over and over."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _load_json(data: bytes, label: str) -> list[Any]:
    text = decode_text(data, label)
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TradeDataError(
            f"{label} line {exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno}); "
            "the file may be truncated — download or export it again"
        ) from exc
    except RecursionError as exc:
        raise TradeDataError(f"{label}: JSON is nested too deeply to be a trade list") from exc
    if not isinstance(records, list):
        raise TradeDataError(
            f"{label}: expected a JSON list of trades, got a {type(records).__name__}; "
            "ccxt trade files hold [[timestamp, id, type, side, price, amount, cost], ...] "
            "or a list of trade dicts"
        )
    if not records:
        raise TradeDataError(f"{label} holds an empty trade list; expected at least one trade")
    return records


def _split_records(
    records: list[Any],
) -> tuple[dict[str, np.ndarray], np.ndarray, list[tuple[int, str]]]:
    as_dicts = isinstance(records[0], dict)
    if not as_dicts and set(map(type, records)) == {list} and set(map(len, records)) == {7}:
        # The common case, sliced in C: every record is a 7-field list.
        columns = {k: _column(map(itemgetter(i), records)) for k, i in _PICK.items()}
        return columns, np.arange(1, len(records) + 1, dtype=np.int64), []
    good: list[Any] = []
    locations: list[int] = []
    broken: list[tuple[int, str]] = []
    for number, record in enumerate(records, start=1):
        problem = _record_problem(record, as_dicts)
        if problem:
            broken.append((number, problem))
        else:
            good.append(record)
            locations.append(number)
    if as_dicts:
        columns = {k: _column(r[k] for r in good) for k in _DICT_KEYS}
    else:
        columns = {k: _column(r[i] for r in good) for k, i in _PICK.items()}
    return columns, np.asarray(locations, dtype=np.int64), broken


def _record_problem(record: Any, as_dicts: bool) -> str | None:
    if as_dicts:
        if not isinstance(record, dict):
            return f"expected a trade dict like the first record, got {_short(record)}"
        missing = [k for k in _DICT_KEYS if k not in record]
        return f"trade dict lacks {missing!r}" if missing else None
    if not isinstance(record, list) or len(record) != len(CCXT_LIST_FIELDS):
        return (
            f"expected a list of {len(CCXT_LIST_FIELDS)} fields "
            f"[{', '.join(CCXT_LIST_FIELDS)}], got {_short(record)}"
        )
    return None


def _column(values: Any) -> np.ndarray:
    items = list(values)
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."
