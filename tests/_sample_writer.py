"""Subprocess side of the crash and concurrency tests in test_samples.py.

    python _sample_writer.py add   URL TICKER               add one sample, print its id, wait
    python _sample_writer.py adds  URL TICKER N GO          wait for file GO, add N samples
    python _sample_writer.py lease URL TICKER OWNER N GO LOG
        wait for GO, try the lease N times; log "owner start end" of each holding
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from ticker_registry.features import FEATURE_NAMES
from ticker_registry.samples import SampleStore


def _wait_for(go: str) -> None:
    deadline = time.monotonic() + 30
    while not Path(go).exists():
        if time.monotonic() > deadline:
            sys.exit("start file never appeared")
        time.sleep(0.002)


def main(argv: list[str]) -> None:
    command, url, ticker = argv[:3]
    store = SampleStore(url)
    features = [float(i) + 0.5 for i in range(len(FEATURE_NAMES))]
    if command == "add":
        sample_id = store.add(ticker, features, "buy_pressure", 1.25, 3.5)
        print(sample_id, flush=True)
        time.sleep(60)  # killed by the test long before this ends
    elif command == "adds":
        n, go = int(argv[3]), argv[4]
        store.count()  # open the database before the race starts
        _wait_for(go)
        for i in range(n):
            store.add(ticker, features, i % 3, float(os.getpid()), float(i))
        print("done", flush=True)
    elif command == "lease":
        owner, n, go, log = argv[3], int(argv[4]), argv[5], argv[6]
        store.count()
        _wait_for(go)
        held = 0
        for _ in range(n):
            if store.acquire_lease(ticker, owner, ttl_s=5.0):
                start = time.time()
                time.sleep(0.002)
                end = time.time()
                with open(log, "a") as fh:  # one short append per line
                    fh.write(f"{owner} {start!r} {end!r}\n")
                held += 1
                store.release_lease(ticker, owner)
            else:
                time.sleep(0.001)
        print(held, flush=True)
    else:
        sys.exit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
