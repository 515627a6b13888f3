"""Crash safety: a retraining process SIGKILLed at precise points, against a real SQLite store.

The child (``_crash_worker.py``) injects the fault into itself only: it wraps
its own ``create_model_version`` / ``set_registered_model_alias`` / head
training so that it SIGKILLs itself right before or after the real call. The
parent then checks what a restarted process finds:

- production still points at a complete version that loads natively
  (``TickerRegistry.load_model``) and through plain MLflow
  (``mlflow.pyfunc.load_model("models:/...@production")``);
- the samples are intact (a killed training consumes none);
- ``doctor`` leaves fresh leftovers alone (a training may still be running)
  and, past its grace period, reports them (orphan run, stale batch);
  ``repair`` fixes them and a second pass finds nothing;
- re-running the same training registers exactly once in total (the batch's
  idempotency key) and the promotion gate ends up applied and consistent with
  the audit trail.

A promotion killed between moving the alias and writing its audit entry leaves the
alias moved and the trail one move short: ``doctor`` reports the divergence,
``rollback`` still returns to the version served before, and ``repair`` records the
lost move.

The "sample survives a SIGKILL right after add_training_sample" case lives in
``test_manager.py::test_samples_survive_sigkill``.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ticker_registry import (
    FEATURE_NAMES,
    Config,
    OrderFlowModel,
    SyncTickerModelManager,
    build_training_set,
)
from ticker_registry.audit import divergences
from ticker_registry.doctor import diagnose
from ticker_registry.model import PREDICTION_COLUMNS
from ticker_registry.records import TrainingLineage
from ticker_registry.training import train_on_trades

from conftest import QUICK, make_trades, registry_snapshot

pytestmark = pytest.mark.slow  # real subprocesses and stores: tens of seconds

WORKER = Path(__file__).parent / "_crash_worker.py"
TICKER = "ETHUSDT"
NAME = f"order_flow.{TICKER}"
N_SAMPLES = 200
CONFIG = {**QUICK, "refresh_interval": 0}

GATE_NOT_REAPPLIED = (
    "A crash after apply_gate tagged the version (gate.decision) but before "
    "set_registered_model_alias: the re-run finds the version by its key and skips the gate "
    "because SyncTickerModelManager._register treats 'gate.decision' in tags as 'gated'. The "
    "version keeps gate.decision=... but no alias and no audit event. Fix: decide 'gated' from "
    "the alias/audit trail (see the report's patch), not from the tag.")
DEAD_LEASE = (
    "The SIGKILLed trainer's lease (LEASE_TTL_S = 900 s) blocks every retrain of the ticker "
    "for 15 minutes; doctor neither reports nor repairs it. Fix: a 'stale_lease' finding for "
    "an unexpired lease whose owner is a dead pid on this host, released by repair.")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One trained model on disk (v1 of every store) and the samples to add."""
    root = tmp_path_factory.mktemp("crash")
    config = Config.from_dict(CONFIG)
    result = train_on_trades(make_trades(4000, seed=1), config)
    model_dir = result.model.save(root / "v1")
    X, y = build_training_set(make_trades(2000, seed=2), config)
    return model_dir, X.iloc[:N_SAMPLES], y.iloc[:N_SAMPLES]


def _store(tmp_path: Path, saved) -> SyncTickerModelManager:
    """ETHUSDT v1 in production, plus N_SAMPLES unconsumed samples."""
    model_dir, X, y = saved
    manager = SyncTickerModelManager(CONFIG, tmp_path, auto_retrain=False)
    model = OrderFlowModel.load(model_dir)
    info, _ = manager.registry.register(TICKER, model, idempotency_key="v1-from-trades",
                                        lineage=TrainingLineage(n_samples=4000))
    manager.registry.apply_gate(TICKER, info.version, model)
    rows = [(X.iloc[i].to_numpy(), y["flow_type"].iloc[i], y["impact"].iloc[i],
             y["time_to_execution"].iloc[i]) for i in range(N_SAMPLES)]
    manager.samples.add_many(TICKER, rows)
    return manager


