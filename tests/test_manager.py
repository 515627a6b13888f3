"""TickerModelManager against real SQLite stores, with real subprocesses for crashes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ticker_registry import (
    Config,
    NotTrainedError,
    OrderFlowTradingStrategy,
    SampleValidationError,
    SyncTickerModelManager,
    TickerModelManager,
    build_training_set,
    compute_live_features,
    read_trades,
)

from conftest import QUICK, make_trades, registry_snapshot, shared_data

WORKER = Path(__file__).parent / "_manager_worker.py"


def run_async(coro):
    return asyncio.run(coro)


def test_seed_example_runs_as_written_on_real_trades(tmp_path):
    """The seed's programmatic example, with features built by the Core functions."""
    trades = read_trades(shared_data("XRPETH-trades-2019-10.json.gz"))
    base_config = {**QUICK, "prediction_horizon": 5, "sequence_length": 20,
                   "large_order_threshold": 1.0, "min_training_samples": 400,
                   "retrain_interval": 10_000}
    X, y = build_training_set(trades, Config.from_dict(base_config))

    async def seed():
        manager = TickerModelManager(base_config, models_dir=str(tmp_path / "custom/models/path"))
        model = await manager.get_or_create_model("ETHUSDT")
        assert model.model is None and model.version is None
        order_events = [{"timestamp": int(t.value // 1_000_000), "price": p, "quantity": q,
                         "side": "buy" if s > 0 else "sell"}
                        for t, p, q, s in trades[["timestamp", "price", "quantity", "side"]]
                        .iloc[:20].itertuples(index=False)]
        market_data = {"bid": 0.0014, "ask": 0.00141, "bid_size": 10.0, "ask_size": 12.0}
        with pytest.raises(NotTrainedError, match="no trained model yet"):
            await manager.predict_for_ticker("ETHUSDT", order_events, market_data)
        for i in range(400):
            features = compute_live_features(trades.iloc[i: i + 20], None,
                                             manager.config) if i == 0 else X.iloc[i].to_dict()
            await manager.add_training_sample("ETHUSDT", features, y["flow_type"].iloc[i],
                                              y["impact"].iloc[i], y["time_to_execution"].iloc[i])
        outcomes = await manager.wait_for_retraining(timeout=120)
        assert [o.version.version for o in outcomes] == [1]
        prediction = await manager.predict_for_ticker("ETHUSDT", order_events, market_data)
        assert prediction["version"] == 1
        assert prediction["flow_type"] in ("sell_pressure", "balanced", "buy_pressure")
        assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, rel=1e-5)
        status = await manager.status()
        assert status[0]["samples_stored"] == 400 and status[0]["samples_pending"] == 0
        await manager.aclose()

    run_async(seed())
    assert (tmp_path / "custom/models/path/mlflow.db").is_file()
    assert (tmp_path / "custom/models/path/samples.db").is_file()


def test_bad_samples_are_refused_and_nothing_is_stored(tmp_path):
    manager = SyncTickerModelManager(QUICK, tmp_path)
    good = np.zeros(15)
    for args in [(np.full(15, np.nan), "balanced", 0.0, 1.0), (np.zeros(14), "balanced", 0.0, 1.0),
                 (good, "up", 0.0, 1.0), (good, "balanced", float("inf"), 1.0)]:
        with pytest.raises(SampleValidationError):
            manager.add_training_sample("ETHUSDT", *args)
    assert manager.samples.count() == 0
    manager.close()


def test_training_gate_and_cache_follow_a_new_production(tmp_path):
    manager = SyncTickerModelManager({**QUICK, "refresh_interval": 0}, tmp_path, auto_retrain=False)
    events = make_trades(50, seed=9).iloc[-10:]
    first = manager.train("ETHUSDT", trades=make_trades(6000, seed=1))
    assert first.created and first.decision.promoted
    assert manager.predict_for_ticker("ETHUSDT", events)["version"] == 1
    again = manager.train("ETHUSDT", trades=make_trades(6000, seed=1))
    assert not again.created and again.version.version == 1
    manager.train("ETHUSDT", trades=make_trades(6000, seed=2))
    if manager.registry.production_version("ETHUSDT") != 1:  # the gate may have promoted v2
        manager.promote("ETHUSDT", 1)
    assert manager.predict_for_ticker("ETHUSDT", events)["version"] == 1
    manager.promote("ETHUSDT", 2)
    assert manager.predict_for_ticker("ETHUSDT", events)["version"] == 2
    manager.rollback("ETHUSDT")
    assert manager.predict_for_ticker("ETHUSDT", events)["version"] == 1
    manager.close()


