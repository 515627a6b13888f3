"""Commands about models and versions: train, status, metadata, versions, compare, best,
promote, rollback, ui."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from ._base import CliError, Context, cli, pass_context
from .completion import complete_tickers
from .output import Steps, emit, format_option
from .schemas import columns


def _names_ticker(filename: str, ticker: str) -> bool:
    """``BTCUSDT-trades.csv`` and ``btcusdt.csv`` belong to BTCUSDT; ``BTCUSDT-x`` not to BTC."""
    upper = filename.upper()
    if not upper.startswith(ticker):
        return False
    rest = upper[len(ticker):]
    return not rest or not rest[0].isalnum()


def _split(values: tuple[str, ...]) -> list[str]:
    return [v for item in values for v in item.replace(",", " ").split() if v]


@cli.command()
@click.argument("ticker_args", metavar="[TICKER]...", nargs=-1, shell_complete=complete_tickers)
@click.option("--trades", "trades", multiple=True, type=click.Path(dir_okay=False),
              metavar="FILE", help="Trade file(s) of the one TICKER (repeatable).")
@click.option("--trades-dir", type=click.Path(file_okay=False, exists=True), metavar="DIR",
              help="Folder with one or more files per ticker, each named <TICKER>*.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Tickers trained in parallel worker processes.")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local",
              show_default=True, help="Local worker processes, or a Dask cluster.")
@click.option("--scheduler", metavar="tcp://HOST:PORT", default=None,
              help="Dask scheduler (default with --executor dask: a LocalCluster of --workers).")
@click.option("--ticker", "tickers", multiple=True, hidden=True)  # before the one grammar
@click.option("--tickers", "ticker_list", multiple=True, hidden=True)
@format_option
@pass_context
def train(ctx: Context, ticker_args: tuple[str, ...], tickers: tuple[str, ...],
          ticker_list: tuple[str, ...], trades: tuple[str, ...], trades_dir: str | None,
          workers: int, executor: str, scheduler: str | None, fmt: str) -> None:
    """Train, register and gate a version of each TICKER from trade files.

    \b
    Examples:
      ticker-registry train XRPETH --trades XRPETH-aggTrades-2019-10.zip
      ticker-registry train ETHUSDT BTCUSDT --trades-dir data/ --workers 2
      ticker-registry train ETHUSDT BTCUSDT --trades-dir /shared/trades \\
          --executor dask --scheduler tcp://10.0.0.5:8786
    """
    names = _split(ticker_args) + list(tickers) + _split(ticker_list)
    paths = list(trades)
    files = [n for n in names if Path(n).is_file()]
    if files:
        raise click.UsageError(f"{files[0]!r} is a file; give trade files with --trades FILE "
                               "(the arguments are tickers)")
    if not names:
        raise click.UsageError("give the TICKER(s) to train, e.g. `train ETHUSDT --trades FILE`")
    if paths and trades_dir:
        raise click.UsageError("use either --trades FILE or --trades-dir DIR, not both")
    if paths and len(names) > 1:
        raise click.UsageError("--trades FILE trains one ticker; use --trades-dir for several")
    if scheduler and executor != "dask":
        raise click.UsageError("--scheduler needs --executor dask")
    if not paths and not trades_dir:
        raise click.UsageError("give the trades with --trades FILE or --trades-dir DIR")
    from ..tickers import normalize_ticker

    jobs: list[tuple[str, list[str]]] = []
    for raw in names:
        name = normalize_ticker(raw)
        found = paths if paths else sorted(str(p) for p in Path(trades_dir or ".").iterdir()
                                           if p.is_file() and _names_ticker(p.name, name))
        if not found:
            raise CliError(f"no trade file for {name} in {trades_dir}; name files <TICKER>*")
        for path in found:
            if not Path(path).is_file():
                raise CliError(f"trade file {path!r} does not exist")
        jobs.append((name, found))
    one_by_one = executor == "local" and (workers <= 1 or len(jobs) <= 1)
    per_ticker = [f"training {name}: trades, features, fit, register"
                  for name, _files in jobs] if one_by_one else []
    with Steps("opening the model store", total=len(jobs), per_item=per_ticker,
               quiet=ctx.quiet) as steps:
        manager = ctx.manager()
        from ..parallel import train_many

        steps.step(per_ticker[0] if per_ticker else
                   f"training {len(jobs)} tickers on {workers} {executor} workers")
        outcomes = train_many(manager, jobs, workers=workers, executor=executor,
                              scheduler=scheduler, bar=steps)
    rows = outcomes
    from ..evaluation import served_skill_score

    for row in rows:
        metrics = row.pop("metrics")
        row["skill_score"] = served_skill_score(metrics)
        row.update({k: metrics.get(k) for k in ("skill_flow_type", "skill_impact",
                                                "skill_time_to_execution")})
    emit(rows, fmt, columns=columns("train"), table_columns=[
        "ticker", "version", "created", "alias", "promoted", "skill_score", "reason"])


@cli.command()
@click.argument("ticker", required=False, shell_complete=complete_tickers)
@click.option("--trades", "trades", multiple=True, required=True, type=click.Path(dir_okay=False),
              metavar="FILE", help="Trade file(s) (repeatable).")
@click.option("--model-type", type=click.Choice(["xgboost", "lightgbm", "random_forest"]),
              default=None, help="Model family (default: the config's).")
@click.option("--ticker", "ticker_option", hidden=True)  # before the one grammar
@format_option
@pass_context
def evaluate(ctx: Context, ticker: str | None, ticker_option: str | None, trades: tuple[str, ...],
             model_type: str | None, fmt: str) -> None:
    """Purged walk-forward table of a model on trade files; registers nothing.

    Per head: the model's out-of-sample loss against each naive baseline, its skill
    over the best baseline with a 95% interval, folds won, and what would serve it.

    \b
    Example:
      ticker-registry evaluate LTCUSDT --trades LTCUSDT-aggTrades-2025-06-21_22.csv.gz
    """
    ticker = ticker or ticker_option
    if not ticker:
        raise click.UsageError("give the TICKER the trades belong to, e.g. `evaluate LTCUSDT "
                               "--trades FILE`")
    from ..data import read_trade_files
    from ..evaluation import evaluation_rows
    from ..tickers import normalize_ticker
    from ..training import evaluate_trades

    name = normalize_ticker(ticker)
    cfg = ctx.config()
    if model_type:
        cfg = cfg.replace(model_type=model_type)
    with Steps(f"reading {len(trades)} trade file(s)", quiet=ctx.quiet) as steps:
        frame = read_trade_files(list(trades))
        steps.step(f"{name}: purged walk-forward over {len(frame):,} trades, {cfg.cv_folds} folds")
        model = evaluate_trades(frame, cfg)
    rows = [{"ticker": name, "model_type": cfg.model_type,
             "large_order_threshold": model.spec_.large_order_threshold, **row}
            for row in evaluation_rows(model.evaluation_)]

    def cells(row: dict[str, Any]) -> dict[str, Any]:  # the table: the interval and folds as text
        skill = row["skill"]
        return {**row, "fold_skill": " ".join(f"{x:+.3f}" for x in row["fold_skill"]),
                "skill_95": None if skill is None else
                f"{skill:+.4f} [{row['skill_low']:+.4f}, {row['skill_high']:+.4f}]"}

    emit(rows, fmt, columns=columns("evaluate"), table_row=cells, table_columns=[
        "head", "serves", "loss", "model", "baseline_prior", "baseline_zero", "baseline_mean",
        "baseline_median", "skill_95", "folds_won", "fold_skill"])
    if fmt == "table":
        click.echo(f"{name}: {len(frame):,} trades, {cfg.model_type}, large_order_threshold "
                   f"{model.spec_.large_order_threshold:g}, {cfg.cv_folds} purged folds; skill = "
                   f"1 - loss/baseline loss, significant at alpha={cfg.skill_alpha:g}")


#: The default status table: fits 100 columns for ordinary tickers (--wide shows everything).
STATUS_NARROW = ["ticker", "prod", "staging", "versions", "model", "skill", "serves F/I/T",
                 "samples", "last_trained"]


def narrow_status_row(row: dict[str, Any]) -> dict[str, Any]:
    serving = row.get("serving") or ""
    served = "/".join("M" if part.endswith("=model") else "B" for part in serving.split(", ")
                      if part)
    last = row.get("last_trained") or ""
    return {"ticker": row["ticker"], "prod": row["production"], "staging": row["staging"],
            "versions": row["versions"], "model": row["model_type"], "skill": row["skill_score"],
            "serves F/I/T": served or None, "samples": row["total_samples"],
            "last_trained": last[:16].replace("T", " ") or None}


@cli.command()
@click.option("--wide", is_flag=True, help="Every column (metrics, baselines, counters).")
@format_option
@pass_context
def status(ctx: Context, wide: bool, fmt: str) -> None:
    """Every ticker: aliases, served skill, what serves each head, training counters.

    "serves F/I/T" says whether flow_type, impact and time_to_execution are served by
    their Model or their Baseline; skill is the mean served skill over the three heads.
    Under the table, each ticker whose newest version does not serve gets one line:
    where the gate put it and why.
    JSON, NDJSON and CSV carry every column (as --wide); the seed's model_metadata.json
    is the `metadata` command.

    \b
    Example:
      ticker-registry status --format csv > status.csv
    """
    rows = ctx.manager(read_only=True).status()
    emit(rows, fmt, columns=columns("status"), table_columns=None if wide else STATUS_NARROW,
         table_row=None if wide else narrow_status_row)
    if fmt == "table" and not wide:  # why a newer version does not serve, one line a ticker
        for row in rows:
            if row["latest"] is not None and row["latest"] != row["production"]:
                line = (f"{row['ticker']} v{row['latest']}: {row['decision'] or 'not gated'}"
                        f" - {row['decision_reason'] or 'no reason recorded'}")
                click.echo(line if len(line) <= 100 else line[:97] + "...")


@cli.command()
@click.option("--out", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="Write to FILE instead of stdout.")
@pass_context
def metadata(ctx: Context, out: str | None) -> None:
    """The seed's model_metadata.json (one entry per ticker).

    \b
    Example:
      ticker-registry metadata --out model_metadata.json
    """
    text = json.dumps(ctx.manager(read_only=True).metadata(), indent=2)
    if out:
        Path(out).write_text(text + "\n")
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(text)


@cli.command()
@click.argument("ticker", shell_complete=complete_tickers)
@format_option
@pass_context
def versions(ctx: Context, ticker: str, fmt: str) -> None:
    """History of a ticker: versions, metrics, aliases, lineage, promotions.

    \b
    Example:
      ticker-registry versions ETHUSDT
    """
    emit(ctx.manager(read_only=True).versions(ticker), fmt, columns=columns("versions"), table_columns=[
        "version", "aliases", "created_at", "model_type", "skill_score", "serving", "samples",
        "source", "gate"])


@cli.command()
@click.argument("ticker", shell_complete=complete_tickers)
@format_option
@pass_context
def history(ctx: Context, ticker: str, fmt: str) -> None:
    """Every alias move of a ticker, oldest first (the complete audit trail).

    \b
    Example:
      ticker-registry history ETHUSDT
    """
    emit([event.to_dict() for event in ctx.manager(read_only=True).history(ticker)], fmt,
         columns=columns("history"))


@cli.command()
@click.argument("ticker", shell_complete=complete_tickers)
@click.argument("v1", type=int)
@click.argument("v2", type=int)
@format_option
@pass_context
def compare(ctx: Context, ticker: str, v1: int, v2: int, fmt: str) -> None:
    """Two versions side by side: recorded scores and the gate's verdict between them.

    \b
    Example:
      ticker-registry compare ETHUSDT 1 2
    """
    rows = ctx.manager(read_only=True).compare(ticker, v1, v2)  # keys v<N>: v1, v2 as given
    emit([{**row, "v1": row.get(f"v{v1}"), "v2": row.get(f"v{v2}")} for row in rows], fmt,
         columns=columns("compare"))
    if fmt == "table":
        click.echo(f"v1: version {v1}, v2: version {v2}; difference = v2 - v1")


@cli.command()
@click.option("--metric", default="skill_score", show_default=True,
              help="Metric to rank by: skill_score (served skill over baselines) or a "
                   "recorded metric (lower is better for *_logloss / *_mse / *_mae).")
@click.option("-n", "n", type=click.IntRange(1, 10_000), default=10, show_default=True,
              help="How many tickers.")
@format_option
@pass_context
def best(ctx: Context, metric: str, n: int, fmt: str) -> None:
    """The best tickers by a metric of their production version.

    \b
    Example:
      ticker-registry best --metric impact_mse -n 5
    """
    emit(ctx.manager(read_only=True).best(metric, n), fmt, columns=columns("best"))


@cli.command()
@click.argument("ticker", shell_complete=complete_tickers)
@click.argument("version", type=click.IntRange(1))
@click.option("--alias", "alias", default=None, metavar="ALIAS",
              help="Alias to move: production (default) or staging.")
@click.option("--to", "alias_old", default=None, hidden=True)  # before the one grammar
@click.option("--reason", default="", help="Why (kept in the audit trail).")
@click.option("--expect", "expected", type=int, default=None,
              help="Fail with a conflict unless the alias is still on this version.")
@format_option
@pass_context
def promote(ctx: Context, ticker: str, version: int, alias: str | None, alias_old: str | None,
            reason: str, expected: int | None, fmt: str) -> None:
    """Point production (or staging) at VERSION, compare-and-set, with an audit entry.

    \b
    Example:
      ticker-registry promote ETHUSDT 3 --reason "beats v2 on last week"
      ticker-registry promote ETHUSDT 4 --alias staging
    """
    kwargs: dict[str, Any] = {"to": alias or alias_old, "reason": reason}
    if expected is not None:
        kwargs["expected"] = expected
    event = ctx.manager().promote(ticker, version, **kwargs)
    emit([event.to_dict()], fmt, columns=columns("promote"))


@cli.command()
@click.argument("ticker", shell_complete=complete_tickers)
@click.option("--to-version", type=click.IntRange(1), default=None,
              help="Version to roll back to (default: the previous production version).")
@click.option("--reason", default="", help="Why (kept in the audit trail).")
@format_option
@pass_context
def rollback(ctx: Context, ticker: str, to_version: int | None, reason: str, fmt: str) -> None:
    """Move production back to the previous production version.

    \b
    Example:
      ticker-registry rollback ETHUSDT --reason "live accuracy dropped"
    """
    emit([ctx.manager().rollback(ticker, to_version=to_version, reason=reason).to_dict()], fmt,
         columns=columns("rollback"))


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@pass_context
def ui(ctx: Context, host: str, port: int) -> None:
    """Start the MLflow UI on this store (loopback by default).

    \b
    Example:
      ticker-registry ui --port 5000
    """
    uri = ctx.manager(read_only=True).tracking_uri
    if uri.startswith(("http:", "https:")):
        click.echo(f"this store is served by {uri}; open it in a browser")
        return
    click.echo(f"MLflow UI for {uri} on http://{host}:{port} (Ctrl-C to stop)")
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host,
           "--port", str(port)]
    try:
        raise SystemExit(subprocess.call(cmd))
    except KeyboardInterrupt:
        raise SystemExit(0) from None