def _crash(tmp_path: Path, point: str) -> None:
    proc = subprocess.run([sys.executable, str(WORKER), str(tmp_path), TICKER, point],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr[-3000:])
    assert proc.stdout.splitlines()[-1] == f"reached {point}", proc.stdout


def _frame(n: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.normal(size=(n, len(FEATURE_NAMES))), columns=list(FEATURE_NAMES))


def assert_production_loads(manager: SyncTickerModelManager, monkeypatch, version: int) -> None:
    """Production is ``version``, loads natively from a cold cache and through plain MLflow."""
    import mlflow.pyfunc
    from mlflow import MlflowClient

    registry = manager.registry
    assert registry.production_version(TICKER) == version
    shutil.rmtree(registry.models_dir / "cache", ignore_errors=True)
    native = registry.load_model(TICKER)
    assert native.predict(_frame()).shape == (5, len(PREDICTION_COLUMNS))
    client = MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.tracking_uri)
    assert int(client.get_model_version_by_alias(NAME, "production").version) == version
    with monkeypatch.context() as m:  # models:/ URIs resolve through the environment
        m.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)
        pyfunc = mlflow.pyfunc.load_model(f"models:/{NAME}@production")
    out = pyfunc.predict(_frame())
    assert list(out.columns) == list(PREDICTION_COLUMNS)
    np.testing.assert_allclose(out["impact"].to_numpy(), native.predict(_frame())["impact"])


def assert_gate_applied(manager: SyncTickerModelManager, version: int) -> None:
    """``version`` carries a gate decision, holds that alias, and the audit trail says so."""
    registry, cfg = manager.registry, manager.config
    decision = registry.get_version(TICKER, version).tags.get("gate.decision")
    assert decision in ("production", "staging"), registry.get_version(TICKER, version).tags
    alias = cfg.production_alias if decision == "production" else cfg.staging_alias
    trail = registry.audit_trail(TICKER)
    gate_moves = [e for e in trail if e.action == "gate" and e.to_version == version]
    assert [e.alias for e in gate_moves] == [alias], trail
    assert registry.store.get_model(NAME).aliases.get(alias) == version
    production = [e for e in trail if e.alias == cfg.production_alias]
    for previous, event in zip(production, production[1:], strict=False):
        assert event.from_version == previous.to_version, trail
    assert production[-1].to_version == registry.production_version(TICKER)


def release_dead_lease(manager: SyncTickerModelManager) -> None:
    """Today's manual step after a crashed training (see test_doctor_frees_a_dead_trainers_lease).

    The killed trainer's lease would block ``retrain`` for LEASE_TTL_S; once doctor
    repairs such leases there is nothing left to release here.
    """
    holder = manager.samples.lease_holder(TICKER)
    if holder is not None:
        assert manager.samples.release_lease(TICKER, holder)


# point -> (findings past the grace period, repair action of the stale batch, version after crash)
POINTS = {
    "mid_fit": ({"stale_batch"}, "failed", None),
    "before_version": ({"orphan_run", "stale_batch"}, "failed", None),
    "after_version": ({"stale_batch"}, "finished: registered as v2", 2),
    "before_alias": ({"stale_batch"}, "finished: registered as v2", 2),
}


