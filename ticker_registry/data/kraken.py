"""Headerless ``seconds,price,volume`` CSV as Kraken exports it (``fmt="kraken_csv"``).

The file has no aggressor side, so side is inferred with the tick rule
(:func:`~ticker_registry.data.infer_side_tick_rule`) and a warning is logged;
it has no trade id, so ``trade_id`` is the row position.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from ._common import RawTrades
from ._tabular import read_csv_trades

__all__ = ["KRAKEN_COLUMNS", "read_kraken_csv"]

KRAKEN_COLUMNS: tuple[str, ...] = ("timestamp", "price", "volume")
_TYPES: dict[str, pa.DataType | None] = {name: pa.float64() for name in KRAKEN_COLUMNS}


def read_kraken_csv(data: bytes, label: str, *, errors: str) -> pd.DataFrame:
    """Read headerless Kraken trade CSV content into the canonical frame."""

    def build(columns: dict[str, np.ndarray], locations: np.ndarray | None, broken: list) -> RawTrades:
        return RawTrades(
            label=label,
            unit="line",
            timestamp=columns["timestamp"],
            price=columns["price"],
            quantity=columns["volume"],
            side=None,
            locations=locations,
            broken=broken,
        )

    return read_csv_trades(
        data, label, names=KRAKEN_COLUMNS, header=False, types=_TYPES, build=build, errors=errors
    )
