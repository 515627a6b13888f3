"""The ``ticker-registry`` command line: a thin click layer over the public API.

It parses, calls the library, formats. Every library error becomes one line
``Error: ...`` on stderr with exit code 1; usage errors exit 2 (click's rule).
Read commands take ``--format table|json|csv``; the JSON shapes are stable.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..exceptions import TickerRegistryError
from ..redaction import redact_uri

__all__ = ["CliError", "cli", "emit", "format_option", "main", "pass_context", "progress"]


class CliError(click.ClickException):
    """A library error shown as one line ``Error: ...`` (exit 1)."""

    exit_code = 1


class _Group(click.Group):
    """A group that turns library errors into one-line messages, never a traceback."""

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
                                                   self.tracking_uri, auto_retrain=False)
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
        """Refuse, in one line, to read an embedded store that does not exist."""
        uri = self.store_uri()
        if not uri.startswith("sqlite:///"):
            return  # a server or another database: reading it creates nothing here
        path = Path(uri[len("sqlite:///"):])
        if not path.is_file():
            raise CliError(
                f"no model store at {redact_uri(uri)}: nothing to read. Create one with "
                "`ticker-registry train --ticker T --trades FILE` (or `ticker-registry demo`), or "
                "point --models-dir / --tracking-uri at an existing store")
        with path.open("rb") as head:
            magic = head.read(16)
        if magic != b"SQLite format 3\x00":
            raise CliError(
                f"the model store {redact_uri(uri)} is damaged: {path.name} is "
                f"{'empty' if not magic else 'not an SQLite database'} ({path.stat().st_size} "
                "bytes); restore it from a backup (nothing was read or changed)")


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

    \b
    Example:
      ticker-registry demo
      ticker-registry train --ticker XRPETH --trades XRPETH-aggTrades-2019-10.zip
      ticker-registry status --format json
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


def emit(rows: Sequence[Mapping[str, Any]], fmt: str, *, columns: Sequence[str] | None = None,
         json_value: Any = None) -> None:
    """Print ``rows`` as a table, CSV, or JSON (``json_value`` when given, else the rows)."""
    if fmt == "json":
        click.echo(json.dumps(rows if json_value is None else json_value, indent=2, default=str))
        return
    columns = list(columns or (rows[0].keys() if rows else []))
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore",
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        click.echo(buffer.getvalue(), nl=False)
        return
    if not rows:
        click.echo("(nothing to show)")
        return
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    click.echo("  ".join("-" * w for w in widths))
    for r in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]),
                        default="table", show_default=True, help="Output format.")(func)


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


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="ticker-registry")
