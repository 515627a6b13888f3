"""The ``from-template`` command: a new ticker's version started from a template ticker."""

from __future__ import annotations

import click

from ._base import Context, cli, pass_context
from .completion import complete_tickers
from .output import Steps, emit, format_option
from .schemas import columns


@cli.command("from-template")
@click.argument("ticker", shell_complete=complete_tickers)
@click.option("--trades", "trades", multiple=True, required=True, type=click.Path(dir_okay=False),
              metavar="FILE", help="The new TICKER's own trade file(s) (repeatable).")
@click.option("--template", default=None, shell_complete=complete_tickers, metavar="TICKER",
              help="Template ticker (default: the best by served skill).")
@click.option("--strategy", type=click.Choice(["scratch", "hyperparameters", "warm_start",
                                               "pooled"]),
              default=None, help="What to take from the template (default: the config's "
                                 "transfer_strategy).")
@click.option("--template-trades", "template_trades", multiple=True,
              type=click.Path(dir_okay=False), metavar="FILE",
              help="The template's trade file(s), for --strategy pooled (repeatable).")
@format_option
@pass_context
def from_template(ctx: Context, ticker: str, trades: tuple[str, ...], template: str | None,
                  strategy: str | None, template_trades: tuple[str, ...], fmt: str) -> None:
    """Train a new TICKER's version on its own trades, starting from a template ticker.

    The template is a ticker's production version. hyperparameters: its model type and
    hyperparameters; warm_start: also continue boosting from its trees; pooled: also train
    on its trades (--template-trades), moved into the new ticker's units. The version is
    judged by purged walk-forward on TICKER's trades and gated like any other; its
    lineage.* tags name the template and the strategy.

    \b
    Example:
      ticker-registry from-template SOLUSDT --trades SOLUSDT-aggTrades.zip --template ETHUSDT
    """
    from ..evaluation import served_skill_score
    from ..tickers import normalize_ticker

    name = normalize_ticker(ticker)
    with Steps(f"{name}: reading the template and {len(trades)} trade file(s), training",
               quiet=ctx.quiet):
        outcome = ctx.manager().create_from_template(
            name, template, files=list(trades), strategy=strategy,
            template_files=list(template_trades))
    row = outcome.to_dict()
    metrics = row.pop("metrics")
    tags = outcome.version.tags
    row.update({
        "skill_score": served_skill_score(metrics),
        **{k: metrics.get(k) for k in ("skill_flow_type", "skill_impact",
                                       "skill_time_to_execution")},
        "template_ticker": tags.get("lineage.template_ticker", ""),
        "template_version": int(tags.get("lineage.template_version", 0) or 0),
        "transfer_strategy": tags.get("lineage.transfer_strategy", ""),
        "template_overlaps": tags.get("lineage.template_overlaps") == "true"})
    emit([row], fmt, columns=columns("from-template"), table_columns=[
        "ticker", "version", "created", "alias", "template_ticker", "transfer_strategy",
        "skill_score", "reason"])
