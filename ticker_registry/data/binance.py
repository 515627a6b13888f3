"""Binance aggTrades CSV (``fmt="binance_agg"``), as published on data.binance.vision.

Spot files have no header and eight fields::

    agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker,is_best_match

Futures files carry that header (and may lack ``is_best_match``). Spot files
from 2025 on give ``transact_time`` in microseconds: any value above 1e14 is
read as microseconds, otherwise as milliseconds. ``is_buyer_maker=True`` means
the seller was the aggressor, so side is -1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from ..exceptions import TradeDataError
from ._common import RawTrades
from ._tabular import first_line_fields, read_csv_trades, unique_names

__all__ = ["BINANCE_AGG_COLUMNS", "read_binance_agg"]

BINANCE_AGG_COLUMNS: tuple[str, ...] = (
    "agg_trade_id",
    "price",
    "quantity",
    "first_trade_id",
    "last_trade_id",
    "transact_time",
    "is_buyer_maker",
    "is_best_match",
)
_TYPES: dict[str, pa.DataType | None] = {
    "agg_trade_id": pa.int64(),
    "price": pa.float64(),
    "quantity": pa.float64(),
    "transact_time": pa.int64(),
    "is_buyer_maker": pa.bool_(),
}


def read_binance_agg(data: bytes, label: str, *, errors: str) -> pd.DataFrame:
    """Read Binance aggTrades CSV content (with or without header) into the canonical frame."""
    fields = first_line_fields(data)
    lowered = [f.lower() for f in fields]
    header = "transact_time" in lowered or "price" in lowered
    if header:
        names = unique_names(fields)
        missing = [c for c in _TYPES if c not in names]
        if missing:
            raise TradeDataError(
                f"{label} line 1: Binance aggTrades header lacks {missing!r} (found {fields!r}); "
                f"expected {','.join(BINANCE_AGG_COLUMNS)}"
            )
    elif len(fields) in (7, 8):
        names = list(BINANCE_AGG_COLUMNS[: len(fields)])
    else:
        raise TradeDataError(
            f"{label} line 1: expected 7 or 8 Binance aggTrades fields "
            f"({','.join(BINANCE_AGG_COLUMNS)}), got {len(fields)}: {','.join(fields)[:60]!r}; "
            "pass the right fmt= if this is not a Binance aggTrades file"
        )

    def build(columns: dict[str, np.ndarray], locations: np.ndarray | None, broken: list) -> RawTrades:
        return RawTrades(
            label=label,
            unit="line",
            timestamp=columns["transact_time"],
            price=columns["price"],
            quantity=columns["quantity"],
            side=columns["is_buyer_maker"],
            side_kind="buyer_maker",
            trade_id=columns["agg_trade_id"],
            locations=locations,
            broken=broken,
        )

    return read_csv_trades(
        data, label, names=names, header=header, types=_TYPES, build=build, errors=errors
    )
