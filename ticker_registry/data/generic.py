"""Generic trade tables: CSV with a header (``fmt="generic_csv"``) and Parquet (``fmt="parquet"``).

Columns are found by name (case-insensitive, extra columns ignored):

* ``timestamp``: epoch numbers (milliseconds; seconds, microseconds or
  nanoseconds are told apart by magnitude) or ISO-8601 strings (UTC when no
  offset is given) or a datetime column;
* ``price``;
* ``quantity``, or ``amount`` as ccxt names it;
* ``side`` (optional): ``buy``/``sell`` or +1/-1; when absent it is inferred
  with the tick rule and a warning is logged;
* ``trade_id`` or ``id`` (optional): integer ids; otherwise row positions.

The ccxt CSV layout (``timestamp,id,type,side,price,amount,cost,date``, with
or without a leading pandas index column) is read by the same code.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..exceptions import TradeDataError
from ._common import RawTrades, canonicalize
from ._tabular import arrow_to_numpy, first_line_fields, read_csv_trades, unique_names

__all__ = ["match_columns", "read_generic_csv", "read_parquet"]

_ALIASES: dict[str, tuple[str, ...]] = {
    "timestamp": ("timestamp",),
    "price": ("price",),
    "quantity": ("quantity", "amount"),
    "side": ("side",),
    "trade_id": ("trade_id", "id"),
}
_OPTIONAL = ("side", "trade_id")


def match_columns(names: list[str], label: str, *, require_side: bool = False) -> dict[str, str]:
    """Map canonical fields to the file's column names.

    Raises
    ------
    TradeDataError
        If a required column is missing; the message lists what was found.
    """
    lowered = {n.strip().lower(): n for n in names}
    found: dict[str, str] = {}
    for field, aliases in _ALIASES.items():
        for alias in aliases:
            if alias in lowered:
                found[field] = lowered[alias]
                break
    required = [f for f in _ALIASES if f not in _OPTIONAL or (f == "side" and require_side)]
    missing = [f for f in required if f not in found]
    if missing:
        raise TradeDataError(
            f"{label}: no column for {', '.join(missing)} (found columns {list(names)!r}); "
            "expected timestamp, price, quantity (or amount) and optionally side and "
            "trade_id (or id)"
        )
    return found


def _builder(label: str, unit: str, found: dict[str, str]):
    def build(columns: dict[str, np.ndarray], locations: np.ndarray | None, broken: list) -> RawTrades:
        return RawTrades(
            label=label,
            unit=unit,
            timestamp=columns[found["timestamp"]],
            price=columns[found["price"]],
            quantity=columns[found["quantity"]],
            side=columns[found["side"]] if "side" in found else None,
            trade_id=columns[found["trade_id"]] if "trade_id" in found else None,
            locations=locations,
            broken=broken,
        )

    return build


def read_generic_csv(
    data: bytes, label: str, *, errors: str, require_side: bool = False
) -> pd.DataFrame:
    """Read a headed trade CSV (generic or ccxt layout) into the canonical frame."""
    names = unique_names(first_line_fields(data))
    found = match_columns(names, label, require_side=require_side)
    types: dict[str, pa.DataType | None] = {
        found["price"]: pa.float64(),
        found["quantity"]: pa.float64(),
        found["timestamp"]: None,
    }
    for field in _OPTIONAL:
        if field in found:
            types[found[field]] = None
    return read_csv_trades(
        data, label, names=names, header=True, types=types,
        build=_builder(label, "line", found), errors=errors,
    )


def read_parquet(data: bytes, label: str, *, errors: str) -> pd.DataFrame:
    """Read a Parquet trade table into the canonical frame (locations are 1-based rows)."""
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise TradeDataError(
            f"{label} is not a readable Parquet file ({exc}); check it is complete, "
            "or pass the right fmt="
        ) from exc
    found = match_columns(table.column_names, label)
    try:
        columns = {name: arrow_to_numpy(table.column(name)) for name in set(found.values())}
    except (pa.ArrowException, ValueError, OverflowError) as exc:
        raise TradeDataError(f"{label}: cannot convert Parquet columns ({exc})") from exc
    locations = np.arange(1, table.num_rows + 1, dtype=np.int64)
    raw = _builder(label, "row", found)(columns, locations, [])
    return canonicalize(raw, errors=errors)
