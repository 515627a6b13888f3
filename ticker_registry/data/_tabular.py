"""Shared CSV and Arrow plumbing for the tabular readers.

CSV files are read in one fast, typed, multi-threaded pass with
``pyarrow.csv``. Only when that pass fails or finds a bad value is the file
read again, keeping the line number of every row so an error can name it:
with Arrow again (all columns as text, lines found from newline positions)
when no quote can hide a newline, otherwise with the standard :mod:`csv`
module.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from ..exceptions import TradeDataError
from ._common import RawTrades, canonicalize

__all__ = ["arrow_to_numpy", "decode_text", "first_line_fields", "read_csv_trades"]

# Build a RawTrades from {column name: values}, row locations and broken rows.
Builder = Callable[[dict[str, np.ndarray], "np.ndarray | None", list], RawTrades]


def decode_text(data: bytes, label: str) -> str:
    """Decode UTF-8 (with or without BOM) or raise a TradeDataError naming the byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TradeDataError(
            f"{label} is not UTF-8 text (undecodable byte at offset {exc.start}); "
            "trade files must be UTF-8 CSV or JSON, or pass the right file"
        ) from exc


def first_line_fields(data: bytes) -> list[str]:
    """Return the stripped comma-separated fields of the first non-blank line."""
    head = data[:65536].decode("utf-8-sig", errors="replace")
    for line in head.splitlines():
        if line.strip():
            return [f.strip().strip('"').strip() for f in line.split(",")]
    return []


def unique_names(names: Sequence[str]) -> list[str]:
    """Give blank or repeated header names a placeholder so every column is addressable."""
    seen: set[str] = set()
    out = []
    for i, name in enumerate(names):
        clean = name.strip().lower()
        if not clean or clean in seen:
            clean = f"_column_{i}"
        seen.add(clean)
        out.append(clean)
    return out


