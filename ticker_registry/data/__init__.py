"""Trade file readers: every supported source becomes one canonical frame.

The canonical frame has exactly the columns of :data:`CANONICAL_COLUMNS`, in
that order, and a fresh ``RangeIndex``:

============  =======================  =============================================
column        dtype                    meaning
============  =======================  =============================================
timestamp     datetime64[ns, UTC]      trade time, ascending (stable for ties)
price         float64                  trade price, finite and > 0
quantity      float64                  base-currency amount, finite and > 0
side          int8                     +1 buyer was the aggressor, -1 seller was
trade_id      int64                    the source's id, or the 0-based row position
============  =======================  =============================================

Supported formats (``fmt``), detected from content and file name when not
given (see :mod:`ticker_registry.data.detect`); each may be gzip-compressed or
the single file inside a zip:

``"binance_agg"``   Binance aggTrades CSV, with or without header, ms or us times.
``"binance_trades"`` Binance trades CSV: spot (no header), USD-M futures or COIN-M
                    futures (header), ms or us times. ``quantity`` is in base
                    units: COIN-M's ``base_qty``, since its ``qty`` counts contracts.
``"ccxt_json"``     ccxt/freqtrade JSON: list of ``[ts, id, type, side, price,
                    amount, cost]`` lists, or list of ccxt trade dicts.
``"ccxt_csv"``      ccxt CSV ``timestamp,id,type,side,price,amount,cost,date``,
                    optionally with a leading pandas index column.
``"generic_csv"``   headed CSV with ``timestamp, price, quantity|amount`` and
                    optional ``side``, ``trade_id|id``.
``"parquet"``       Parquet with the same columns as ``generic_csv``.
``"kraken_csv"``    headerless ``unix_seconds,price,volume``; side is inferred.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike

import pandas as pd

from ..exceptions import TradeDataError
from ._common import CANONICAL_COLUMNS, ERRORS_MODES, infer_side_tick_rule
from .binance import read_binance_agg
from .binance_trades import read_binance_trades
from .ccxt import read_ccxt_csv, read_ccxt_json
from .detect import FORMATS, detect_format, load_source
from .generic import read_generic_csv, read_parquet
from .kraken import read_kraken_csv

__all__ = ["CANONICAL_COLUMNS", "FORMATS", "infer_side_tick_rule", "read_trade_files", "read_trades"]

_READERS = {
    "binance_agg": read_binance_agg,
    "binance_trades": read_binance_trades,
    "ccxt_json": read_ccxt_json,
    "ccxt_csv": read_ccxt_csv,
    "generic_csv": read_generic_csv,
    "parquet": read_parquet,
    "kraken_csv": read_kraken_csv,
}


def read_trades(
    path: str | PathLike[str], *, fmt: str | None = None, errors: str = "raise"
) -> pd.DataFrame:
    """Read a trade file into the canonical frame.

    Parameters
    ----------
    path
        The trade file (plain, ``.gz`` or single-member ``.zip``).
    fmt
        One of :data:`FORMATS`; ``None`` detects it from the content and name.
    errors
        ``"raise"`` (default): the first malformed row raises.
        ``"skip"``: malformed rows are dropped and a warning with their count
        is logged; the count is also in ``df.attrs["skipped_rows"]``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CANONICAL_COLUMNS`, sorted by time, ``RangeIndex``.
        ``df.attrs["skipped_rows"]`` is the number of dropped rows (0 unless
        ``errors="skip"``).

    Raises
    ------
    TradeDataError
        If the file is missing, empty, damaged, of unknown format, holds no
        valid trade, or (with ``errors="raise"``) has a malformed row; the
        message names the file, the 1-based line (record for JSON, row for
        Parquet) and the problem.
    """
    if errors not in ERRORS_MODES:
        raise TradeDataError(
            f"errors={errors!r} is not supported; use errors='raise' or errors='skip'"
        )
    if fmt is not None and fmt not in _READERS:
        raise TradeDataError(
            f"unknown trade format fmt={fmt!r}; use one of {', '.join(FORMATS)}, "
            "or fmt=None to detect it"
        )
    source = load_source(path)
    chosen = fmt or detect_format(source)
    return _READERS[chosen](source.data, source.label, errors=errors)


def read_trade_files(paths: Sequence[str | PathLike[str]]) -> pd.DataFrame:
    """Read and merge trade files into one canonical, time-sorted frame."""
    frames = [read_trades(p) for p in paths]
    if len(frames) == 1:
        return frames[0]
    merged = pd.concat(frames, ignore_index=True)
    return merged.sort_values("timestamp", kind="stable").reset_index(drop=True)
