"""Concurrent writers on one ticker, real processes, one SQLite store.

- 4 processes x 25 registrations (``TickerRegistry.register``, a distinct
  idempotency key and lineage each): exactly 100 versions, numbered 1..100,
  no errors, no duplicate version numbers or keys, and the registered model's
  counters saw every registration.
- A promoter and a rollbacker racing on the production alias, each reading
  the status and then writing with compare-and-set: the alias always points
  at an existing, loadable version (sampled while they run and checked at the
  end), losers get ``PromotionConflictError``, and the audit trail holds
  exactly the successful moves, as one continuous chain.
- Three processes importing the same bundle at once: one creates the version,
  all report it with the same aliases (staging), and it is placed exactly once.

The store lives on tmpfs (``/dev/shm``) when there is one: SQLite's locking is
the same there, but its fsyncs are free, which keeps 100 serialised
registrations (about 0.4 s each) within the time budget of this file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from ticker_registry import (
    Config,
    OrderFlowModel,
    PromotionConflictError,
    SyncTickerModelManager,
    TickerRegistry,
)
from ticker_registry.records import TrainingLineage
from ticker_registry.training import train_on_trades

from conftest import QUICK, make_trades

pytestmark = pytest.mark.slow  # real subprocesses and stores: tens of seconds

WORKER = Path(__file__).parent / "_concurrency_worker.py"
CONFIG = {**QUICK, "refresh_interval": 0}
TINY = {**CONFIG, "hyperparameters": {"xgboost": {"n_estimators": 5, "max_depth": 3}}}
WRITERS, PER_WRITER = 4, 25
MOVES_PER_WORKER = 20


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A created (empty) store and one small trained model saved on disk."""
    tmpfs = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    root = Path(tempfile.mkdtemp(prefix="ticker-registry-concurrency-", dir=tmpfs)) if tmpfs \
        else tmp_path_factory.mktemp("concurrency")
    try:
        model = train_on_trades(make_trades(1500, seed=1), Config.from_dict(TINY)).model
        model_dir = model.save(root / "model")
        registry = TickerRegistry(CONFIG, models_dir=root / "store")
        assert registry.experiment_id  # the schema and experiment exist before the race
        yield {"root": root, "models_dir": root / "store", "model_dir": model_dir}
    finally:
        if tmpfs:
            shutil.rmtree(root, ignore_errors=True)


