"""``python -m ticker_registry.bundle --check DIR``: the isolated test load of a model directory."""

from __future__ import annotations

import sys

from .check import _check_main

if __name__ == "__main__":
    sys.exit(_check_main(sys.argv[1:]))