def test_cache_is_bounded_lru(tmp_path):
    manager = SyncTickerModelManager({**QUICK, "max_cached_models": 2, "refresh_interval": 0},
                                     tmp_path, auto_retrain=False)
    for name in ("AAAUSDT", "BBBUSDT", "CCCUSDT"):
        manager.get_or_create_model(name)
    assert manager.cache.tickers() == ["BBBUSDT", "CCCUSDT"]
    manager.get_or_create_model("BBBUSDT")
    manager.get_or_create_model("DDDUSDT")
    assert manager.cache.tickers() == ["BBBUSDT", "DDDUSDT"]
    manager.close()


def test_stale_flag_and_template(tmp_path):
    manager = SyncTickerModelManager({**QUICK, "max_model_age": 0.001, "refresh_interval": 0},
                                     tmp_path, auto_retrain=False)
    manager.train("ADAUSDT", trades=make_trades(6000, seed=4, ticker="ADAUSDT"))
    time.sleep(0.01)
    events = make_trades(50, seed=9).iloc[-10:]
    assert manager.predict_for_ticker("ADAUSDT", events)["stale"] is True
    outcome = manager.create_from_template("SOLUSDT", trades=make_trades(5000, seed=5,
                                                                        ticker="SOLUSDT"))
    info = outcome.version
    assert info.tags["lineage.template_ticker"] == "ADAUSDT"
    assert info.tags["lineage.source"] == "template"
    assert manager.predict_for_ticker("SOLUSDT", events)["version"] == 1
    manager.close()


def test_live_performance_is_scored_and_shown(tmp_path):
    manager = SyncTickerModelManager({**QUICK, "refresh_interval": 0}, tmp_path, auto_retrain=False)
    trades = make_trades(8000, seed=6)
    manager.train("ETHUSDT", trades=trades.iloc[:5000].reset_index(drop=True))
    manager.get_or_create_model("ETHUSDT")
    X, y = build_training_set(trades.iloc[5000:].reset_index(drop=True), manager.config)
    for i in range(100):
        manager.add_training_sample("ETHUSDT", X.iloc[i].to_numpy(), y["flow_type"].iloc[i],
                                    y["impact"].iloc[i], y["time_to_execution"].iloc[i])
    row = manager.status()[0]
    assert row["live_samples"] == 100 and 0 <= row["live_flow_type_accuracy"] <= 1
    from mlflow import MlflowClient

    run_id = manager.registry.get_version("ETHUSDT", 1).run_id
    history = MlflowClient(manager.tracking_uri).get_metric_history(run_id, "live_impact_mse")
    assert [m.step for m in history] == [100]
    manager.close()


