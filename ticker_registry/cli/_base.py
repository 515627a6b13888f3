"""The ``ticker-registry`` command line: a thin click layer over the public API.

It parses, calls the library, formats. Every library error becomes one line
``Error: ...`` on stderr with exit code 1; usage errors exit 2 (click's rule).
Commands that print rows take ``--format table|json|csv|ndjson``; each command's rows
have a fixed set of keys (its JSON Schema in ``cli/schemas/``), and JSON, NDJSON and CSV
carry the raw values. Tables are drawn by rich (see :func:`emit`).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

from .. import __version__
from ..exceptions import TickerRegistryError
from ..redaction import redact_uri

__all__ = ["CliError", "Steps", "cli", "emit", "format_option", "main", "pass_context", "progress",
           "table_cell"]


class CliError(click.ClickException):
    """A library error shown as one line ``Error: ...`` (exit 1)."""

    exit_code = 1


#: Options of the group that may also be given after the command (they are moved before it).
_GLOBAL_WITH_VALUE = ("--tracking-uri", "--config", "--models-dir")
_GLOBAL_FLAGS = ("-q", "--quiet", "--verbose")


def _hoist_global_options(args: list[str], commands: Mapping[str, Any]) -> list[str]:
    """``ticker-registry status --models-dir D`` as ``ticker-registry --models-dir D status``."""
    position, i = None, 0
    while i < len(args):  # the command: the first word that is not a group option's value
        if args[i] in _GLOBAL_WITH_VALUE:
            i += 2
            continue
        if args[i] in commands:
            position = i
            break
        i += 1
    if position is None:
        return args
    head, rest, moved = args[:position], [], []
    tail = iter(args[position + 1:])
    for token in tail:
        if token == "--":
            rest += [token, *tail]
            break
        if token in _GLOBAL_WITH_VALUE:
            moved += [token, next(tail, "")]
        elif token.startswith(tuple(f"{o}=" for o in _GLOBAL_WITH_VALUE)) \
                or token in _GLOBAL_FLAGS or (len(token) > 1 and token.strip("v") == "-"):
            moved.append(token)
        else:
            rest.append(token)
    return [*head, *moved, args[position], *rest]


class _Group(click.Group):
    """A group that turns library errors into one-line messages, never a traceback, and takes
    its global options before or after the command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _hoist_global_options(list(args), self.commands))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TickerRegistryError as exc:
            raise CliError(str(exc)) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except OSError as exc:
            raise CliError(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from None
        except Exception as exc:  # a bug: still one line, the traceback only with -vv
            logging.getLogger("ticker_registry.cli").debug("unexpected error", exc_info=True)
            raise CliError(f"unexpected {type(exc).__name__}: {exc}; run with -vv for the "
                           "traceback and please report it") from None


class Context:
    """Options of the top-level group, handed to each command."""

    def __init__(self, tracking_uri: str | None, config_path: str | None, models_dir: str | None,
                 quiet: bool) -> None:
        self.tracking_uri = tracking_uri
        self.config_path = config_path
        self.models_dir = models_dir
        self.quiet = quiet

        self._manager: Any = None

    def config(self) -> Any:
        from ..config import load_config

        return load_config(self.config_path)

    def manager(self, *, read_only: bool = False) -> Any:
        """The synchronous manager on the chosen store (built once per command).

        ``read_only``: the command only reads, so a store that does not exist yet is an
        error (exit 1) instead of an empty store created as a side effect.
        """
        if read_only:
            self.require_store()
        if self._manager is None:
            from ..manager import SyncTickerModelManager

            self._manager = SyncTickerModelManager(self.config(), self.models_dir,
                                                   self.tracking_uri, auto_retrain=False,
                                                   read_only=read_only)
        return self._manager


    def store_uri(self) -> str:
        """The tracking URI the command uses (as the library resolves it)."""
        if self.tracking_uri:
            return self.tracking_uri
        if os.environ.get("MLFLOW_TRACKING_URI"):
            return os.environ["MLFLOW_TRACKING_URI"]
        directory = Path(self.models_dir or "mlruns").absolute()
        return f"sqlite:///{directory / 'mlflow.db'}"

    def require_store(self) -> None:
        """Refuse, in one line, to read an embedded store that does not exist or is damaged.

        Damaged: empty, not an SQLite database, failing SQLite's quick check, or without
        MLflow's registry tables (:func:`ticker_registry.doctor.sqlite_store_problem`).
        MLflow would otherwise create its tables in such a file and show it empty.
        """
        uri = self.store_uri()
        if not uri.startswith("sqlite:///"):
            return  # a server or another database: reading it creates nothing here
        path = Path(uri[len("sqlite:///"):])
        if not path.is_file():
            raise CliError(
                f"no model store at {redact_uri(uri)}: nothing to read. Create one with "
                "`ticker-registry train TICKER --trades FILE` (or `ticker-registry demo`), or "
                "point --models-dir / --tracking-uri at an existing store")
        from ..doctor import sqlite_store_problem

        problem = sqlite_store_problem(path, thorough=False)
        if problem:
            raise CliError(
                f"the model store {redact_uri(uri)} is damaged: {problem}; restore it from a "
                "backup, or point --models-dir / --tracking-uri at the model store (nothing "
                "was read or changed)")


pass_context = click.make_pass_decorator(Context)

#: Seconds a CLI command allows a tracking server per request (and for retries): an
#: interactive command fails fast; the library uses the config's registry_timeout.
CLI_REGISTRY_TIMEOUT = 5.0


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"],
                                           "max_content_width": 100})
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", metavar="URI",
              help="MLflow tracking/registry URI (default: sqlite:///<models-dir>/mlflow.db; "
                   "env MLFLOW_TRACKING_URI).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), metavar="FILE",
              envvar="TICKER_REGISTRY_CONFIG", help="YAML config (default: built-in defaults).")