def arrow_to_numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Convert an Arrow column to numpy; times become UTC ``datetime64[ns]`` (NaT for null)."""
    if pa.types.is_timestamp(column.type):
        tz = column.type.tz
        ns = column.cast(pa.timestamp("ns", tz=tz)).cast(pa.int64())
        ints = ns.to_numpy(zero_copy_only=False)
        ints = np.where(np.isnan(ints), np.iinfo(np.int64).min, ints) if ints.dtype.kind == "f" else ints
        return ints.astype(np.int64).view("datetime64[ns]")
    if pa.types.is_date(column.type):
        return arrow_to_numpy(column.cast(pa.timestamp("ns")))
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(
        column.type
    ):
        return np.asarray(column.to_numpy(zero_copy_only=False))
    return np.asarray(column.to_pandas().to_numpy(dtype=object, na_value=None), dtype=object)


def read_csv_trades(
    data: bytes,
    label: str,
    *,
    names: Sequence[str],
    header: bool,
    types: dict[str, pa.DataType | None],
    build: Builder,
    errors: str,
) -> pd.DataFrame:
    """Read a CSV of trades: fast typed pass first, line-tracking pass on failure.

    Parameters
    ----------
    data
        The whole decompressed file.
    label
        File name for messages.
    names
        Column names of the file (from its header, or assigned when it has none).
    header
        Whether the first non-blank line is a header to skip.
    types
        The columns the reader needs, with their Arrow type (``None``: infer).
    build
        Turns the columns into a :class:`RawTrades`.
    errors
        ``"raise"`` or ``"skip"``, see :func:`canonicalize`.
    """
    names = list(names)

    def slow() -> RawTrades:
        located = _read_located(data, label, names, header, list(types))
        if located is None:
            located = _read_slow(data, label, names, header, list(types))
        return build(*located)

    columns = _read_fast(data, names, header, types)
    raw = build(columns, None, []) if columns is not None else slow()
    return canonicalize(raw, errors=errors, relocate=slow)


def _read_fast(
    data: bytes, names: list[str], header: bool, types: dict[str, pa.DataType | None]
) -> dict[str, np.ndarray] | None:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        table = pa_csv.read_csv(
            io.BytesIO(data),
            read_options=pa_csv.ReadOptions(column_names=names, skip_rows=1 if header else 0),
            convert_options=pa_csv.ConvertOptions(
                column_types={k: v for k, v in types.items() if v is not None},
                include_columns=list(types),
                true_values=["True", "true"],
                false_values=["False", "false"],
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    return {name: arrow_to_numpy(table.column(name)) for name in types}


def _read_located(
    data: bytes, label: str, names: list[str], header: bool, wanted: list[str]
) -> tuple[dict[str, np.ndarray], np.ndarray, list[tuple[int, str]]] | None:
    """Arrow pass with every column as text, plus the line number of every row.

    Line numbers come from the newline positions, so this pass only runs when
    no quote can hide a newline inside a field and every line ends in
    ``\n`` or ``\r\n``; otherwise it returns None and the csv module is used.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if b'"' in data or data.count(b"\r") != data.count(b"\r\n") or data[:1] in (b"\n", b"\r"):
        return None
    decode_text(data, label)
    skip = 1 if header else 0
    broken: list[tuple[int, str]] = []

    def on_invalid(row: pa_csv.InvalidRow) -> str:
        if row.number is None:
            raise _Unlocated
        # Arrow numbers rows among non-blank lines (skipped ones included).
        broken.append((row.number, _width_problem(names, row.actual_columns, row.text)))
        return "skip"

    try:
        table = pa_csv.read_csv(
            io.BytesIO(data),
            read_options=pa_csv.ReadOptions(column_names=names, skip_rows=skip, use_threads=False),
            parse_options=pa_csv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in wanted}, include_columns=wanted
            ),
        )
    except (_Unlocated, pa.ArrowException):
        return None
    raw = np.frombuffer(data, dtype=np.uint8)
    ends = np.append(np.flatnonzero(raw == 10), raw.size)
    starts = np.append(0, ends[:-1] + 1)
    length = ends - starts
    last = np.where(length > 0, raw[np.maximum(ends - 1, 0)], 0)
    blank = (length == 0) | ((length == 1) & (last == 13))
    nonblank = np.flatnonzero(~blank) + 1
    numbers = np.asarray([number for number, _ in broken], dtype=np.int64)
    if numbers.size and (numbers.min() < 1 or numbers.max() > nonblank.size):
        return None
    keep = np.ones(nonblank.size, dtype=bool)
    keep[:skip] = False
    keep[numbers - 1] = False
    lines = nonblank[keep]
    broken = [(int(nonblank[number - 1]), problem) for number, problem in broken]
    if lines.size != table.num_rows:
        return None
    columns = {name: arrow_to_numpy(table.column(name)) for name in wanted}
    return columns, lines.astype(np.int64), broken


class _Unlocated(Exception):
    """Arrow could not give the line of an invalid row."""


def _width_problem(names: list[str], got: int, text: str) -> str:
    return (
        f"expected {len(names)} comma-separated fields ({', '.join(names)}), "
        f"got {got}: {_short(text)!r}"
    )


def _read_slow(
    data: bytes, label: str, names: list[str], header: bool, wanted: list[str]
) -> tuple[dict[str, np.ndarray], np.ndarray, list[tuple[int, str]]]:
    text = decode_text(data, label)
    picks = [names.index(name) for name in wanted]
    rows: list[list[str]] = []
    locations: list[int] = []
    broken: list[tuple[int, str]] = []
    skip_header = header
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for row in reader:
            if not any(field.strip() for field in row):
                continue
            if skip_header:
                skip_header = False
                continue
            if len(row) != len(names):
                broken.append((reader.line_num, _width_problem(names, len(row), ",".join(row))))
                continue
            rows.append([row[i] for i in picks])
            locations.append(reader.line_num)
    except csv.Error as exc:
        raise TradeDataError(
            f"{label} line {reader.line_num + 1}: not readable as CSV ({exc}); "
            "check the file is a plain comma-separated trade file"
        ) from exc
    columns = {
        name: np.array([r[j] for r in rows], dtype=object) for j, name in enumerate(wanted)
    }
    return columns, np.asarray(locations, dtype=np.int64), broken


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