@pytest.mark.parametrize("point", [
    "mid_fit", "before_version", "after_version",
    "before_alias",
])
def test_killed_training_recovers(tmp_path, saved, monkeypatch, point):
    kinds, batch_action, left_version = POINTS[point]
    manager = _store(tmp_path, saved)
    registry, samples = manager.registry, manager.samples
    before = registry_snapshot(registry)
    sample_rows = samples.snapshot()["samples"]

    _crash(tmp_path, point)

    # --- what a restarted process finds
    assert samples.snapshot()["samples"] == sample_rows  # nothing lost, nothing consumed
    assert [b["status"] for b in samples.batches(TICKER)] == ["claimed"]
    assert_production_loads(manager, monkeypatch, 1)
    after = registry_snapshot(registry)
    if left_version is None:
        assert after == before
    else:
        assert sorted(after[NAME]["versions"]) == [1, left_version]
        assert after[NAME]["aliases"] == before[NAME]["aliases"] == {"production": 1}
        tags = after[NAME]["versions"][left_version][1]
        # the gate decides before registering: its tags come with the version
        assert "gate.decision" in tags

    # --- doctor: fresh leftovers are left alone, old ones are found and repaired
    # (a "stale_lease" of the dead trainer is certain at once: see the xfail test below)
    assert {f.kind for f in manager.doctor()} <= {"stale_lease"}
    found = diagnose(manager, grace_s=0)
    assert {f.kind for f in found} - {"stale_lease"} == kinds, found
    repaired = diagnose(manager, repair=True, grace_s=0)
    actions = {f.kind: f.action for f in repaired}
    assert actions["stale_batch"].startswith(batch_action), actions
    if "orphan_run" in kinds:
        assert actions["orphan_run"].startswith("marked FAILED and deleted")
    assert diagnose(manager, grace_s=0) == []

    # --- the same training again: registered exactly once in total, gate applied
    release_dead_lease(manager)
    outcome = manager.retrain(TICKER)
    assert outcome is not None and outcome.version.version == 2
    assert outcome.created is (left_version is None)
    versions = registry.list_versions(TICKER)
    assert [v.version for v in versions] == [2, 1]
    assert len({v.tags["idempotency_key"] for v in versions}) == 2
    assert manager.retrain(TICKER).created is False  # and once more: still one version
    assert len(registry.list_versions(TICKER)) == 2
    assert_gate_applied(manager, 2)
    assert_production_loads(manager, monkeypatch, registry.production_version(TICKER))
    assert samples.count(TICKER, unconsumed=True) == 0
    assert [(b["status"], b["version"]) for b in samples.batches(TICKER)] == [("registered", 2)]
    assert diagnose(manager, grace_s=0) == []
    manager.close()


def test_doctor_frees_a_dead_trainers_lease(tmp_path, saved):
    manager = _store(tmp_path, saved)
    _crash(tmp_path, "mid_fit")
    assert manager.samples.lease_holder(TICKER) is not None
    found = {f.kind for f in diagnose(manager, repair=True, grace_s=0)}
    assert "stale_lease" in found
    outcome = manager.retrain(TICKER)  # today: None, "another process is training"
    assert outcome is not None and outcome.created
    manager.close()


@pytest.mark.parametrize("order", ["repair_then_rollback", "rollback_then_repair"])
def test_promotion_killed_before_its_audit_entry(tmp_path, saved, monkeypatch, order):
    manager = _store(tmp_path, saved)
    registry = manager.registry
    model = OrderFlowModel.load(saved[0])
    registry.register(TICKER, model, idempotency_key="v2-to-promote",
                      lineage=TrainingLineage(n_samples=4000))
    trail_before = registry.audit_trail(TICKER)

    _crash(tmp_path, "before_audit")

    # the alias moved, its audit entry never came
    assert registry.production_version(TICKER) == 2
    assert registry.audit_trail(TICKER) == trail_before
    assert divergences(trail_before, registry.model(TICKER).aliases) == {"production": (1, 2)}
    found = manager.doctor()  # no grace period: the lost entry is certain at once
    assert [(f.kind, f.ticker, f.action) for f in found] == [
        ("alias_audit_divergence", TICKER, "")], found

    if order == "repair_then_rollback":
        repaired = diagnose(manager, repair=True, grace_s=0)
        assert [(f.kind, f.action) for f in repaired] == [
            ("alias_audit_divergence", "recorded the move v1 -> v2 in the trail")]
        assert divergences(registry.audit_trail(TICKER), registry.model(TICKER).aliases) == {}
    event = manager.rollback(TICKER)
    assert (event.from_version, event.to_version) == (2, 1)  # back to what served before
    if order == "rollback_then_repair":
        diagnose(manager, repair=True, grace_s=0)
    assert divergences(registry.audit_trail(TICKER), registry.model(TICKER).aliases) == {}
    assert diagnose(manager, grace_s=0) == []
    assert_production_loads(manager, monkeypatch, 1)
    manager.close()
