"""Opening trade files (plain, gzip, zip) and telling their format apart.

Detection looks at content first and at the file name only when the content
does not decide:

1. Magic bytes: ``PAR1`` is Parquet; gzip (``1f 8b``) and zip (``PK``) are
   opened and the rules below apply to what is inside (a zip must hold exactly
   one file).
2. Text starting with ``[`` is a ccxt JSON trade list (``ccxt_json``).
3. A CSV header naming a Binance column (``is_buyer_maker``, ``transact_time``,
   ``agg_trade_id``, ``quote_qty``, ...) is Binance: aggTrades
   (``binance_agg``) when it names ``transact_time``, ``agg_trade_id``,
   ``first_trade_id`` or ``last_trade_id``, otherwise trades
   (``binance_trades``), whose reader names the layouts it expects when the
   header fits none. One naming ``timestamp, side, price, amount`` plus
   ccxt's ``type`` or ``cost`` is ``ccxt_csv``; one naming ``timestamp``,
   ``price`` and ``quantity`` or ``amount`` is ``generic_csv``.
4. A headerless CSV whose first row has 6 or 7 fields with True/False in the
   6th is Binance trades (``binance_trades``; spot's 7 are ``...,time,
   is_buyer_maker,is_best_match``, and its reader refuses 6, where USD-M
   cannot be told from COIN-M); one with 7 or 8 fields and True/False in the
   7th but an integer time in the 6th is ``binance_agg``; one with 3 numeric
   fields is ``kraken_csv`` (``seconds,price,volume``).
5. Otherwise the name decides: ``.parquet``/``.pq`` -> ``parquet``,
   ``.json`` -> ``ccxt_json``, ``aggTrades`` in the name -> ``binance_agg``.
"""

from __future__ import annotations

import gzip
import io
import stat
import zipfile
import zlib
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from ..exceptions import TradeDataError
from ._tabular import first_line_fields

__all__ = ["FORMATS", "Source", "detect_format", "load_source"]

FORMATS: tuple[str, ...] = (
    "binance_agg",
    "binance_trades",
    "ccxt_json",
    "ccxt_csv",
    "generic_csv",
    "parquet",
    "kraken_csv",
)

_PARQUET_MAGIC = b"PAR1"
_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"
_KNOWN_HEADER_NAMES = frozenset(
    {
        "agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time",
        "is_buyer_maker", "is_best_match", "timestamp", "id", "trade_id", "type", "side",
        "amount", "cost", "date", "qty", "quote_qty", "base_qty", "time",
    }
)
# Columns only Binance files have, and those only aggTrades have.
_BINANCE_NAMES = frozenset(
    {"agg_trade_id", "first_trade_id", "last_trade_id", "transact_time", "is_buyer_maker",
     "is_best_match", "quote_qty", "base_qty"}
)
_BINANCE_AGG_NAMES = frozenset({"agg_trade_id", "first_trade_id", "last_trade_id", "transact_time"})
_BOOL_WORDS = frozenset({"true", "false"})


@dataclass(frozen=True)
class Source:
    """A trade file's decompressed bytes.

    Attributes
    ----------
    data
        The decompressed content.
    label
        Name used in messages (``"x.zip"``, or ``"x.zip:member.csv"``).
    inner_name
        Name of the content once unwrapped (gzip suffix dropped, zip member).
    """

    data: bytes
    label: str
    inner_name: str


def load_source(path: str | PathLike[str]) -> Source:
    """Read ``path`` fully and unwrap gzip or single-member zip content.

    Raises
    ------
    TradeDataError
        If the file is missing, unreadable, empty, or a damaged archive.
    """
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError as exc:
        raise TradeDataError(f"trade file {str(p)!r} does not exist; check the path") from exc
    except OSError as exc:
        raise TradeDataError(f"cannot read trade file {str(p)!r}: {exc.strerror or exc}") from exc
    if stat.S_ISDIR(mode):
        raise TradeDataError(f"{str(p)!r} is a directory; pass a trade file inside it")
    if not stat.S_ISREG(mode):
        # a FIFO or device would block the read for ever or never end
        raise TradeDataError(f"{str(p)!r} is not a regular file (a pipe, socket or device); "
                             "save the trades to a file and pass its path")
    try:
        data = p.read_bytes()
    except FileNotFoundError as exc:
        raise TradeDataError(
            f"trade file {str(p)!r} does not exist; check the path"
        ) from exc
    except IsADirectoryError as exc:
        raise TradeDataError(f"{str(p)!r} is a directory; pass a trade file inside it") from exc
    except OSError as exc:
        raise TradeDataError(f"cannot read trade file {str(p)!r}: {exc.strerror or exc}") from exc
    label, inner = p.name, p.name
    if data.startswith(_GZIP_MAGIC):
        data = _gunzip(data, label)
        inner = inner[:-3] if inner.lower().endswith(".gz") else inner
    elif data.startswith(_ZIP_MAGIC):
        inner, data = _unzip(data, label)
        label = f"{label}:{inner}"
    if not data[:65536].strip() and not data.strip():
        raise TradeDataError(
            f"trade file {label!r} is empty; pass a file that holds trades"
        )
    return Source(data=data, label=label, inner_name=inner)


