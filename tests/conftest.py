"""Shared fixtures: small real stores under tmp_path, quick configs, trained models."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ticker_registry import Config
from ticker_registry.training import train_on_trades

#: Real public trade files live outside the repository (see ../shared/data/README.md).
SHARED_DATA_ENV = "TR_SHARED_DATA"
_DEFAULT_SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data(name: str) -> Path:
    """Path of the real trade file ``name``; skips the test when it is absent.

    The directory is ``$TR_SHARED_DATA``, else ``../shared/data`` beside the
    repository root.
    """
    folder = Path(os.environ.get(SHARED_DATA_ENV) or _DEFAULT_SHARED_DATA)
    path = folder / name
    if not path.is_file():
        pytest.skip(f"real trade data {name} not found in {folder}; set {SHARED_DATA_ENV}")
    return path

# Fixtures of the PostgreSQL-backed mlflow server tests (tests/server_fixtures.py).
pytest_plugins = ["server_fixtures"]

#: A config small enough for fast tests: a 3-second horizon, few trees.
QUICK = {
    "prediction_horizon": 0.05,
    "sequence_length": 10,
    "large_order_threshold": 500,
    "min_training_samples": 50,
    "retrain_interval": 50,
    "hyperparameters": {"xgboost": {"n_estimators": 25, "max_depth": 4},
                        "lightgbm": {"n_estimators": 25, "num_leaves": 15},
                        "random_forest": {"n_estimators": 20, "max_depth": 6}},
}


def make_trades(n: int, seed: int = 0, ticker: str = "ETHUSDT") -> pd.DataFrame:
    """Synthetic trades with persistent order flow (so models can beat the baselines)."""
    from ticker_registry.synthetic import generate_trades

    return generate_trades(ticker, n, seed=seed)


@pytest.fixture(autouse=True)
def _no_global_tracking_uri(monkeypatch):
    """Tests choose their store explicitly; an inherited MLFLOW_TRACKING_URI would leak."""
    if os.environ.get("TR_KEEP_TRACKING_URI") != "1":
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture
def quick_config() -> Config:
    return Config.from_dict(QUICK)


@pytest.fixture(scope="session")
def trained():
    """Three trainings of ETHUSDT on consecutive slices (session-wide, read-only)."""
    cfg = Config.from_dict(QUICK)
    trades = make_trades(12_000, seed=1)
    return [train_on_trades(trades.iloc[i * 3000: i * 3000 + 6000].reset_index(drop=True), cfg)
            for i in range(3)]


@pytest.fixture(scope="session")
def empty_store_db(tmp_path_factory) -> Path:
    """A migrated, empty MLflow SQLite database, made once per session.

    Creating a store runs MLflow's schema migrations (seconds); tests copy this
    file into each new store instead.
    """
    from ticker_registry.registry import TickerRegistry

    folder = tmp_path_factory.mktemp("empty-store-template")
    TickerRegistry(Config.from_dict(QUICK), models_dir=folder).search_models()
    return folder / "mlflow.db"


def new_store(folder: Path, template: Path, config: Config | None = None):
    """A TickerRegistry on a fresh store in ``folder``, started from ``template``."""
    import shutil

    from ticker_registry.registry import TickerRegistry

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, folder / "mlflow.db")
    return TickerRegistry(config or Config.from_dict(QUICK), models_dir=folder)


@pytest.fixture
def registry(tmp_path, quick_config, empty_store_db):
    return new_store(tmp_path / "store", empty_store_db, quick_config)


def register_training(registry, result, ticker: str = "ETHUSDT", gate: bool = True):
    """Register a TrainingResult (and apply the gate when it created a version).

    Returns ``(version, created, decision)``; ``decision`` is None without a gate.
    """
    info, created = registry.register(ticker, result.model, lineage=result.lineage,
                                      idempotency_key=result.idempotency_key)
    decision = None
    if gate and created:
        decision = registry.apply_gate(ticker, info.version, result.model, result.X_valid,
                                       result.y_valid)
    return info, created, decision


def registry_snapshot(registry) -> dict:
    """Everything a rejected operation must leave unchanged: models, versions, aliases, tags."""
    out = {}
    for state in registry.search_models():
        versions = registry.search_versions(f"name='{state.name}'")
        out[state.name] = {
            "aliases": state.aliases, "tags": state.tags, "description": state.description,
            "versions": {v.version: (v.status, v.tags, v.description) for v in versions},
        }
    return out


def np_equal(a, b) -> bool:
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))