def _spawn(*args, **kw):
    return subprocess.Popen([sys.executable, str(WORKER), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_samples_survive_sigkill(tmp_path):
    proc = _spawn("add", tmp_path, "ETHUSDT", 25)
    assert proc.stdout.readline().strip() == "added", proc.stderr.read()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    manager = SyncTickerModelManager(QUICK, tmp_path, auto_retrain=False)
    assert manager.samples.count("ETHUSDT") == 25
    manager.close()


@pytest.mark.slow
def test_sigkill_during_training_keeps_production_and_next_retrain_succeeds(tmp_path):
    manager = SyncTickerModelManager(QUICK, tmp_path, auto_retrain=False)
    manager.train("ETHUSDT", trades=make_trades(6000, seed=1))
    X, y = build_training_set(make_trades(6000, seed=2), manager.config)
    for i in range(200):
        manager.add_training_sample("ETHUSDT", X.iloc[i].to_numpy(), y["flow_type"].iloc[i],
                                    y["impact"].iloc[i], y["time_to_execution"].iloc[i],
                                    timestamp=X.index[i])
    before = registry_snapshot(manager.registry)
    proc = _spawn("train", tmp_path, "ETHUSDT")
    assert proc.stdout.readline().strip() == "training"
    assert proc.stdout.readline().strip() == "fitting"  # the batch is claimed, the fit has begun
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert registry_snapshot(manager.registry) == before
    assert manager.samples.count("ETHUSDT", unconsumed=True) == 200
    assert [b["status"] for b in manager.samples.batches("ETHUSDT")] == ["claimed"]
    manager.registry.load_model("ETHUSDT")  # production still loads
    # the dead process's lease expires; a new owner may take it over after the TTL
    holder = manager.samples.lease_holder("ETHUSDT")
    assert holder is not None
    manager.samples.release_lease("ETHUSDT", holder)
    outcome = manager.retrain("ETHUSDT")
    assert outcome.created and manager.samples.count("ETHUSDT", unconsumed=True) == 0
    manager.close()


@pytest.mark.slow
def test_two_processes_feeding_one_ticker_lose_nothing_and_duplicate_nothing(tmp_path):
    go = tmp_path / "go"
    procs = [_spawn("feed", tmp_path, "ETHUSDT", 120, go, seed) for seed in (1, 2)]
    time.sleep(2.0)
    go.touch()
    outs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    manager = SyncTickerModelManager(QUICK, tmp_path, auto_retrain=False)
    assert manager.samples.count("ETHUSDT") == 240
    versions = manager.registry.list_versions("ETHUSDT")
    keys = [v.tags["idempotency_key"] for v in versions]
    assert len(keys) == len(set(keys)) >= 1
    batches = manager.samples.batches("ETHUSDT")
    registered = [b for b in batches if b["status"] == "registered"]
    assert sorted(b["version"] for b in registered) == sorted(v.version for v in versions)
    manager.close()


@pytest.mark.slow
def test_running_manager_follows_a_cli_promotion(tmp_path):
    env = {**os.environ, "TICKER_REGISTRY_MODELS_DIR": str(tmp_path)}
    manager = SyncTickerModelManager(QUICK, tmp_path, auto_retrain=False)
    manager.train("ETHUSDT", trades=make_trades(6000, seed=1))
    manager.train("ETHUSDT", trades=make_trades(6000, seed=2))
    if manager.registry.production_version("ETHUSDT") != 1:  # the gate may have promoted v2
        manager.promote("ETHUSDT", 1)
    manager.close()
    proc = _spawn("serve", tmp_path, "ETHUSDT", 90)
    first = json.loads(proc.stdout.readline())
    assert first["version"] == 1
    target = 2
    cli = subprocess.run([sys.executable, "-m", "ticker_registry", "promote", "ETHUSDT",
                          str(target), "--reason", "test"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    promoted_at = time.time()
    line = proc.stdout.readline()
    proc.kill()
    assert line, proc.stderr.read()[-3000:]
    followed = json.loads(line)
    assert followed["version"] == target
    assert followed["t"] - promoted_at < 0.2 + 2.0  # refresh_interval 0.2 s plus a load


@pytest.mark.slow
def test_strategy_replay_trains_by_itself(tmp_path):
    config = Config.from_dict({**QUICK, "symbol": "XRPETH", "prediction_horizon": 5,
                               "sequence_length": 20, "min_training_samples": 1000,
                               "retrain_interval": 5000})
    trades = make_trades(3000, seed=5, ticker="XRPETH")

    async def replay():
        manager = TickerModelManager(config, tmp_path)
        summary = await OrderFlowTradingStrategy(manager, config).replay(trades)
        await manager.aclose()
        return summary

    summary = run_async(replay())
    assert summary.events == 3000 and summary.samples > 1000
    assert summary.versions_trained == [1] and summary.production_version == 1
    assert summary.predictions > 0
    X, y = build_training_set(trades, config)
    manager = SyncTickerModelManager(config, tmp_path, auto_retrain=False)
    stored = manager.samples.load("XRPETH")
    n = len(stored.ids)
    np.testing.assert_array_equal(stored.X.to_numpy(), X.iloc[:n].to_numpy())
    np.testing.assert_allclose(stored.y["impact"].to_numpy(), y["impact"].iloc[:n].to_numpy())
    np.testing.assert_allclose(stored.y["time_to_execution"].to_numpy(),
                               y["time_to_execution"].iloc[:n].to_numpy())
    assert list(stored.y["flow_type"].astype(str)) == list(y["flow_type"].astype(str).iloc[:n])
    manager.close()