def _spawn(*args):
    return subprocess.Popen([sys.executable, str(WORKER), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _results(procs, timeout=150):
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, stderr[-3000:]
        out.append(json.loads(stdout.splitlines()[-1]))
    return out


def _race(go: Path, procs) -> list[dict]:
    for proc in procs:  # every worker has imported and opened the store: start together
        line = proc.stdout.readline()
        assert line.strip() == "ready", (line, proc.stderr.read()[-3000:] if not line else "")
    go.touch()
    return _results(procs)


def test_four_processes_register_one_hundred_versions(store):
    ticker, go = "CONCUSDT", store["root"] / "go-register"
    procs = [_spawn("register", store["models_dir"], ticker, store["model_dir"], w, PER_WRITER, go)
             for w in range(WRITERS)]
    results = _race(go, procs)
    assert [r["errors"] for r in results] == [[]] * WRITERS
    claimed = [v for r in results for v in r["versions"]]
    assert sorted(claimed) == list(range(1, WRITERS * PER_WRITER + 1))  # no duplicate numbers

    registry = TickerRegistry(CONFIG, models_dir=store["models_dir"])
    versions = registry.list_versions(ticker)
    assert len(versions) == WRITERS * PER_WRITER
    assert sorted(v.version for v in versions) == list(range(1, WRITERS * PER_WRITER + 1))
    assert {v.status for v in versions} == {"READY"}
    keys = [v.tags["idempotency_key"] for v in versions]
    assert len(set(keys)) == len(keys) == WRITERS * PER_WRITER
    by_key = {v.tags["idempotency_key"]: v for v in versions}
    for r in results:  # each worker got back the version that carries its key and lineage
        for key, number in zip(r["keys"], r["versions"], strict=True):
            info = by_key[key]
            assert info.version == number
            worker, index = key[1:].split("-")
            assert (info.tags["lineage.worker"], info.tags["lineage.index"]) == (worker,
                                                                                 str(int(index)))
            assert info.tags["lineage.n_samples"] == str(int(index) + 1)
    assert len({v.run_id for v in versions}) == WRITERS * PER_WRITER
    # running totals on each version, computed under the lock: none lost, none counted twice
    tags = max(versions, key=lambda v: v.version).tags
    assert tags["totals.training_sessions"] == str(WRITERS * PER_WRITER)
    assert tags["totals.total_samples"] == str(WRITERS * sum(range(1, PER_WRITER + 1)))


def test_racing_promote_and_rollback_keep_production_valid_and_audited(store):
    ticker, go = "MOVEUSDT", store["root"] / "go-move"
    registry = TickerRegistry(CONFIG, models_dir=store["models_dir"])
    model = OrderFlowModel.load(store["model_dir"])
    for i in range(4):
        registry.register(ticker, model, lineage=TrainingLineage(n_samples=1),
                          idempotency_key=f"move-{i}")
    registry.promote(ticker, 1, expected=None, reason="start")
    registry.promote(ticker, 2, expected=1, reason="start")
    existing = {v.version for v in registry.list_versions(ticker)}

    samples: list[int | None] = []
    problems: list[str] = []
    stop = threading.Event()

    def sample() -> None:
        watcher = TickerRegistry(CONFIG, models_dir=store["models_dir"])
        loaded: set[int] = set()  # versions are immutable: load each one once
        while not stop.is_set():
            try:
                version = watcher.production_version(ticker)
                samples.append(version)
                assert version is not None, "production vanished"
                info = watcher.get_version(ticker, version)
                assert info.status == "READY" and version in existing, info
                if version not in loaded:
                    OrderFlowModel.load(watcher.download_native(info))
                    loaded.add(version)
            except Exception as exc:  # noqa: BLE001 - every failure is a finding
                problems.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    procs = [_spawn("move", store["models_dir"], ticker, role, MOVES_PER_WORKER, go, seed)
             for seed, role in enumerate(("promote", "rollback"))]
    try:
        promoter, rollbacker = _race(go, procs)
    finally:
        stop.set()
        sampler.join(timeout=30)
    assert promoter["errors"] == [] and rollbacker["errors"] == []
    assert promoter["ok"] + promoter["conflicts"] == MOVES_PER_WORKER
    assert rollbacker["ok"] + rollbacker["conflicts"] + rollbacker["refused"] == MOVES_PER_WORKER
    assert promoter["ok"] > 0 and rollbacker["ok"] > 0
    assert promoter["conflicts"] + rollbacker["conflicts"] > 0, (promoter, rollbacker)
    assert problems == [] and len(samples) >= 10
    assert None not in samples

    trail = registry.audit_trail(ticker)
    assert [e.seq for e in trail] == list(range(1, len(trail) + 1))  # no lost or doubled event
    moves = trail[2:]  # after the two set-up promotions
    assert sum(e.action == "promote" for e in moves) == promoter["ok"]
    assert sum(e.action == "rollback" for e in moves) == rollbacker["ok"]
    assert len(moves) == promoter["ok"] + rollbacker["ok"]
    production = [e for e in trail if e.alias == "production"]
    for previous, event in zip(production, production[1:], strict=False):
        assert event.from_version == previous.to_version, (previous, event)
        assert event.to_version != event.from_version
    final = registry.production_version(ticker)
    assert final == production[-1].to_version and final in existing
    registry.load_model(ticker)


def test_rollback_is_compare_and_set_against_what_the_caller_read(store):
    ticker = "CASUSDT"
    registry = TickerRegistry(CONFIG, models_dir=store["models_dir"])
    model = OrderFlowModel.load(store["model_dir"])
    for i in range(3):
        registry.register(ticker, model, lineage=TrainingLineage(n_samples=1),
                          idempotency_key=f"cas-{i}")
    registry.promote(ticker, 1, expected=None)
    registry.promote(ticker, 2, expected=1)
    seen = registry.production_version(ticker)  # 2: a rollback would go to 1
    registry.promote(ticker, 3, expected=2)  # someone else moves production meanwhile
    with pytest.raises(PromotionConflictError):
        registry.rollback(ticker, expected=seen)
    assert registry.production_version(ticker) == 3


@pytest.mark.slow
def test_three_processes_registering_the_same_training_all_succeed_alike(tmp_path):
    worker = Path(__file__).parent / "_same_training_worker.py"
    go = tmp_path / "go"
    SyncTickerModelManager(QUICK, tmp_path / "store", auto_retrain=False).close()  # schema once
    procs = [subprocess.Popen([sys.executable, str(worker), str(tmp_path / "store"), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert [r["error"] for r in results] == [None, None, None], results
    assert {r["version"] for r in results} == {1}
    assert sum(r["created"] for r in results) == 1
    manager = SyncTickerModelManager(QUICK, tmp_path / "store", auto_retrain=False)
    assert manager.registry.production_version("ETHUSDT") == 1
    manager.close()


def test_three_processes_importing_the_same_bundle_report_the_same_version_and_aliases(store):
    """Each importer either creates the version or finds it; none reports it before it is placed."""
    from ticker_registry.bundle import export_bundle

    source = TickerRegistry(CONFIG, models_dir=store["root"] / "import-source")
    source.register("IMPUSDT", OrderFlowModel.load(store["model_dir"]),
                    lineage=TrainingLineage(n_samples=1), idempotency_key="import-race")
    bundle = store["root"] / "IMPUSDT.trbundle"
    export_bundle(source, "IMPUSDT", bundle, 1)
    target = store["root"] / "import-target"
    TickerRegistry(CONFIG, models_dir=target).search_models()  # the schema exists before the race
    worker, go = Path(__file__).parent / "_import_worker.py", store["root"] / "go-import"
    procs = [subprocess.Popen([sys.executable, str(worker), str(target), str(bundle), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = _race(go, procs)
    assert [r["error"] for r in results] == [None] * 3, results
    assert [(r["version"], r["aliases"]) for r in results] == [(1, ["staging"])] * 3, results
    assert sum(r["created"] for r in results) == 1
    registry = TickerRegistry(CONFIG, models_dir=target)
    assert [v.version for v in registry.list_versions("IMPUSDT")] == [1]
    trail = registry.audit_trail("IMPUSDT")  # placed once, by one of them
    assert [(e.action, e.alias, e.to_version) for e in trail] == [("import", "staging", 1)]