#: Largest decompressed trade file read (bytes): about 20 million trades of CSV. A zip or
#: gzip that inflates beyond it is refused before it exhausts memory.
MAX_TRADE_BYTES = 2 << 30


def _too_large(label: str) -> TradeDataError:
    return TradeDataError(
        f"{label} decompresses to more than {MAX_TRADE_BYTES / 2**30:.0f} GiB; split the trades "
        "into smaller files (one per day, as Binance publishes them)")


def _gunzip(data: bytes, label: str) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            out = stream.read(MAX_TRADE_BYTES + 1)
        if len(out) > MAX_TRADE_BYTES:
            raise _too_large(label)
        return out
    except (OSError, EOFError, zlib.error) as exc:
        raise TradeDataError(
            f"{label} is a damaged or truncated gzip file ({exc}); download it again"
        ) from exc


def _unzip(data: bytes, label: str) -> tuple[str, bytes]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [
                m for m in archive.infolist()
                if not m.is_dir() and not m.filename.startswith("__MACOSX/")
            ]
            if len(members) != 1:
                raise TradeDataError(
                    f"{label} holds {len(members)} files "
                    f"({[m.filename for m in members][:5]!r}); expected exactly one "
                    "trade CSV as Binance publishes it — extract the one you want"
                )
            member = members[0]
            if member.file_size > MAX_TRADE_BYTES:
                raise _too_large(label)
            with archive.open(member) as stream:
                out = stream.read(MAX_TRADE_BYTES + 1)
            if len(out) > MAX_TRADE_BYTES:
                raise _too_large(label)
            return member.filename, out
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, zlib.error,
            NotImplementedError, RuntimeError) as exc:
        raise TradeDataError(
            f"{label} is a damaged or truncated zip file ({exc}); download it again"
        ) from exc


def detect_format(source: Source) -> str:
    """Return the format name of ``source`` (see the module docstring for the rules).

    Raises
    ------
    TradeDataError
        If neither content nor name tells the format.
    """
    data = source.data
    if data.startswith(_PARQUET_MAGIC):
        return "parquet"
    stripped = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"["):
        return "ccxt_json"
    if b"\x00" not in data[:65536]:
        found = _sniff_csv(first_line_fields(data))
        if found:
            return found
    name = source.inner_name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith(".json"):
        return "ccxt_json"
    if "aggtrades" in name:
        return "binance_agg"
    raise TradeDataError(
        f"cannot tell the format of {source.label!r}; expected one of "
        f"{', '.join(FORMATS)} — pass fmt=... to read_trades"
    )


def _sniff_csv(fields: list[str]) -> str | None:
    lowered = [f.lower() for f in fields]
    names = set(lowered)
    if names & _KNOWN_HEADER_NAMES:
        if names & _BINANCE_NAMES:
            return "binance_agg" if names & _BINANCE_AGG_NAMES else "binance_trades"
        if {"timestamp", "side", "price", "amount"} <= names and names & {"type", "cost"}:
            return "ccxt_csv"
        if {"timestamp", "price"} <= names and names & {"quantity", "amount"}:
            return "generic_csv"
        return None
    if len(fields) in (6, 7) and lowered[5] in _BOOL_WORDS:
        return "binance_trades"
    if len(fields) in (7, 8) and lowered[6] in _BOOL_WORDS:
        return "binance_agg"
    if len(fields) == 3 and all(_is_number(f) for f in fields):
        return "kraken_csv"
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
