"""Subprocess side of the concurrency tests. Each command waits for the GO file, then races.

    python _concurrency_worker.py register MODELS_DIR TICKER MODEL_DIR WORKER N GO
        register N versions of one pre-trained model, each with its own idempotency key
        and lineage; print {"versions": [...], "keys": [...], "errors": [...]}
    python _concurrency_worker.py move MODELS_DIR TICKER ROLE N GO SEED
        ROLE promote: N times read production, then promote another version with
        expected=<what was read>; ROLE rollback: N times read production, then roll
        back; print {"ok": n, "conflicts": n, "refused": n, "errors": [...], "refusals": [...]}

Both print "ready" once the store is open (the parent touches GO when all are
ready) and exactly one JSON line at the end; any exception other than the
expected ones is reported in "errors" (the parent asserts there are none).
"""

from __future__ import annotations

import inspect
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from ticker_registry import (  # noqa: E402
    OrderFlowModel,
    PromotionConflictError,
    RollbackError,
    TickerRegistry,
)
from ticker_registry.records import TrainingLineage  # noqa: E402

from conftest import QUICK  # noqa: E402

CONFIG = {**QUICK, "refresh_interval": 0}


def wait_for(go: str) -> None:
    print("ready", flush=True)
    while not Path(go).exists():
        time.sleep(0.005)


def register(models_dir: str, ticker: str, model_dir: str, worker: str, n: int, go: str) -> dict:
    registry = TickerRegistry(CONFIG, models_dir=models_dir)
    assert registry.store.client is not None  # open the store before the race starts
    model = OrderFlowModel.load(model_dir)
    out: dict = {"versions": [], "keys": [], "errors": []}
    wait_for(go)
    for i in range(n):
        key = f"w{worker}-{i:03d}"
        lineage = TrainingLineage(n_samples=i + 1, source="concurrency",
                                  extra={"worker": worker, "index": str(i)})
        try:
            info, created = registry.register(ticker, model, lineage=lineage, idempotency_key=key)
            if not created:
                out["errors"].append(f"{key}: found an existing version {info.version}")
            out["versions"].append(info.version)
            out["keys"].append(key)
        except Exception as exc:  # reported, not raised: the parent shows them all
            out["errors"].append(f"{key}: {type(exc).__name__}: {exc}")
    return out


def move(models_dir: str, ticker: str, role: str, n: int, go: str, seed: int) -> dict:
    registry = TickerRegistry(CONFIG, models_dir=models_dir)
    versions = [v.version for v in registry.list_versions(ticker)]
    rng = random.Random(seed)
    takes_expected = "expected" in inspect.signature(registry.rollback).parameters
    out: dict = {"ok": 0, "conflicts": 0, "refused": 0, "errors": [], "refusals": []}
    wait_for(go)
    for _ in range(n):
        current = registry.production_version(ticker)  # "read status"
        time.sleep(rng.uniform(0, 0.02))  # widen the window between the read and the write
        try:
            if role == "promote":
                target = rng.choice([v for v in versions if v != current])
                registry.promote(ticker, target, expected=current, reason=f"race {role}")
            else:  # compare-and-set against our read too, once rollback takes expected=
                cas: dict[str, Any] = {"expected": current} if takes_expected else {}
                registry.rollback(ticker, reason=f"race {role}", **cas)
            out["ok"] += 1
        except PromotionConflictError:
            out["conflicts"] += 1
        except RollbackError as exc:  # e.g. nothing earlier to roll back to
            out["refused"] += 1
            if str(exc) not in out["refusals"]:
                out["refusals"].append(str(exc))
        except Exception as exc:
            out["errors"].append(f"{type(exc).__name__}: {exc}")
        time.sleep(rng.uniform(0, 0.03))  # pace: neither worker starves the other for long
    return out


def main(argv: list[str]) -> None:
    command = argv[0]
    if command == "register":
        models_dir, ticker, model_dir, worker, n, go = argv[1:]
        result = register(models_dir, ticker, model_dir, worker, int(n), go)
    elif command == "move":
        models_dir, ticker, role, n, go, seed = argv[1:]
        result = move(models_dir, ticker, role, int(n), go, int(seed))
    else:
        sys.exit(f"unknown command {command!r}")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
