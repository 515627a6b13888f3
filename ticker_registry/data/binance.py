"""Binance aggTrades CSV (``fmt="binance_agg"``), as published on data.binance.vision.

Spot files have no header and eight fields::

    agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker,is_best_match

Futures files carry that header (and may lack ``is_best_match``). Spot files
from 2025 on give ``transact_time`` in microseconds: any value above 1e14 is
read as microseconds, otherwise as milliseconds. ``is_buyer_maker=True`` means
the seller was the aggressor, so side is -1.

:data:`BINANCE_LAYOUTS` lists every Binance layout the package reads (these
aggTrades and the ``trades`` files of :mod:`.binance_trades`);
:func:`binance_header_error` is the one message for a header that fits none.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from ..exceptions import TradeDataError
from ._common import RawTrades
from ._tabular import first_line_fields, read_csv_trades, unique_names

__all__ = ["BINANCE_AGG_COLUMNS", "BINANCE_LAYOUTS", "binance_header_error", "read_binance_agg"]

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
#: Every Binance layout read here, as ``(name, columns)`` for messages.
BINANCE_LAYOUTS: tuple[tuple[str, str], ...] = (
    ("aggTrades", ",".join(BINANCE_AGG_COLUMNS[:-1]) + "[,is_best_match] (spot: no header)"),
    ("spot trades (no header)", "id,price,qty,quote_qty,time,is_buyer_maker,is_best_match"),
    ("USD-M trades", "id,price,qty,quote_qty,time,is_buyer_maker"),
    ("COIN-M trades", "id,price,qty,base_qty,time,is_buyer_maker"),
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
            raise binance_header_error(label, fields, f"as aggTrades it lacks {missing!r}")
    elif len(fields) in (7, 8):
        names = list(BINANCE_AGG_COLUMNS[: len(fields)])
    else:
        raise TradeDataError(
            f"{label} line 1: expected 7 or 8 Binance aggTrades fields "
            f"({','.join(BINANCE_AGG_COLUMNS)}), got {len(fields)}: {','.join(fields)[:60]!r}; "
            "pass the right fmt= if this is not a Binance aggTrades file"
        )

    return read_binance_columns(data, label, names=names, header=header, errors=errors,
                                time="transact_time", trade_id="agg_trade_id", quantity="quantity")


def read_binance_columns(data: bytes, label: str, *, names: list[str], header: bool, errors: str,
                         time: str, trade_id: str, quantity: str) -> pd.DataFrame:
    """Read any Binance trade CSV whose time, id and quantity columns are named as given.

    Prices are ``price`` and sides ``is_buyer_maker`` (true: the taker sold) in every
    Binance layout; aggTrades and trades files differ only in these three names.
    """
    types: dict[str, pa.DataType | None] = {trade_id: pa.int64(), "price": pa.float64(),
                                            quantity: pa.float64(), time: pa.int64(),
                                            "is_buyer_maker": pa.bool_()}

    def build(columns: dict[str, np.ndarray], locations: np.ndarray | None, broken: list) -> RawTrades:
        return RawTrades(
            label=label,
            unit="line",
            timestamp=columns[time],
            price=columns["price"],
            quantity=columns[quantity],
            side=columns["is_buyer_maker"],
            side_kind="buyer_maker",
            trade_id=columns[trade_id],
            locations=locations,
            broken=broken,
        )

    return read_csv_trades(
        data, label, names=names, header=header, types=types, build=build, errors=errors
    )


def binance_header_error(label: str, fields: list[str], problem: str) -> TradeDataError:
    """The error for a Binance-looking header that fits none of :data:`BINANCE_LAYOUTS`.

    Parameters
    ----------
    label
        File name for the message.
    fields
        The header's columns as found.
    problem
        What the reader missed, e.g. ``"as aggTrades it lacks ['transact_time']"``.
    """
    layouts = "; ".join(f"{name} {columns}" for name, columns in BINANCE_LAYOUTS)
    return TradeDataError(
        f"{label} line 1: header columns {fields!r} match no Binance layout ({problem}); "
        f"expected one of: {layouts} — fix the header, or pass fmt= if this is not a Binance file"
    )
