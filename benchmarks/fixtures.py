"""Configs, trained models and stores the benchmarks start from."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["QUICK_CONFIG", "SHARED_ENV", "config", "sqlite_uri", "store", "train"]

#: Environment variable naming a folder shared by the benchmark processes of one run.
SHARED_ENV = "TR_BENCH_SHARED"

#: Small models (25 trees) with a 3-second horizon: the quick mode and M1's "small quick models".
QUICK_CONFIG: dict[str, Any] = {
    "prediction_horizon": 0.05,
    "sequence_length": 10,
    "large_order_threshold": 500,
    "hyperparameters": {"xgboost": {"n_estimators": 25, "max_depth": 4}},
}


def config(quick: bool, **changes: Any) -> Any:
    """The benchmark config: ``QUICK_CONFIG`` in quick mode, the package defaults otherwise."""
    from ticker_registry import Config

    base = dict(QUICK_CONFIG) if quick else {}
    # the synthetic market is built around 1000-quote large orders (its docstring): a fixed
    # threshold keeps every benchmark's recipe the same instead of 'auto' per data slice
    base.setdefault("large_order_threshold", 1000)
    base.update(refresh_interval=0, **changes)  # no background refresher in timed code
    return Config.from_dict(base)


def sqlite_uri(folder: Path) -> str:
    """The URI of ``folder/mlflow.db``, seeded with an empty MLflow schema if it is new.

    A new SQLite store runs MLflow's ~50 schema migrations on first use (about
    2-6 s here); no benchmark times that, so every store starts as a copy of
    one empty, fully migrated database, made once per run.
    """
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "mlflow.db"
    if not db.exists():
        shutil.copy2(_template(), db)
    return f"sqlite:///{db}"


def store(ctx: Any, name: str) -> Path:
    """A fresh ``models_dir`` in the benchmark's folder, its SQLite store already migrated."""
    folder = ctx.folder(name)
    sqlite_uri(folder)
    return folder


def _template() -> Path:
    shared = Path(os.environ.get(SHARED_ENV) or tempfile.gettempdir())
    path = shared / "empty-mlflow.db"
    with open(shared / "empty-mlflow.db.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            from mlflow import MlflowClient

            build = Path(tempfile.mkdtemp(prefix="tr-bench-template-", dir=shared))
            MlflowClient(tracking_uri=f"sqlite:///{build / 'mlflow.db'}").search_experiments()
            os.replace(build / "mlflow.db", path)
            shutil.rmtree(build, ignore_errors=True)
    return path


def train(cfg: Any, n_trades: int, ticker: str = "ETHUSDT", seed: int = 1) -> Any:
    """A :class:`~ticker_registry.training.TrainingResult` on synthetic trades."""
    from ticker_registry import generate_trades
    from ticker_registry.training import train_on_trades

    return train_on_trades(generate_trades(ticker, n_trades, seed=seed), cfg)
