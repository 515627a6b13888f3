"""The ``ticker-registry`` command line: a thin click layer over the public API.

It parses, calls the library, formats. Every library error becomes one line
``Error: ...`` on stderr with exit code 1; usage errors exit 2 (click's rule).
Commands that print rows take ``--format table|json|csv|ndjson``; each command's rows
have a fixed set of keys (its JSON Schema in ``cli/schemas/``), and JSON, NDJSON and CSV
carry the raw values. Tables are drawn by rich (see :func:`emit`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..exceptions import TickerRegistryError
from ..redaction import redact_uri

__all__ = ["CliError", "Context", "cli", "main", "pass_context"]


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


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="ticker-registry")