@click.option("--models-dir", type=click.Path(file_okay=False), metavar="DIR",
              envvar="TICKER_REGISTRY_MODELS_DIR",
              help="Folder of the embedded store and sample database (default: ./mlruns).")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or chatter.")
@click.version_option(__version__, prog_name="ticker-registry")
@click.pass_context
def cli(ctx: click.Context, tracking_uri: str | None, config_path: str | None,
        models_dir: str | None, verbose: int, quiet: bool) -> None:
    """Train, version, serve and manage one order-flow model per ticker, in MLflow.

    One grammar: the ticker is an argument (`versions ETHUSDT`, `train ETHUSDT BTCUSDT
    ...`), files are --trades FILE / --file FILE, aliases --alias; the options above
    may also follow the command. Exit codes: 0 done, 1 the command failed (one line
    `Error: ...`), 2 the command line is wrong.

    \b
    Examples:
      ticker-registry demo
      ticker-registry train XRPETH --trades XRPETH-aggTrades-2019-10.zip
      ticker-registry status --format json
      ticker-registry versions XRPETH --models-dir /srv/models
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # MLflow logs INFO chatter (schema migrations, example validation) on its own handler,
    # configured from MLFLOW_LOGGING_LEVEL when mlflow is first imported (later, lazily);
    # setLevel covers the case where it is already imported (an in-process caller).
    mlflow_level = "DEBUG" if verbose >= 2 else "WARNING"
    logging.getLogger("mlflow").setLevel(mlflow_level)
    defaults = {"MLFLOW_LOGGING_LEVEL": mlflow_level}
    # An unreachable tracking server fails a command within ~10 s (README, "Running for a
    # team") instead of MLflow's default of minutes: 5 s per HTTP attempt, no blind re-sends
    # by MLflow (our retries are idempotent), no new attempt after 5 s; and MLflow's "View
    # run at" lines stay off stdout (it is ours: JSON, CSV).
    if tracking_uri and tracking_uri.lower().startswith(("http://", "https://")):
        from ..store.retry import http_deadlines

        defaults.update({**http_deadlines(CLI_REGISTRY_TIMEOUT),
                         "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"})
    # Variables the user set win; ours are removed on exit so an in-process caller
    # (CliRunner) is left as it was.
    added = [key for key in defaults if key not in os.environ]
    os.environ.update({key: defaults[key] for key in added})
    ctx.call_on_close(lambda: [os.environ.pop(key, None) for key in added])
    ctx.obj = Context(tracking_uri, config_path, models_dir, quiet)


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


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="ticker-registry")
