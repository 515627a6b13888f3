"""Shell completion of TICKER arguments from the model store.

click completes commands and options by itself (``_TICKER_REGISTRY_COMPLETE=bash_source
ticker-registry``, see the README's "CLI reference"); :func:`complete_tickers` adds the
tickers registered in the store that the global options already on the command line
(``--models-dir``, ``--tracking-uri``, ``--config``, or their environment variables) choose.

Completion runs on every Tab press, so it only reads, and it is bounded: an embedded store
whose SQLite file does not exist (or is not a sound model store) offers nothing and is not
created; a server gets :data:`COMPLETION_REGISTRY_TIMEOUT` per request; the whole look-up
is abandoned after :data:`COMPLETION_DEADLINE` seconds. Any error offers nothing: a
traceback in the middle of a command line helps no one.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import click
from click.shell_completion import CompletionItem

from ._base import Context

__all__ = ["COMPLETION_DEADLINE", "COMPLETION_REGISTRY_TIMEOUT", "complete_tickers",
           "registered_tickers"]

#: Seconds a tracking server gets per request while completing.
COMPLETION_REGISTRY_TIMEOUT = 2.0
#: Seconds after which completion gives up and offers nothing (importing the registry
#: client alone takes about 1 s).
COMPLETION_DEADLINE = 4.0
#: Environment variable overriding :data:`COMPLETION_DEADLINE` (seconds), e.g. on a slow host.
DEADLINE_ENV = "TICKER_REGISTRY_COMPLETION_DEADLINE"


def _deadline() -> float:
    try:
        return float(os.environ.get(DEADLINE_ENV, "") or COMPLETION_DEADLINE)
    except ValueError:
        return COMPLETION_DEADLINE


def registered_tickers(tracking_uri: str | None, config_path: str | None,
                       models_dir: str | None) -> list[str]:
    """The tickers registered in the store the global options choose, sorted; reads only.

    Raises whatever the store raises; an embedded store that does not exist or is not a
    sound model store gives ``[]`` (nothing is created).
    """
    options = Context(tracking_uri, config_path, models_dir, quiet=True)
    uri = options.store_uri()
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):])
        if not path.is_file():
            return []
        from ..doctor import sqlite_store_problem

        if sqlite_store_problem(path, thorough=False):
            return []  # MLflow would create its tables in it
    from ..versions import VersionCatalog

    config = options.config().replace(registry_timeout=COMPLETION_REGISTRY_TIMEOUT)
    catalog = VersionCatalog(config, tracking_uri=uri, models_dir=models_dir)
    return sorted(catalog.ticker_of(record.name) for record in catalog.search_models())


def complete_tickers(ctx: click.Context, param: click.Parameter,
                     incomplete: str) -> list[CompletionItem]:
    """click ``shell_complete`` of a TICKER argument: the registered tickers starting with
    ``incomplete`` (case-insensitive); nothing on any error or after the deadline."""
    try:
        options = ctx.find_root().params
        found: list[str] = []

        def look_up() -> None:
            try:
                found.extend(registered_tickers(options.get("tracking_uri"),
                                                options.get("config_path"),
                                                options.get("models_dir")))
            except BaseException:  # completion offers nothing instead of an error
                pass

        # a daemon thread: a server that does not answer cannot keep the shell waiting
        worker = threading.Thread(target=look_up, name="complete-tickers", daemon=True)
        worker.start()
        worker.join(_deadline())
        if worker.is_alive():
            return []
        prefix = incomplete.upper()
        given = _given_tickers(ctx, param)
        return [CompletionItem(name) for name in found
                if name.startswith(prefix) and name not in given]
    except Exception:
        return []


def _given_tickers(ctx: click.Context, param: click.Parameter) -> set[str]:
    """Tickers already typed for a many-valued argument (``train ETHUSDT <Tab>``)."""
    value: Any = ctx.params.get(param.name or "")
    if isinstance(value, tuple | list):
        return {str(v).upper() for v in value}
    return set()
