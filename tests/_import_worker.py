"""Subprocess side of the concurrent-import test: wait for GO, import one bundle, print JSON.

    python _import_worker.py MODELS_DIR BUNDLE GO

Prints "ready" once the store is open (the parent touches GO when all are ready)
and then one JSON line: {"version", "aliases", "created", "error"}.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from ticker_registry import TickerRegistry, TickerRegistryError  # noqa: E402
from ticker_registry.bundle import import_bundle  # noqa: E402

from conftest import QUICK  # noqa: E402


def main(models_dir: str, bundle: str, go: str) -> None:
    registry = TickerRegistry({**QUICK, "refresh_interval": 0}, models_dir=models_dir)
    assert registry.store.client is not None  # open the store before the race starts
    print("ready", flush=True)
    while not Path(go).exists():
        time.sleep(0.005)
    try:
        result = import_bundle(registry, bundle)
        out = {"version": result.version.version, "aliases": sorted(result.version.aliases),
               "created": result.created, "error": None}
    except TickerRegistryError as exc:
        out = {"version": None, "aliases": None, "created": None,
               "error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
