"""A tracking-server outage, for real: the mlflow server is killed while a manager runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from ticker_registry import SyncTickerModelManager, build_training_set

from conftest import make_trades

pytestmark = [pytest.mark.server, pytest.mark.slow]


def _add(manager, X, y, rows):
    for i in rows:
        manager.add_training_sample("ETHUSDT", X.iloc[i].to_numpy(), y["flow_type"].iloc[i],
                                    y["impact"].iloc[i], y["time_to_execution"].iloc[i])


def test_outage_keeps_serving_and_storing_then_retrains_once(crashable_server, server_config,
                                                            tmp_path, monkeypatch):
    # the trading process's recommended bounded deadlines (README, "Running for a team")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    monkeypatch.setenv("TICKER_REGISTRY_RETRY_DEADLINE", "2")
    monkeypatch.setattr("ticker_registry.retraining.RETRY_BACKOFF_S", 1.0)
    crashable_server.reload()
    config = server_config.replace(min_training_samples=50, retrain_interval=50,
                                   refresh_interval=0.2)
    manager = SyncTickerModelManager(config, tmp_path / "models",
                                     tracking_uri=crashable_server.uri)
    manager.train("ETHUSDT", trades=make_trades(6000, seed=1))
    events = make_trades(50, seed=9).iloc[-10:]
    assert manager.predict_for_ticker("ETHUSDT", events)["version"] == 1
    X, y = build_training_set(make_trades(4000, seed=2), manager.config)

    crashable_server.kill_mlflow()
    try:
        time.sleep(0.6)  # the refresher meets the dead server at least once
        # 1. the cached model keeps serving
        assert all(manager.predict_for_ticker("ETHUSDT", events)["version"] == 1
                   for _ in range(20))
        # 2. samples keep being stored; the retrain they trigger fails cleanly
        _add(manager, X, y, range(60))
        assert manager.samples.count("ETHUSDT") == 60
        assert manager.wait_for_retraining(timeout=120) == []
        assert manager.samples.count("ETHUSDT", unconsumed=True) == 60
        assert [b["status"] for b in manager.samples.batches("ETHUSDT")] == ["failed"]
        # 3. the CLI fails within its deadline, naming the URI
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP")}
        start = time.monotonic()
        cli = subprocess.run([sys.executable, "-m", "ticker_registry", "--tracking-uri",
                              crashable_server.uri, "status"], env=env, capture_output=True,
                             text=True, timeout=120)
        elapsed = time.monotonic() - start
        assert cli.returncode == 1 and "Traceback" not in cli.stderr
        assert cli.stderr.startswith("Error: ") and crashable_server.uri in cli.stderr
        assert elapsed < 10 + 10  # the documented 10 s, plus interpreter start-up on a busy box
    finally:
        crashable_server.restart_mlflow()

    # 4. the server is back: the next sample after the back-off retrains, exactly once
    time.sleep(1.1)
    _add(manager, X, y, range(60, 61))
    outcomes = manager.wait_for_retraining(timeout=180)
    assert [o.version.version for o in outcomes] == [2]
    versions = manager.registry.list_versions("ETHUSDT")
    keys = [v.tags["idempotency_key"] for v in versions]
    assert [v.version for v in versions] == [2, 1] and len(set(keys)) == 2
    assert manager.samples.count("ETHUSDT", unconsumed=True) == 0
    manager.close()
