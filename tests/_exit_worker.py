"""Subprocess side of the exit tests: the seed's pattern, a script that stores samples and ends.

    python _exit_worker.py MODELS_DIR N CLOSE_TIMEOUT   add N samples (async manager), then exit
                                                        without closing the manager
    python _exit_worker.py MODELS_DIR predict           use the ticker once, wait for due training
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from ticker_registry import TickerModelManager, build_training_set  # noqa: E402
from ticker_registry.config import Config  # noqa: E402

from conftest import QUICK, make_trades  # noqa: E402


async def feed(models_dir: str, n: int, close_timeout: float) -> None:
    config = {**QUICK, "min_training_samples": n, "close_timeout": close_timeout}
    if close_timeout < 1:  # slow enough to still be training when the script ends
        config["hyperparameters"] = {"xgboost": {"n_estimators": 3000, "max_depth": 8,
                                                 "min_child_weight": 1}}
    manager = TickerModelManager(config, models_dir)
    X, y = build_training_set(make_trades(4000, seed=5), Config.from_dict(QUICK))
    for i in range(n):
        await manager.add_training_sample("ETHUSDT", X.iloc[i].to_numpy(), y["flow_type"].iloc[i],
                                          y["impact"].iloc[i], y["time_to_execution"].iloc[i],
                                          timestamp=X.index[i])
    print("stored", flush=True)
    # no close, no wait: the interpreter exits with the training due or running


def predict(models_dir: str) -> None:
    manager = TickerModelManager(QUICK, models_dir)

    async def go() -> None:
        await manager.get_or_create_model("ETHUSDT")
        outcomes = await manager.wait_for_retraining(timeout=600)
        print("versions", [o.version.version for o in outcomes], flush=True)
        await manager.aclose()

    asyncio.run(go())


if __name__ == "__main__":
    if sys.argv[2] == "predict":
        predict(sys.argv[1])
    else:
        asyncio.run(feed(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
