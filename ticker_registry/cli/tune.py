"""The ``tune`` command: a per-ticker hyperparameter search, saved in the registry."""

from __future__ import annotations

from typing import Any

import click

from ._base import Context, cli, pass_context
from .completion import complete_tickers
from .output import Steps, emit, format_option
from .schemas import columns


def _params_text(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in params.items())


@cli.command()
@click.argument("ticker", required=False, shell_complete=complete_tickers)
@click.option("--trades", "trades", multiple=True, required=True, type=click.Path(dir_okay=False),
              metavar="FILE", help="Trade file(s) of the TICKER (repeatable).")
@click.option("--ticker", "ticker_option", hidden=True)  # the spelling: --ticker T
@click.option("--trials", "n_trials", type=click.IntRange(1, 100_000), default=None,
              help="Trials to run (default 20, or unlimited with --timeout).")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), default=None, metavar="S",
              help="Stop starting trials after S seconds.")
@click.option("--model-type", type=click.Choice(["xgboost", "lightgbm", "random_forest"]),
              default=None, help="Model family to tune (default: the config's).")
@click.option("--seed", type=click.IntRange(0), default=None,
              help="Seed of the search (default: the config's random_seed).")
@format_option
@pass_context
def tune(ctx: Context, ticker: str | None, ticker_option: str | None, trades: tuple[str, ...],
         n_trials: int | None, timeout: float | None, model_type: str | None, seed: int | None,
         fmt: str) -> None:
    """Search a ticker's hyperparameters; later trainings of it use the best set.

    Optuna (TPE, median pruning) scores each trial by the served skill of a purged
    walk-forward over the trades before the final block; the final block (the last
    1/(cv_folds+1) of the rows) is held out and scores the config's and the tuned
    hyperparameters once at the end. The search's best replaces the config's set only when
    it beats it on the tuning folds by more than fold-to-fold noise, and it is adopted (used
    by later trainings) only when it is not worse on the final block. The chosen set is saved
    on the ticker's registered model as tuned.* tags (tuned.adopted), the trials in a run
    tune-TICKER.

    \b
    Example:
      ticker-registry tune XRPETH --trades XRPETH-aggTrades-2019-10.zip --trials 50 --seed 1
    """
    from ..tickers import normalize_ticker

    if ticker and ticker_option and normalize_ticker(ticker) != normalize_ticker(ticker_option):
        raise click.UsageError(f"two tickers given ({ticker!r} and --ticker {ticker_option!r}); "
                               "give one")
    ticker = ticker or ticker_option
    if not ticker:
        raise click.UsageError("give the TICKER to tune, e.g. `tune LTCUSDT --trades FILE`")
    name = normalize_ticker(ticker)
    if n_trials is None and timeout is None:
        n_trials = 20
    with Steps(f"{name}: reading {len(trades)} trade file(s)", total=n_trials,
               quiet=ctx.quiet) as steps:
        result = ctx.manager().tune(name, files=list(trades), n_trials=n_trials, timeout=timeout,
                                    model_type=model_type, seed=seed, progress=steps)
    base = {"ticker": name, "model_type": result.model_type}
    rows = [{**base, "kind": "trial", **row} for row in result.trials]
    finals = [{**base, "kind": which, "trial": None, "state": "final block", "best": None,
               "score": scores["score"], "fold_scores": [],
               **{k: v for k, v in scores.items() if k != "score"},
               "params": result.best_params if which == "tuned" else result.default_params,
               "seconds": None} for which, scores in result.final.items()]
    if fmt != "table":
        emit(rows + finals, fmt, columns=columns("tune"))
        return

    def cells(row: dict[str, Any]) -> dict[str, Any]:
        return {**row, "best": "*" if row["best"] else "", "params": _params_text(row["params"]),
                "fold_scores": " ".join(f"{x:+.3f}" for x in row.get("fold_scores") or [])}

    emit(rows, fmt, columns=columns("tune"), table_row=cells, table_columns=[
        "trial", "state", "best", "score", "fold_scores", "params"])
    click.echo("")
    emit(finals, fmt, columns=columns("tune"), table_row=cells, table_columns=[
        "kind", "score", "skill_flow_type", "skill_impact", "skill_time_to_execution", "params"])
    click.echo(f"{name}: {result.model_type}, seed {result.seed}; {result.n_tuning_rows:,} tuning "
               f"rows ({len(result.best_fold_scores)} purged folds), final block of "
               f"{result.n_final_rows:,} rows from {result.final_start} held out; score = served "
               "skill (mean over heads of max(0, 1 - loss/best baseline loss)); best set saved "
               f"as tuned.* tags on {name}")
    final, ev = result.final, result.evidence
    if result.kept_default:
        if ev.get("needed", float("inf")) == float("inf"):
            click.echo(f"kept the config's hyperparameters: no trial beat them on the tuning "
                       f"folds; later trainings of {name} use them")
        else:
            click.echo(f"kept the config's hyperparameters: the search's best set gained "
                       f"{ev['gain']:+.4f} served skill per fold (t={ev['t']:.2f}, needed "
                       f"{ev['needed']:.2f}), within fold-to-fold noise; later trainings of "
                       f"{name} use them")
    elif result.adopted:
        click.echo(f"adopted: later trainings of {name} use the tuned set (final block "
                   f"{final['tuned']['score']:+.4f} against the config's "
                   f"{final['default']['score']:+.4f})")
    else:
        click.echo(f"not adopted: the tuned set scored {final['tuned']['score']:+.4f} on the "
                   f"final block, below the config's {final['default']['score']:+.4f}; later "
                   f"trainings of {name} keep the config's hyperparameters")
