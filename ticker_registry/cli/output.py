"""What the CLI prints: rows in four formats, and what a long command is doing.

Commands that print rows take ``--format table|json|csv|ndjson`` (:func:`format_option`)
and print through :func:`emit`; a command's keys are its JSON Schema
(:mod:`ticker_registry.cli.schemas`). Progress goes to stderr, on a terminal only
(:func:`progress`, :class:`Steps`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import click
from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

__all__ = ["FORMATS", "Steps", "emit", "format_option", "progress", "table_cell"]


#: The output formats of every command that prints rows (``--format``).
FORMATS = ("table", "json", "csv", "ndjson")


def emit(rows: Sequence[Mapping[str, Any]], fmt: str, *, columns: Sequence[str] | None = None,
         table_columns: Sequence[str] | None = None,
         table_row: Callable[[Any], Mapping[str, Any]] | None = None) -> None:
    """Print ``rows`` as a table, JSON (an array), NDJSON (an object a line) or CSV.

    JSON, NDJSON and CSV rows have exactly the keys ``columns`` (a command's schema,
    :func:`ticker_registry.cli.schemas.columns`; a missing key is null) and raw values:
    None, NaN and infinities as null (an empty CSV cell), lists as arrays (in CSV joined
    by ","). The table shows ``table_columns`` (default ``columns``) of each row, mapped
    by ``table_row`` when given, formatted by :func:`table_cell` (lists joined by ", ").
    """
    if fmt == "table":
        shown = [table_row(row) for row in rows] if table_row else rows
        names = list(table_columns or columns or (shown[0].keys() if shown else []))
        if not shown:
            click.echo("(nothing to show)")
        else:
            _print_table([{c: _joined(row.get(c), ", ", table_cell) for c in names}
                          for row in shown], names)
        return
    names = list(columns or (rows[0].keys() if rows else []))
    plain = [{c: _raw(row.get(c)) for c in names} for row in rows]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        writer.writerows({c: _joined(v, ",", str) for c, v in row.items()} for row in plain)
        click.echo(buffer.getvalue(), nl=False)
    else:  # json, ndjson
        click.echo(json.dumps(plain, indent=2) if fmt == "json"
                   else "".join(json.dumps(row) + "\n" for row in plain), nl=fmt == "json")


def _raw(value: Any) -> Any:
    """A value as JSON carries it: numpy scalars as numbers, NaN/inf as None, tuples as lists."""
    value = value.item() if type(value).__module__ == "numpy" else value
    if isinstance(value, list | tuple):
        return [_raw(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if value is None or isinstance(value, bool | int | float | str | dict) else str(value)


def _joined(value: Any, sep: str, cell: Callable[[Any], str]) -> Any:
    return sep.join(cell(v) for v in value) if isinstance(value, list) else value


#: Terminal width assumed when stdout is not a terminal (a pipe, a file, CliRunner).
DEFAULT_TABLE_WIDTH = 100
#: rich's box.SIMPLE drawn in ASCII: a dashed rule under the header, no borders, so a
#: table reads the same in a log, a pipe and any terminal encoding.
_ASCII_SIMPLE = box.Box("    \n    \n -  \n    \n    \n -  \n    \n    \n", ascii=True)


def _print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Print ``rows`` as a table drawn by rich, written by ``click.echo`` (CliRunner sees it).

    Each cell is formatted by :func:`table_cell`; a column of numbers is right-aligned.
    The table fits the terminal's width (:data:`DEFAULT_TABLE_WIDTH` when stdout is not a
    terminal) by wrapping free-text columns at spaces (see :func:`_column_widths`); a word
    or a number is never split or cut, so a table that cannot fit is printed wider, as
    ``status --wide`` is. Styles (a bold header) only on a terminal. rich renders into a
    buffer and click writes it: click's stream handling (encoding, no stdout, stripping
    styles off a terminal) applies as to every other line, and the padding rich leaves
    after the last column is trimmed.
    """
    tty = sys.stdout is not None and sys.stdout.isatty()
    width = shutil.get_terminal_size((DEFAULT_TABLE_WIDTH, 24)).columns if tty else DEFAULT_TABLE_WIDTH
    texts = [[column, *(table_cell(row.get(column)) for row in rows)] for column in columns]
    gaps = 2 * max(len(columns) - 1, 0)  # a space of padding and one of divider between columns
    widths = _column_widths(texts, width - gaps)
    table = Table(box=_ASCII_SIMPLE, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
    for column, column_width in zip(columns, widths, strict=True):
        values = [row.get(column) for row in rows]
        numeric = any(_is_number(v) for v in values) and all(
            _is_number(v) or v is None or v == "" for v in values)
        table.add_column(column, justify="right" if numeric else "left", width=column_width,
                         overflow="fold")
    for row_texts in zip(*(column_texts[1:] for column_texts in texts), strict=True):
        table.add_row(*row_texts)
    buffer = io.StringIO()
    console = Console(file=buffer, width=max(width, sum(widths) + gaps), soft_wrap=False,
                      force_terminal=tty, color_system="auto" if tty else None,
                      no_color=None if tty else True, highlight=False, markup=False, emoji=False)
    console.print(table)
    click.echo("\n".join(line.rstrip() for line in buffer.getvalue().splitlines()))


def _column_widths(texts: Sequence[Sequence[str]], room: int) -> list[int]:
    """Column widths (header and cells given per column) that fit ``room`` when they can.

    Every column starts as wide as its widest line. While the sum exceeds ``room``, the
    widest free-text column (one with a space in it: reasons, details, timestamps) loses a
    character, never going below its longest word; other columns (numbers, names) keep
    their width. rich's own layout shrinks every column and splits words instead.
    """
    widths = [max(cell_len(line) for text in column for line in text.splitlines() or [""])
              for column in texts]
    least = [max(cell_len(word) for text in column for word in text.split() or [""])
             if any(any(c.isspace() for c in text) for text in column) else natural
             for column, natural in zip(texts, widths, strict=True)]
    while sum(widths) > room:
        shrinkable = [i for i, w in enumerate(widths) if w > least[i]]
        if not shrinkable:
            break
        widths[max(shrinkable, key=lambda i: widths[i])] -= 1
    return widths


def table_cell(value: Any) -> str:
    """A value as a table cell: integers whole, floats to 4 significant digits, None empty.

    A float too large for 4 significant digits without an exponent (10,000 and up, like
    MLflow's float-typed counters: ``n_train`` 15850.0) prints whole: ``15850``, never
    ``1.585e+04``. Booleans and text print as ``str()`` does.
    """
    if value is None:
        return ""
    if not _is_number(value) or isinstance(value, int):
        return str(value)
    text = f"{value:.4g}"
    return f"{value:.0f}" if "e+" in text and math.isfinite(value) else text


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def format_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
                        show_default=True, help="Output format: a table, or rows as JSON, CSV "
                        "or NDJSON (a JSON object a line; keys: docs/cli-output.md).")(func)


