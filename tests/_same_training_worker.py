"""Subprocess side of the same-training race: wait for GO, train the same trades, print JSON.

    python _same_training_worker.py MODELS_DIR GO
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from ticker_registry import SyncTickerModelManager, TickerRegistryError  # noqa: E402

from conftest import QUICK, make_trades  # noqa: E402


def main(models_dir: str, go: str) -> None:
    manager = SyncTickerModelManager({**QUICK, "refresh_interval": 0}, models_dir,
                                     auto_retrain=False)
    trades = make_trades(3000, seed=1)
    print("ready", flush=True)
    while not Path(go).exists():
        time.sleep(0.01)
    try:
        outcome = manager.train("ETHUSDT", trades)
        out = {"version": outcome.version.version, "created": outcome.created, "error": None}
    except TickerRegistryError as exc:
        out = {"version": None, "created": None, "error": str(exc)}
    print(json.dumps(out), flush=True)
    manager.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
