"""Operator commands: export, import, preload, cleanup."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import Any

import click

from ._base import CliError, Context, cli, pass_context
from .completion import complete_tickers
from .output import Steps, emit, format_option, progress
from .schemas import columns


def _advance(bar: Any) -> None:
    if hasattr(bar, "update"):
        bar.update(1)


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return value


@cli.command("export")
@click.argument("ticker", required=False, shell_complete=complete_tickers)
@click.option("--version", "version", type=click.IntRange(1), default=None,
              help="Version number (default: the production alias).")
@click.option("--alias", default=None, help="Alias to export (production, staging).")
@click.option("--file", "file", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="Bundle file to write (any name; the content is a verified bundle).")
@click.option("--all", "all_", is_flag=True, help="Export every ticker into --out-dir.")
@click.option("--out-dir", "directory", type=click.Path(file_okay=False), metavar="DIR",
              help="Folder for --all (one bundle per ticker and version).")
@click.option("--which", type=click.Choice(["production", "all"]), default="production",
              show_default=True, help="With --all: production versions only, or every version.")
@click.option("--ticker", "ticker_option", hidden=True)  # before the one grammar
@click.option("--dir", "directory_old", type=click.Path(file_okay=False), hidden=True)
@format_option
@pass_context
def export_cmd(ctx: Context, ticker: str | None, ticker_option: str | None, version: int | None,
               alias: str | None, file: str | None, all_: bool, directory: str | None,
               directory_old: str | None, which: str, fmt: str) -> None:
    """Write a version of TICKER (or every ticker) to a self-contained, pickle-free bundle.

    \b
    Examples:
      ticker-registry export ETHUSDT --file ethusdt.trbundle
      ticker-registry export ETHUSDT --alias staging --file ethusdt-staging.trbundle
      ticker-registry export --all --out-dir backups/
    """
    ticker = ticker or ticker_option
    directory = directory or directory_old
    if all_:
        if ticker or file or version or alias:
            raise click.UsageError("--all exports every ticker into --out-dir; drop the TICKER "
                                   "and --file")
        if not directory:
            raise click.UsageError("--all needs --out-dir DIR")
        manager = ctx.manager(read_only=True)
        total = len(manager.registry.search_models())
        with progress(range(total), label="exporting", length=total, quiet=ctx.quiet) as bar:
            results = manager.export_all(directory, which=which,
                                         progress=lambda _result: _advance(bar))
        rows = [{**_plain(r), "file": r.path, "members": None} for r in results]
        emit(rows, fmt, columns=columns("export"),
             table_columns=["ticker", "version", "file", "status", "message"])
        if any(not r.get("ok", True) for r in rows):
            raise CliError(f"some tickers failed to export; see the table above ({directory})")
        return
    if not ticker or not file:
        raise click.UsageError("give the TICKER and --file FILE (or --all --out-dir DIR)")
    if version and alias:
        raise click.UsageError("give --version N or --alias A, not both")
    manifest = ctx.manager(read_only=True).export(ticker, file, version or alias)
    data = _plain(manifest)
    emit([{"ticker": data.get("ticker"), "version": data.get("model_version"), "file": file,
           "status": "exported", "ok": True, "members": len(data.get("members", [])),
           "message": ""}], fmt, columns=columns("export"),
         table_columns=["ticker", "version", "file", "members"])


@cli.command("import")
@click.argument("ticker", required=False, shell_complete=complete_tickers)
@click.option("--file", "file", type=click.Path(dir_okay=False), required=True, metavar="FILE",
              help="Bundle written by `ticker-registry export`.")
@click.option("--as-ticker", default=None, hidden=True)  # before the one grammar: the TICKER
@click.option("--force", is_flag=True, help="Register again even if this bundle was imported.")
@click.option("--promote", is_flag=True,
              help="Serve it at once if the ticker has no production version (default: staging).")
@format_option
@pass_context
def import_cmd(ctx: Context, ticker: str | None, file: str, as_ticker: str | None, force: bool,
               promote: bool, fmt: str) -> None:
    """Verify a bundle completely, then register it as a new version on staging.

    The version goes to the bundle's own ticker, or to TICKER when given. A bundle's
    metrics are its own claims: promote the version after review, or give --promote
    for a ticker that has no production version yet.

    \b
    Examples:
      ticker-registry import --file ethusdt.trbundle
      ticker-registry import ETHBTC --file ethusdt.trbundle
    """
    with Steps(f"importing {file}: verify, test-load, register", quiet=ctx.quiet):
        result = ctx.manager().import_bundle(file, as_ticker=ticker or as_ticker, force=force,
                                             promote=promote)
    emit([{"ticker": result.version.ticker, "version": result.version.version,
           "created": result.created, "aliases": list(result.version.aliases)}], fmt,
         columns=columns("import"))


@cli.command()
@click.argument("more", metavar="TICKER...", nargs=-1, shell_complete=complete_tickers)
@click.option("--tickers", "tickers", multiple=True, hidden=True)  # before the one grammar
@format_option
@pass_context
def preload(ctx: Context, tickers: tuple[str, ...], more: tuple[str, ...], fmt: str) -> None:
    """Download and verify each ticker's production version into the local cache.

    Exits 1 if any ticker failed (the others are still loaded).

    \b
    Example:
      ticker-registry preload ETHUSDT BTCUSDT ADAUSDT
    """
    names = [v for item in (*tickers, *more) for v in item.replace(",", " ").split() if v]
    if not names:
        raise click.UsageError("give the tickers to preload, e.g. `preload ETHUSDT BTCUSDT`")
    with Steps(f"preloading {len(names)} ticker(s): download, verify", quiet=ctx.quiet):
        results = ctx.manager(read_only=True).preload(names)
    emit([r.to_dict() for r in results], fmt, columns=columns("preload"))
    failed = [r.ticker for r in results if not r.ok]
    if failed:
        raise CliError(f"{len(failed)} of {len(results)} tickers failed to preload: "
                       f"{', '.join(failed)}")


@cli.command()
@click.option("--days", type=click.IntRange(0), default=30, show_default=True,
              help="Delete versions older than this many days...")
@click.option("--keep-last", type=int, default=2, show_default=True,
              help="...but always keep the newest K versions of each ticker (K >= 1).")
@click.argument("ticker", required=False, shell_complete=complete_tickers)
@click.option("--ticker", "ticker_option", default=None, hidden=True)  # before the one grammar
@click.option("--dry-run", is_flag=True, help="Show what would go and what stays; change nothing.")
@format_option
@pass_context
def cleanup(ctx: Context, days: int, keep_last: int, ticker: str | None,
            ticker_option: str | None, dry_run: bool, fmt: str) -> None:
    """Delete old versions that hold no alias and were not promoted recently (of TICKER only,
    when given).

    \b
    Examples:
      ticker-registry cleanup --days 30 --keep-last 2 --dry-run
      ticker-registry cleanup ETHUSDT --days 7
    """
    ticker = ticker or ticker_option
    report = ctx.manager(read_only=dry_run).cleanup(days=days, keep_last=keep_last, ticker=ticker,
                                                    dry_run=dry_run)
    rows = [{"action": "would delete" if dry_run else "deleted", **r} for r in report.deleted]
    rows += [{"action": "keep", **r} for r in report.kept]
    emit(rows, fmt, columns=columns("cleanup"))
    if fmt == "table":
        click.echo(report.summary(), err=True)


@cli.command()
@click.option("--repair", is_flag=True, help="Apply the safe fixes and report each action.")
@format_option
@pass_context
def doctor(ctx: Context, repair: bool, fmt: str) -> None:
    """Find a damaged store, broken versions and aliases, alias moves missing from the audit
    trail, orphan runs, stale batches, locks and leases.

    Each version's native files are downloaded from the store and checked against the
    sha256 recorded at registration. Exits 1 when problems remain (found without
    --repair, or not repairable).

    \b
    Example:
      ticker-registry doctor --repair
    """
    findings = ctx.manager(read_only=not repair).doctor(repair=repair)
    if not findings and fmt == "table":
        click.echo("healthy: no problem found in the registry, the artifacts or the sample store")
    else:
        emit([f.to_dict() for f in findings], fmt, columns=columns("doctor"))
    open_ = [f for f in findings if not f.action]
    if any(f.kind == "store_damaged" for f in open_):
        raise CliError("the model store is damaged (see above): restore it from a backup; "
                       "doctor repairs nothing in a damaged store")
    if open_:
        raise CliError(f"{len(open_)} problem(s) found; run `ticker-registry doctor --repair` "
                       "to fix what can be fixed safely")
