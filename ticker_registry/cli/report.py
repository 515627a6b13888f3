"""The ``report`` command: a static HTML report of every ticker model."""

from __future__ import annotations

import click

from ._base import Context, cli, pass_context


@cli.command()
@click.option("--out", type=click.Path(dir_okay=False), default="report.html",
              show_default=True, metavar="FILE", help="HTML file to write (replaced if present).")
@pass_context
def report(ctx: Context, out: str) -> None:
    """Write one self-contained HTML report: tickers, metric history, promotions.

    The file embeds its charts (PNG) and needs no network or JavaScript.

    \b
    Example:
      ticker-registry report --out report.html
    """
    from ..report import write_report

    path = write_report(ctx.manager(read_only=True).registry, out)
    if not ctx.quiet:
        click.echo(f"wrote {path}", err=True)
