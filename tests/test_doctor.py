"""doctor on stores broken on purpose (real SQLite stores, real files removed or altered)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_store_faults import garble_pages, last_pages

from ticker_registry import Config, SyncTickerModelManager
from ticker_registry.audit import divergences
from ticker_registry.cli import cli
from ticker_registry.doctor import diagnose
from ticker_registry.records import TrainingLineage
from ticker_registry.store.packaging import NATIVE_SUBDIR
from ticker_registry.store.runs import NATIVE_SHA256_TAG, native_digests
from ticker_registry.training import train_on_trades

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


# --------------------------------------------------------------------------- real damage
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One trained model (registered as several versions by the tests below)."""
    result = train_on_trades(make_trades(4000, seed=1), Config.from_dict(QUICK))
    return result.model


def _with_versions(tmp_path, model, n: int) -> SyncTickerModelManager:
    """ETHUSDT v1..vn registered from ``model``; v1 in production, the others on no alias."""
    manager = _manager(tmp_path)
    for k in range(1, n + 1):
        info, _ = manager.registry.register("ETHUSDT", model, idempotency_key=f"v{k}",
                                            lineage=TrainingLineage(n_samples=4000))
        if k == 1:
            manager.registry.promote("ETHUSDT", 1, expected=None)
    return manager


def _native_in_store(registry, version: int) -> Path:
    info = registry.get_version("ETHUSDT", version)
    return Path(info.source.removeprefix("file://")) / NATIVE_SUBDIR


def test_a_damaged_sqlite_store_is_reported_never_repaired(tmp_path, trained):
    manager = _with_versions(tmp_path, trained, 1)
    db = tmp_path / "mlflow.db"
    garble_pages(db, last_pages(db))
    content = db.read_bytes()
    for repair in (False, True):
        findings = diagnose(manager, repair=repair, grace_s=0)
        assert [(f.kind, f.action) for f in findings] == [("store_damaged", "")], findings
        assert str(db) in findings[0].detail and "corrupt" in findings[0].detail
        assert "restore it from a backup" in findings[0].detail
    assert db.read_bytes() == content
    manager.close()


def test_the_checksum_tag_lists_every_native_file(tmp_path, trained):
    manager = _with_versions(tmp_path, trained, 1)
    registry = manager.registry
    tag = registry.get_version("ETHUSDT", 1).tags[NATIVE_SHA256_TAG]
    assert len(tag) <= 5000
    assert json.loads(tag) == native_digests(_native_in_store(registry, 1))
    assert sorted(json.loads(tag)) == sorted(
        p.name for p in _native_in_store(registry, 1).iterdir())
    manager.close()


@pytest.mark.parametrize("damage", ["bit_flip", "deleted_file"])
def test_a_damaged_production_artifact_is_found_while_the_cache_is_good(tmp_path, trained, damage):
    manager = _with_versions(tmp_path, trained, 2)
    registry = manager.registry
    registry.load_model("ETHUSDT")  # this machine's cache now holds a good copy of v1
    native = _native_in_store(registry, 1)
    head = max((p for p in native.iterdir() if p.name != "model.json"),
               key=lambda p: p.stat().st_size)
    if damage == "bit_flip":
        data = bytearray(head.read_bytes())
        data[len(data) // 2] ^= 0x01
        head.write_bytes(bytes(data))
        words = f"sha256 differs {head.name}"
    else:
        head.unlink()
        words = f"missing {head.name}"

    findings = diagnose(manager, grace_s=0)
    assert {(f.kind, f.ticker) for f in findings} == {("broken_version", "ETHUSDT"),
                                                       ("broken_alias", "ETHUSDT")}, findings
    broken = next(f for f in findings if f.kind == "broken_version")
    assert broken.detail.startswith("v1: native files differ from registration") \
        and words in broken.detail, broken.detail
    registry.load_model("ETHUSDT", 1)  # the cache's good copy is untouched (it still serves)
    repaired = {f.kind: f.action for f in diagnose(manager, repair=True, grace_s=0)}
    assert repaired["broken_alias"] == "moved production to v2" or \
        repaired["broken_alias"].startswith("removed production")
    manager.close()


def test_versions_without_checksums_are_only_loaded(tmp_path, trained):
    manager = _with_versions(tmp_path, trained, 1)
    registry = manager.registry
    registry.store.client.delete_model_version_tag("order_flow.ETHUSDT", "1", NATIVE_SHA256_TAG)
    assert NATIVE_SHA256_TAG not in registry.get_version("ETHUSDT", 1).tags
    native = _native_in_store(registry, 1)
    (native / "extra.txt").write_text("not part of the model")  # no checksum: not noticed
    assert diagnose(manager, grace_s=0) == []
    (native / "model.json").unlink()  # but a version that does not load still is
    kinds = {f.kind for f in diagnose(manager, grace_s=0)}
    assert kinds == {"broken_version", "broken_alias"}
    manager.close()


def test_an_alias_move_missing_from_the_trail_is_found_and_recorded(tmp_path, trained):
    manager = _with_versions(tmp_path, trained, 2)
    registry = manager.registry
    # what a process killed between the alias move and its audit entry leaves
    registry.store.set_alias("order_flow.ETHUSDT", "production", 2)
    findings = diagnose(manager, grace_s=0)
    assert [(f.kind, f.ticker, f.action) for f in findings] == [
        ("alias_audit_divergence", "ETHUSDT", "")], findings
    assert findings[0].detail.startswith("production is v2 but its audit trail ends at v1")
    cli_result = CliRunner().invoke(cli, ["--models-dir", str(tmp_path), "doctor"])
    assert cli_result.exit_code == 1 and "alias_audit_divergence" in cli_result.output

    repaired = diagnose(manager, repair=True, grace_s=0)
    assert [(f.kind, f.action) for f in repaired] == [
        ("alias_audit_divergence", "recorded the move v1 -> v2 in the trail")]
    trail = registry.audit_trail("ETHUSDT")
    assert (trail[-1].action, trail[-1].alias, trail[-1].from_version, trail[-1].to_version,
            trail[-1].reason) == ("doctor", "production", 1, 2,
                                  "doctor: recorded a move whose audit entry was lost (crash)")
    assert divergences(trail, registry.model("ETHUSDT").aliases) == {}
    assert diagnose(manager, grace_s=0) == []
    manager.close()


def test_promoting_the_staging_version_is_no_divergence(tmp_path, trained):
    # promote takes staging off the version it moves to production, without an audit entry
    manager = _with_versions(tmp_path, trained, 2)
    manager.promote("ETHUSDT", 2, to="staging")
    manager.promote("ETHUSDT", 2)
    assert manager.registry.model("ETHUSDT").aliases == {"production": 2}
    assert diagnose(manager, grace_s=0) == []
    manager.close()
