"""cleanup() against a real SQLite store; time passes through ``now=``, never by sleeping."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

import pytest

from ticker_registry import InvalidArgumentError, ModelNotFoundError
from ticker_registry import audit as audit_module
from ticker_registry.maintenance import CleanupReport, cleanup
from ticker_registry.registry import TickerRegistry

from conftest import registry_snapshot

LATER = timedelta(days=40)


@pytest.fixture
def store(tmp_path, empty_store_db, quick_config):
    (tmp_path / "store").mkdir()
    shutil.copy(empty_store_db, tmp_path / "store" / "mlflow.db")
    return TickerRegistry(quick_config, models_dir=tmp_path / "store")


def add_versions(registry, trained, n, ticker="ETHUSDT"):
    """Register ``n`` versions (no gate, so no alias) and return their numbers."""
    out = []
    for i in range(n):
        result = trained[i % len(trained)]
        info, _ = registry.register(ticker, result.model, lineage=result.lineage,
                                    idempotency_key=f"{ticker}-{i}")
        out.append(info.version)
    return out


def versions_left(registry, ticker="ETHUSDT"):
    return sorted(v.version for v in registry.list_versions(ticker))


def rows(report_rows):
    return [(r["ticker"], r["version"]) for r in report_rows]


def test_refusals_change_nothing(store, trained):
    add_versions(store, trained, 2)
    before = registry_snapshot(store)
    for kwargs in ({"keep_last": 0}, {"keep_last": -1}, {"days": -1}):
        with pytest.raises(InvalidArgumentError, match="must be"):
            cleanup(store, now=datetime.now(UTC) + LATER, **kwargs)
    with pytest.raises(InvalidArgumentError, match="keep_last must be an integer of at least 1, got 0"):
        cleanup(store, keep_last=0)
    with pytest.raises(ModelNotFoundError, match="BTCUSDT is not in the registry"):
        cleanup(store, ticker="BTCUSDT")
    assert registry_snapshot(store) == before


def test_aliased_versions_are_kept(store, trained):
    add_versions(store, trained, 4)
    store.promote("ETHUSDT", 1)
    store.promote("ETHUSDT", 2, to="staging")
    report = cleanup(store, keep_last=1, now=datetime.now(UTC) + LATER)
    assert rows(report.deleted) == [("ETHUSDT", 3)]
    kept = {r["version"]: r["reason"] for r in report.kept}
    assert kept == {4: "one of the newest 1 version(s)", 2: "holds alias staging",
                    1: "holds alias production"}
    assert versions_left(store) == [1, 2, 4]
    assert store.production_version("ETHUSDT") == 1
    assert store.resolve("ETHUSDT", "staging").version == 2


def test_young_versions_and_the_newest_are_kept(store, trained):
    add_versions(store, trained, 5)
    store.promote("ETHUSDT", 1)
    assert cleanup(store, keep_last=1).deleted == []  # all younger than 30 days
    report = cleanup(store, keep_last=2, now=datetime.now(UTC) + LATER)
    assert rows(report.deleted) == [("ETHUSDT", 3), ("ETHUSDT", 2)]
    assert versions_left(store) == [1, 4, 5]
    report = cleanup(store, days=60, keep_last=1, now=datetime.now(UTC) + LATER)
    assert report.deleted == []  # 40 days old is not older than 60


def test_recent_promotions_are_kept(store, trained, monkeypatch):
    add_versions(store, trained, 5)
    t0 = datetime.now(UTC)
    store.promote("ETHUSDT", 2)  # 40 days before "now" below
    for day, version in ((35, 3), (36, 4)):  # alias moves 5 and 4 days before "now"
        when = (t0 + timedelta(days=day)).isoformat(timespec="seconds")
        monkeypatch.setattr(audit_module, "_now", lambda when=when: when)
        store.promote("ETHUSDT", version)
    monkeypatch.undo()
    now = t0 + LATER
    plan = cleanup(store, keep_last=1, now=now, dry_run=True)
    assert rows(plan.deleted) == [("ETHUSDT", 1)]
    kept = {r["version"]: r["reason"] for r in plan.kept}
    assert kept[3].startswith("held production until") and kept[2].startswith("held production")
    assert kept[4] == "holds alias production"
    narrow = cleanup(store, days=3, keep_last=1, now=now)  # moves 4-5 days ago no longer count
    assert rows(narrow.deleted) == [("ETHUSDT", 3), ("ETHUSDT", 2), ("ETHUSDT", 1)]
    assert versions_left(store) == [4, 5]


def test_promoted_then_demoted_recently_is_kept_by_its_promotion(store, trained, monkeypatch):
    add_versions(store, trained, 3)
    t0 = datetime.now(UTC)
    monkeypatch.setattr(audit_module, "_now",
                        lambda: (t0 + timedelta(days=38)).isoformat(timespec="seconds"))
    store.promote("ETHUSDT", 1, to="staging")
    store.promote("ETHUSDT", 2, to="staging")
    monkeypatch.undo()
    report = cleanup(store, keep_last=1, now=t0 + LATER, dry_run=True)
    kept = {r["version"]: r["reason"] for r in report.kept}
    assert kept[1].startswith("held staging until")
    assert kept[2] == "holds alias staging" and report.deleted == []


def test_dry_run_reports_the_same_plan_and_changes_nothing(store, trained, tmp_path):
    add_versions(store, trained, 4)
    store.promote("ETHUSDT", 1)
    now = datetime.now(UTC) + LATER
    before = registry_snapshot(store)
    plan = cleanup(store, keep_last=1, now=now, dry_run=True)
    assert isinstance(plan, CleanupReport) and plan.dry_run
    assert registry_snapshot(store) == before
    assert "Would delete 2 version(s) of 1 ticker(s)" in plan.summary()
    assert "Dry run: nothing was changed" in plan.summary()
    assert f"mlflow gc --backend-store-uri {store.tracking_uri}" in plan.summary()
    run_ids = {v.version: v.run_id for v in store.list_versions("ETHUSDT")}
    model_ids = {v.version: v.tags["model_id"] for v in store.list_versions("ETHUSDT")}
    done = cleanup(store, keep_last=1, now=now)
    assert done.deleted == plan.deleted and done.kept == plan.kept
    assert "Deleted 2 version(s)" in done.summary()
    assert f"`mlflow gc --backend-store-uri {store.tracking_uri}`" in done.summary()
    assert sorted(done.deleted_runs) == sorted(run_ids[v] for v in (2, 3))
    client = store.store.client
    assert client.get_run(run_ids[2]).info.lifecycle_stage == "deleted"
    assert client.get_run(run_ids[1]).info.lifecycle_stage == "active"
    # the LoggedModels holding the deleted versions' files go with them (mlflow gc reclaims them)
    assert sorted(done.deleted_logged_models) == sorted(model_ids[v] for v in (2, 3))
    live = client.search_logged_models([store.experiment_id])
    assert sorted(m.model_id for m in live) == sorted(model_ids[v] for v in (1, 4))
    assert cleanup(store, keep_last=1, now=now).deleted == []  # idempotent


def test_ticker_option_limits_the_scope(store, trained):
    add_versions(store, trained, 3, "ETHUSDT")
    add_versions(store, trained, 3, "ADAUSDT")
    report = cleanup(store, keep_last=1, ticker="adausdt", now=datetime.now(UTC) + LATER)
    assert rows(report.deleted) == [("ADAUSDT", 2), ("ADAUSDT", 1)]
    assert versions_left(store, "ETHUSDT") == [1, 2, 3]
    assert versions_left(store, "ADAUSDT") == [3]


def test_a_model_with_no_version_left_is_deleted(store, trained):
    add_versions(store, trained, 2, "ETHUSDT")
    add_versions(store, trained, 2, "BTCUSDT")
    store.load_model("BTCUSDT", 1)  # fills the local cache
    for version in (1, 2):
        store.delete_version("BTCUSDT", version)
    young = cleanup(store, keep_last=1)
    assert young.deleted_models == []  # created just now: a registration may be under way
    report = cleanup(store, keep_last=1, now=datetime.now(UTC) + LATER)
    assert report.deleted_models == ["order_flow.BTCUSDT"]
    assert "registered model(s) with no version left: order_flow.BTCUSDT" in report.summary()
    assert [s.name for s in store.search_models()] == ["order_flow.ETHUSDT"]
    assert not (store.models_dir / "cache" / "order_flow.BTCUSDT").exists()
    assert versions_left(store, "ETHUSDT") == [2]
