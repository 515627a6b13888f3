"""doctor on stores broken on purpose (real SQLite stores, real files removed)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from click.testing import CliRunner

from ticker_registry import SyncTickerModelManager
from ticker_registry.cli import cli
from ticker_registry.doctor import diagnose

from conftest import QUICK, make_trades


def _manager(tmp_path):
    return SyncTickerModelManager({**QUICK, "refresh_interval": 0}, tmp_path, auto_retrain=False)


def test_healthy_store_has_no_findings(tmp_path):
    manager = _manager(tmp_path)
    manager.train("ETHUSDT", trades=make_trades(5000, seed=1))
    assert diagnose(manager, grace_s=0) == []
    result = CliRunner().invoke(cli, ["--models-dir", str(tmp_path), "doctor"])
    assert result.exit_code == 0, result.output
    manager.close()


def test_broken_store_is_found_and_repaired(tmp_path):
    manager = _manager(tmp_path)
    registry = manager.registry
    manager.train("ETHUSDT", trades=make_trades(5000, seed=1))
    manager.train("ETHUSDT", trades=make_trades(5000, seed=2))
    manager.promote("ETHUSDT", 2)
    # 1. production's artifacts vanish
    v2 = registry.get_version("ETHUSDT", 2)
    shutil.rmtree(Path(v2.source.removeprefix("file://")))
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)
    # 2. a crash between creating the run and the version
    orphan = registry.store.client.create_run(registry.experiment_id, tags={"ticker": "ETHUSDT"})
    # 3. a batch claimed by a training that never registered
    manager.add_training_sample("ETHUSDT", list(range(15)), "balanced", 0.0, 1.0)
    batch = manager.samples.claim_batch("ETHUSDT", 1, "never-registered-key")
    # 4. a lock model left by a crashed writer on a server
    registry.store.client.create_registered_model("_lock.order_flow.ETHUSDT",
                                            tags={"acquired_at": repr(time.time() - 3600)})

    found = {f.kind for f in diagnose(manager, grace_s=0)}
    assert found == {"broken_version", "broken_alias", "orphan_run", "stale_batch", "stale_lock"}
    cli_result = CliRunner().invoke(cli, ["--models-dir", str(tmp_path), "doctor"])
    assert cli_result.exit_code == 1 and "doctor --repair" in cli_result.output

    repaired = diagnose(manager, repair=True, grace_s=0)
    actions = {f.kind: f.action for f in repaired}
    assert actions["broken_alias"] == "moved production to v1"
    assert actions["stale_batch"].startswith("failed")
    assert registry.production_version("ETHUSDT") == 1
    registry.load_model("ETHUSDT")  # production loads again
    assert registry.get_version("ETHUSDT", 2).tags["doctor.broken"]
    assert registry.store.client.get_run(orphan.info.run_id).info.lifecycle_stage == "deleted"
    assert [b["status"] for b in manager.samples.batches("ETHUSDT")
            if b["batch_id"] == batch] == ["failed"]
    assert manager.samples.count("ETHUSDT", unconsumed=True) == 1
    remaining = diagnose(manager, grace_s=0)
    # the broken version is kept (tagged) for its lineage, never deleted automatically
    assert [(f.kind, f.action) for f in remaining] == [("broken_version",
                                                         "already tagged doctor.broken")]
    assert CliRunner().invoke(cli, ["--models-dir", str(tmp_path), "doctor"]).exit_code == 0
    manager.close()
