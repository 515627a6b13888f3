"""Commands that run things end to end: demo and run-strategy."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import click

from ._base import Context, cli, pass_context
from .completion import complete_tickers
from .models import STATUS_NARROW, narrow_status_row
from .output import Steps, emit, format_option
from .schemas import columns

DEMO_TICKERS = ("ETHUSDT", "BTCUSDT", "ADAUSDT")
DEMO_TRADES = 20_000


@cli.command()
@click.option("--workdir", "directory", type=click.Path(file_okay=False), default=".",
              show_default=True, help="Folder to run in (the store goes to WORKDIR/mlruns).")
@click.option("--n-trades", "n_trades", type=click.IntRange(2_000, 1_000_000),
              default=DEMO_TRADES, show_default=True,
              help="Synthetic trades per ticker and round.")
@click.option("--dir", "directory_old", type=click.Path(file_okay=False), hidden=True)
@click.option("--trades", "n_trades_old", type=click.IntRange(2_000, 1_000_000), hidden=True)
@pass_context
def demo(ctx: Context, directory: str, n_trades: int, directory_old: str | None,
         n_trades_old: int | None) -> None:
    """Train, register and promote synthetic ETHUSDT, BTCUSDT and ADAUSDT models.

    Runs two training rounds per ticker on the embedded store (SQLite and
    ./mlruns) so the registry shows a second version and the gate's decision.
    The trades are SYNTHETIC (see ticker_registry.synthetic), not market data.
    Safe to run again: each run adds a round of new versions.

    \b
    Example:
      ticker-registry demo --workdir /tmp/demo
    """
    directory = directory_old or directory  # the spellings before the one grammar
    n_trades = n_trades_old or n_trades
    start = time.perf_counter()
    root = Path(directory)
    models_dir = Path(ctx.models_dir) if ctx.models_dir else root / "mlruns"
    if not ctx.quiet:  # at once, before the heavy imports (pandas, MLflow: seconds)
        where = "the --tracking-uri store" if ctx.tracking_uri else models_dir
        click.echo(f"demo: training {len(DEMO_TICKERS)} synthetic tickers, 2 rounds of "
                   f"{n_trades:,} trades each, into {where} ...", err=True)
    with Steps("loading the libraries", quiet=ctx.quiet):
        from ..manager import SyncTickerModelManager
        from ..synthetic import generate_trades

    root.mkdir(parents=True, exist_ok=True)
    config = ctx.config().replace(log_plots=True)
    with SyncTickerModelManager(config, models_dir, ctx.tracking_uri,
                                auto_retrain=False) as manager:
        with Steps("opening the model store", quiet=ctx.quiet):
            done = {r["ticker"]: r["training_sessions"] for r in manager.status()}
        rows = []
        for ticker in DEMO_TICKERS:
            offset = done.get(ticker, 0)
            trades = generate_trades(ticker, n_trades * 2, seed=offset // 2)
            half = len(trades) // 2
            for round_, part in enumerate((trades.iloc[:half], trades.iloc[half:]), 1):
                with Steps(f"{ticker} round {round_}: features, fit, register", quiet=ctx.quiet):
                    outcome = manager.train(ticker, part.reset_index(drop=True))
                row = outcome.to_dict()
                rows.append({"ticker": ticker, "round": round_, "version": row["version"],
                             "alias": row["alias"], "decision": row["reason"]})
                if not ctx.quiet:
                    click.echo(f"{ticker} round {round_}: version {row['version']} -> "
                               f"{row['alias']} ({row['reason']})", err=True)
        click.echo("\nTrainings:")
        emit(rows, "table")
        click.echo("\nStatus:")
        emit([narrow_status_row(r) for r in manager.status()], "table", columns=STATUS_NARROW)
        uri = manager.tracking_uri
    click.echo(f"\nStore: {uri}")
    click.echo(f"Open the MLflow UI:  ticker-registry --models-dir {models_dir} ui   "
               f"(or: mlflow ui --backend-store-uri {uri})")
    click.echo(f"Demo finished in {time.perf_counter() - start:.1f} s")


@cli.command("run-strategy")
@click.argument("ticker", required=False, shell_complete=complete_tickers)
@click.option("--trades", "trades_file", type=click.Path(dir_okay=False, exists=True),
              required=True, metavar="FILE", help="Trades to replay through the strategy.")
@click.option("--ticker", "ticker_option", default=None, hidden=True)  # before the one grammar
@format_option
@pass_context
def run_strategy(ctx: Context, ticker: str | None, ticker_option: str | None, trades_file: str,
                 fmt: str) -> None:
    """Replay a trades file through OrderFlowTradingStrategy for TICKER and summarise.

    TICKER defaults to the `symbol` of the strategy config.

    \b
    Example:
      ticker-registry run-strategy XRPETH --trades XRPETH-trades-2019-10.json.gz \\
          --config config/strategies/order_flow_trading_strategy.yaml
    """
    ticker = ticker or ticker_option
    from ..data import read_trades
    from ..manager_async import TickerModelManager
    from ..strategy import OrderFlowTradingStrategy

    config = ctx.config()
    trades = read_trades(trades_file)

    async def run() -> dict:
        manager = TickerModelManager(config, ctx.models_dir, ctx.tracking_uri)
        try:
            strategy = OrderFlowTradingStrategy(manager, config, symbol=ticker)
            return (await strategy.replay(trades)).to_dict()
        finally:
            await manager.aclose()

    summary = asyncio.run(run())
    emit([summary], fmt, columns=columns("run-strategy"))
