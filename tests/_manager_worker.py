"""Subprocess side of the manager's crash and concurrency tests.

    python _manager_worker.py add MODELS_DIR TICKER N          add N samples, print "added", wait
    python _manager_worker.py train MODELS_DIR TICKER          retrain (killed mid-way by the test)
    python _manager_worker.py feed MODELS_DIR TICKER N GO SEED add N samples after GO, retraining
                                                               automatically; print versions
    python _manager_worker.py serve MODELS_DIR TICKER SECONDS  predict in a loop, print each
                                                               served version when it changes
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from ticker_registry import SyncTickerModelManager, build_training_set  # noqa: E402

from conftest import QUICK, make_trades  # noqa: E402


def rows(n: int, seed: int):
    manager_cfg = {**QUICK}
    X, y = build_training_set(make_trades(max(3000, n * 3), seed=seed),
                              SyncTickerModelManager(manager_cfg).config)
    return X.iloc[:n], y.iloc[:n]


def main(argv: list[str]) -> None:
    command, models_dir, ticker = argv[:3]
    config = {**QUICK, "refresh_interval": 0.2}
    if command == "add":
        n = int(argv[3])
        X, y = rows(n, 0)
        manager = SyncTickerModelManager(config, models_dir, auto_retrain=False)
        for i in range(n):
            manager.add_training_sample(ticker, X.iloc[i].to_dict(), y["flow_type"].iloc[i],
                                        y["impact"].iloc[i], y["time_to_execution"].iloc[i])
        print("added", flush=True)
        time.sleep(120)
    elif command == "train":
        import ticker_registry.walk_forward as walk_forward

        real_train_head = walk_forward.train_head

        def announced_train_head(*args, **kwargs):  # say when the fit has begun, then go on
            print("fitting", flush=True)
            walk_forward.train_head = real_train_head
            return real_train_head(*args, **kwargs)

        walk_forward.train_head = announced_train_head
        slow = {**config, "hyperparameters": {"xgboost": {"n_estimators": 3000, "max_depth": 8,
                                                          "min_child_weight": 1}}}
        manager = SyncTickerModelManager(slow, models_dir, auto_retrain=False)
        print("training", flush=True)
        manager.retrain(ticker)
        print("trained", flush=True)
    elif command == "feed":
        n, go, seed = int(argv[3]), argv[4], int(argv[5])
        X, y = rows(n, seed)
        manager = SyncTickerModelManager(config, models_dir)
        manager.samples.count()
        while not Path(go).exists():
            time.sleep(0.005)
        for i in range(n):
            manager.add_training_sample(ticker, X.iloc[i].to_dict(), y["flow_type"].iloc[i],
                                        y["impact"].iloc[i], y["time_to_execution"].iloc[i])
        outcomes = manager.wait_for_retraining(timeout=120)
        manager.close()
        print(json.dumps([o.version.version for o in outcomes]), flush=True)
    elif command == "serve":
        seconds = float(argv[3])
        trades = make_trades(200, seed=5)
        events = trades.iloc[-10:]
        manager = SyncTickerModelManager(config, models_dir, auto_retrain=False)
        last = None
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            version = manager.predict_for_ticker(ticker, events)["version"]
            if version != last:
                print(json.dumps({"version": version, "t": time.time()}), flush=True)
                last = version
            time.sleep(0.01)
        manager.close()
    else:
        sys.exit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
