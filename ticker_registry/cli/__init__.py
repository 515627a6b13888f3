"""The ``ticker-registry`` command line: a thin click layer over the public API.

``_base`` holds the group, error handling and output formatting; each other
module adds one family of commands.
"""

from __future__ import annotations

from . import models, operations, report, run  # noqa: F401  (registers the commands)
from ._base import cli, main

__all__ = ["cli", "main"]
