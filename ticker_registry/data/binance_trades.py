"""Binance ``trades`` CSV (``fmt="binance_trades"``), as published on data.binance.vision.

Unlike aggTrades, these files hold every individual trade. Three layouts:

=================  ======  ====================================================
market             header  columns
=================  ======  ====================================================
spot               no      ``id,price,qty,quote_qty,time,is_buyer_maker,is_best_match``
USD-M futures      yes     ``id,price,qty,quote_qty,time,is_buyer_maker``
COIN-M futures     yes     ``id,price,qty,base_qty,time,is_buyer_maker``
=================  ======  ====================================================

``quantity`` is always in base units: ``qty`` for spot and USD-M, but
``base_qty`` for COIN-M, where ``qty`` counts contracts. A headerless file of
six fields is refused, since USD-M cannot then be told from COIN-M.

``time`` is in milliseconds, or microseconds in spot files from 2025 on (the
package's epoch rule tells them apart by magnitude). ``is_buyer_maker`` is
``True``/``False`` (spot) or ``true``/``false`` (futures); true means the
seller was the aggressor, so side is -1.
"""

from __future__ import annotations

import pandas as pd

from ..exceptions import TradeDataError
from ._tabular import first_line_fields, unique_names
from .binance import binance_header_error, read_binance_columns

__all__ = ["BINANCE_SPOT_TRADES_COLUMNS", "read_binance_trades"]

BINANCE_SPOT_TRADES_COLUMNS: tuple[str, ...] = (
    "id",
    "price",
    "qty",
    "quote_qty",
    "time",
    "is_buyer_maker",
    "is_best_match",
)
# Names that mark a first line as a header rather than a trade.
_HEADER_WORDS = frozenset(
    {*BINANCE_SPOT_TRADES_COLUMNS, "base_qty", "agg_trade_id", "quantity", "transact_time"}
)
_REQUIRED = ("id", "price", "time", "is_buyer_maker")


def read_binance_trades(data: bytes, label: str, *, errors: str) -> pd.DataFrame:
    """Read Binance spot, USD-M or COIN-M trades CSV content into the canonical frame."""
    fields = first_line_fields(data)
    lowered = [f.lower() for f in fields]
    header = bool(_HEADER_WORDS & set(lowered))
    if header:
        names = unique_names(fields)
        quantity = _quantity_column(label, fields, names)
    elif len(fields) == 7:
        names, quantity = list(BINANCE_SPOT_TRADES_COLUMNS), "qty"
    elif len(fields) == 6:
        raise TradeDataError(
            f"{label} line 1: a Binance trades file of 6 fields without a header is either "
            "USD-M (qty in base units) or COIN-M (qty in contracts) and cannot be told apart; "
            "add the header line id,price,qty,quote_qty,time,is_buyer_maker (USD-M) or "
            "id,price,qty,base_qty,time,is_buyer_maker (COIN-M)"
        )
    else:
        raise TradeDataError(
            f"{label} line 1: expected 7 Binance spot trades fields "
            f"({','.join(BINANCE_SPOT_TRADES_COLUMNS)}), got {len(fields)}: "
            f"{','.join(fields)[:60]!r}; pass the right fmt= if this is not a Binance trades file"
        )
    return read_binance_columns(data, label, names=names, header=header, errors=errors,
                                time="time", trade_id="id", quantity=quantity)


def _quantity_column(label: str, fields: list[str], names: list[str]) -> str:
    """The column holding base units: ``base_qty`` (COIN-M) or ``qty`` beside ``quote_qty``."""
    problems = []
    missing = [c for c in _REQUIRED if c not in names]
    if missing:
        problems.append(f"lacks {missing!r}")
    if "base_qty" in names:
        quantity = "base_qty"
    elif {"qty", "quote_qty"} <= set(names):
        quantity = "qty"
    else:
        problems.append("has neither qty with quote_qty nor base_qty")
    if problems:
        raise binance_header_error(label, fields, "as trades it " + " and ".join(problems))
    return quantity