def progress(items: Iterable[Any], *, label: str, length: int, quiet: bool) -> Any:
    """A progress bar on a terminal; plain iteration when piped or ``--quiet``."""
    if quiet or not sys.stderr.isatty():
        return _Plain(items)
    return click.progressbar(items, label=label, length=length, file=sys.stderr)


class _Plain:
    def __init__(self, items: Iterable[Any]) -> None:
        self.items = items

    def __enter__(self) -> Iterable[Any]:
        return self.items

    def __exit__(self, *exc: object) -> None:
        return None


class Steps:
    """What a long command is doing, on stderr: a spinner naming the step, elapsed time, and a
    bar with ``done/total`` when ``total`` is given.

    Shown on a terminal only: with ``quiet``, or stderr piped, redirected or captured
    (CliRunner), every method does nothing. The line is cleared when the block ends, so
    what stays on the terminal is the command's own output. Use as a context manager;
    ``step(text)`` names the current step, ``update(n)`` counts finished items (the
    ``bar`` interface :func:`ticker_registry.parallel.train_many` calls) and, when
    ``per_item`` is given, names the next item's step: ``per_item[i]`` once ``i`` are done.
    """

    def __init__(self, text: str, *, quiet: bool, total: int | None = None,
                 per_item: Sequence[str] = ()) -> None:
        self.text = text
        self.total = total
        self.per_item = list(per_item)
        self.done = 0
        self.shown = not quiet and sys.stderr is not None and sys.stderr.isatty()
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> Steps:
        if self.shown:
            from rich import progress as bars  # on a terminal only: not imported otherwise

            columns: list[Any] = [bars.SpinnerColumn(), bars.TextColumn("{task.description}")]
            if self.total is not None:
                columns += [bars.BarColumn(), bars.MofNCompleteColumn()]
            self._progress = bars.Progress(*columns, bars.TimeElapsedColumn(),
                                           console=Console(file=sys.stderr), transient=True)
            self._progress.start()
            self._task = self._progress.add_task(self.text, total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def step(self, text: str) -> None:
        """Name the current step."""
        if self._progress is not None:
            self._progress.update(self._task, description=text)

    def update(self, n: int = 1) -> None:
        """Count ``n`` more items done."""
        self.done += n
        if self._progress is not None:
            self._progress.advance(self._task, n)
        if self.done < len(self.per_item):
            self.step(self.per_item[self.done])
