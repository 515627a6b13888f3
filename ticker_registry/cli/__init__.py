"""The ``ticker-registry`` command line: a thin click layer over the public API.

``_base`` holds the group, error handling and output formatting; each other
module adds one family of commands.
"""

from __future__ import annotations

from . import models, operations, report, run, transfer, tune  # noqa: F401  (registers the commands)
from ._base import cli, main

#: One line per command in `ticker-registry --help`, short enough never to be cut at 80
#: columns (click would otherwise end a long first sentence with "...").
SHORT_HELP = {
    "best": "The best tickers by served skill (or a metric).",
    "cleanup": "Delete old versions nobody serves or promoted lately.",
    "compare": "Two versions side by side, with the gate's verdict.",
    "demo": "Train three synthetic tickers end to end.",
    "doctor": "Find (and --repair) damage in the store.",
    "evaluate": "Walk-forward skill table of trade files; no registration.",
    "from-template": "Train a new ticker from a template ticker.",
    "export": "Write a version to a verified, pickle-free bundle.",
    "history": "Every alias move of a ticker (the audit trail).",
    "import": "Verify a bundle, then register it on staging.",
    "metadata": "The seed's model_metadata.json.",
    "preload": "Load production versions into the local cache.",
    "promote": "Point production (or staging) at a version.",
    "report": "Write the self-contained HTML report.",
    "rollback": "Move production back to the previous version.",
    "run-strategy": "Replay trades through the trading strategy.",
    "status": "Every ticker: aliases, skill, what serves.",
    "train": "Train, register and gate versions from trades.",
    "tune": "Search a ticker's hyperparameters (Optuna); saved.",
    "ui": "Start the MLflow UI on this store.",
    "versions": "Every version of a ticker, with lineage.",
}
for _name, _text in SHORT_HELP.items():
    cli.commands[_name].short_help = _text

__all__ = ["cli", "main"]
