"""The durable sample store: validation, round trips, batches, leases, crashes, concurrency.

Everything runs against real SQLite files under tmp_path; the crash and
concurrency tests run real processes (tests/_sample_writer.py).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import event

from ticker_registry.exceptions import InvalidTickerError, SampleValidationError, StoreError
from ticker_registry.features import FEATURE_NAMES, FLOW_TYPES
from ticker_registry.samples import SampleBatch, SampleStore, validate_sample

WRITER = Path(__file__).with_name("_sample_writer.py")
ROOT = Path(__file__).resolve().parents[1]
N = len(FEATURE_NAMES)
GOOD = [0.5 + i for i in range(N)]


@pytest.fixture
def store(tmp_path):
    s = SampleStore(models_dir=tmp_path)
    yield s
    s.close()


def _dict(values=GOOD):
    return dict(zip(FEATURE_NAMES, values, strict=True))


def _with(index, value):
    out = list(GOOD)
    out[index] = value
    return out


def _run_writer(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(WRITER), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


# --------------------------------------------------------------------------- validation
_missing = _dict()
del _missing["book_imbalance"]
BAD = {
    "nan": ("ETHUSDT", _with(2, float("nan")), "balanced", 0.0, 1.0,
            SampleValidationError, "feature 'trade_intensity' is nan"),
    "+inf": ("ETHUSDT", _with(0, float("inf")), "balanced", 0.0, 1.0,
             SampleValidationError, "feature 'signed_volume_imbalance' is inf"),
    "-inf numpy": ("ETHUSDT", np.array(_with(1, -np.inf)), 0, 0.0, 1.0,
                   SampleValidationError, "feature 'buy_trade_share' is np.float64(-inf)"),
    "wrong length": ("ETHUSDT", GOOD[:-1], "balanced", 0.0, 1.0,
                     SampleValidationError, f"features has {N - 1} values; expected {N}"),
    "2-D array": ("ETHUSDT", np.array([GOOD]), "balanced", 0.0, 1.0,
                  SampleValidationError, f"shape (1, {N})"),
    "missing name": ("ETHUSDT", _missing, "balanced", 0.0, 1.0,
                     SampleValidationError, "missing ['book_imbalance']"),
    "extra name": ("ETHUSDT", {**_dict(), "colour": 1.0}, "balanced", 0.0, 1.0,
                   SampleValidationError, "unexpected ['colour']"),
    "bool value": ("ETHUSDT", _with(14, True), "balanced", 0.0, 1.0,
                   SampleValidationError, "feature 'has_market_data' is True (bool)"),
    "string value": ("ETHUSDT", _with(3, "1.5"), "balanced", 0.0, 1.0,
                     SampleValidationError, "feature 'realized_volatility_bps' is '1.5' (str)"),
    "None features": ("ETHUSDT", None, "balanced", 0.0, 1.0,
                      SampleValidationError, "features is a NoneType"),
    "two-row frame": ("ETHUSDT", pd.DataFrame([_dict(), _dict()]), "balanced", 0.0, 1.0,
                      SampleValidationError, "DataFrame has 2 rows"),
    "flow 'up'": ("ETHUSDT", GOOD, "up", 0.0, 1.0,
                  SampleValidationError, "flow_type 'up' is not a flow type; use one of"),
    "flow code 3": ("ETHUSDT", GOOD, 3, 0.0, 1.0,
                    SampleValidationError, "flow_type code 3 is out of range"),
    "flow bool": ("ETHUSDT", GOOD, True, 0.0, 1.0, SampleValidationError, "flow_type is True"),
    "flow float": ("ETHUSDT", GOOD, 1.0, 0.0, 1.0, SampleValidationError, "flow_type is 1.0"),
    "nan impact": ("ETHUSDT", GOOD, "balanced", float("nan"), 1.0,
                   SampleValidationError, "impact is nan; impact must be a finite number"),
    "inf tte": ("ETHUSDT", GOOD, "balanced", 0.0, float("inf"),
                SampleValidationError, "time_to_execution is inf"),
    "negative tte": ("ETHUSDT", GOOD, "balanced", 0.0, -0.5,
                     SampleValidationError, "time_to_execution is -0.5; it must be"),
    "bad ticker": ("ETH USDT", GOOD, "balanced", 0.0, 1.0, InvalidTickerError, "ETH USDT"),
    "path ticker": ("../x/y", GOOD, "balanced", 0.0, 1.0, InvalidTickerError, "path"),
}


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_bad_sample_is_refused_and_changes_nothing(store, case):
    ticker, features, flow, impact, tte, error, message = case
    store.add("ETHUSDT", GOOD, "balanced", 0.0, 1.0)
    before = store.snapshot()
    with pytest.raises(error) as info:
        store.add(ticker, features, flow, impact, tte)
    assert message in str(info.value)
    with pytest.raises(error):
        store.add_many(ticker, [(GOOD, 0, 1.0, 1.0), (features, flow, impact, tte)])
    assert store.snapshot() == before


def test_add_many_names_the_bad_row_and_writes_nothing(store):
    rows = [(GOOD, 0, 1.0, 1.0)] * 3 + [{"features": GOOD, "flow_type": "up", "impact": 0.0,
                                          "time_to_execution": 1.0}]
    with pytest.raises(SampleValidationError, match=r"^row 3: flow_type 'up'"):
        store.add_many("ETHUSDT", rows)
    with pytest.raises(SampleValidationError, match="row 0 is"):
        store.add_many("ETHUSDT", [(GOOD, 0, 1.0)])
    assert store.count() == 0


def test_every_accepted_form_gives_the_same_vector():
    shuffled = OrderedDict(reversed(list(_dict().items())))
    forms = [GOOD, tuple(GOOD), np.array(GOOD), np.array(GOOD, dtype=np.float32), shuffled,
             pd.Series(_dict()), pd.DataFrame([_dict()])[list(reversed(FEATURE_NAMES))],
             [np.float64(v) for v in GOOD]]
    for form in forms:
        vector, code, impact, tte = validate_sample(form, np.int64(2), np.float32(0.5), 0)
        assert vector.dtype == np.float64 and vector.shape == (N,)
        assert vector.tolist() == GOOD
        assert (code, impact, tte) == (2, 0.5, 0.0)
    assert validate_sample(list(range(N)), "sell_pressure", -1, 2)[1:] == (0, -1.0, 2.0)


# --------------------------------------------------------------------------- round trip
def test_round_trip_is_exact_and_ordered(store):
    rng = np.random.default_rng(7)
    tricky = [0.1, 1 / 3, 5e-324, -0.0, 1.7976931348623157e308, -1e-300, 2.0**53 + 1.0]
    a = tricky + list(rng.normal(size=N - len(tricky)))
    b = list(rng.standard_cauchy(size=N))
    c = rng.normal(size=N) * 1e6
    ids = [store.add("eth/usdt", _dict(a), "sell_pressure", 0.1 + 0.2, 0.0),
           store.add("ETHUSDT", b, 1, -1 / 7, 12.5),
           store.add("ETH-USDT", c, np.int8(2), np.float64(3e-5), np.float64(1e9))]
    store.add("BTCUSDT", GOOD, 0, 0.0, 0.0)
    assert ids == sorted(ids)

    batch = store.load("ETHUSDT")
    assert isinstance(batch, SampleBatch)
    assert batch.ids.dtype == np.int64 and batch.ids.tolist() == ids and batch.max_id == ids[-1]
    assert list(batch.X.columns) == list(FEATURE_NAMES)
    expected = np.array([a, b, c], dtype=np.float64)
    assert np.array_equal(batch.X.to_numpy().view(np.int64), expected.view(np.int64))  # bits
    assert batch.y["flow_type"].tolist() == list(FLOW_TYPES)
    assert list(batch.y["flow_type"].cat.categories) == list(FLOW_TYPES)
    assert batch.y["impact"].tolist() == [0.1 + 0.2, -1 / 7, 3e-5]
    assert batch.y["time_to_execution"].tolist() == [0.0, 12.5, 1e9]
    assert isinstance(batch.X.index, pd.DatetimeIndex) and str(batch.X.index.tz) == "UTC"
    assert batch.X.index.equals(batch.y.index) and batch.X.index.is_monotonic_increasing
    now = pd.Timestamp.now(tz="UTC")
    assert (now - batch.X.index[0]) < pd.Timedelta(minutes=1)

    last = store.load("ETHUSDT", last=2)
    assert last.ids.tolist() == ids[1:] and last.X.equals(batch.X.iloc[1:])
    assert store.load("ETHUSDT", max_id=ids[1]).ids.tolist() == ids[:2]
    assert store.load("ETHUSDT", max_id=ids[1], last=1).ids.tolist() == [ids[1]]
    empty = store.load("SOLUSDT")
    assert len(empty) == 0 and empty.max_id is None and empty.X.shape == (0, N)
    assert store.count() == 4 and store.count("ethusdt") == 3
    assert store.counts() == {"BTCUSDT": {"total": 1, "unconsumed": 1},
                              "ETHUSDT": {"total": 3, "unconsumed": 3}}


def test_add_many_returns_ids_in_order(store):
    ids = store.add_many("ETHUSDT", [(_with(0, float(i)), i % 3, float(i), 1.0) for i in range(50)])
    assert ids == list(range(ids[0], ids[0] + 50))
    batch = store.load("ETHUSDT")
    assert batch.ids.tolist() == ids
    assert batch.X["signed_volume_imbalance"].tolist() == [float(i) for i in range(50)]
    assert store.add_many("ETHUSDT", []) == []


# --------------------------------------------------------------------------- consumption
def test_mark_consumed_records_the_version(store):
    ids = store.add_many("ETHUSDT", [(GOOD, 0, 0.0, 0.0)] * 5)
    other = store.add("BTCUSDT", GOOD, 0, 0.0, 0.0)
    assert store.mark_consumed("ETHUSDT", ids[2], version=1) == 3
    assert store.mark_consumed("ETHUSDT", ids[2], version=9) == 0  # already consumed
    assert store.count("ETHUSDT", unconsumed=True) == 2
    assert store.mark_consumed("ETHUSDT", other + 100, version=2) == 2
    rows = {r["id"]: r["consumed_by_version"] for r in store.snapshot()["samples"]}
    assert [rows[i] for i in ids] == [1, 1, 1, 2, 2] and rows[other] is None
    with pytest.raises(ValueError, match="version must be an integer >= 1"):
        store.mark_consumed("ETHUSDT", ids[-1], version=0)


def test_training_batch_lifecycle(store):
    ids = store.add_many("ETHUSDT", [(GOOD, 1, 0.0, 0.0)] * 4)
    batch_id = store.claim_batch("ETHUSDT", ids[2], "run-1")
    assert store.claim_batch("eth/usdt", ids[2], "run-1") == batch_id  # idempotent
    with pytest.raises(StoreError, match="already claimed batch"):
        store.claim_batch("ETHUSDT", ids[3], "run-1")
    (row,) = store.batches("ETHUSDT")
    assert row["status"] == "claimed" and row["n_samples"] == 3 and row["version"] is None
    assert row["max_sample_id"] == ids[2] and row["idempotency_key"] == "run-1"
    assert [b["batch_id"] for b in store.stale_batches(0)] == [batch_id]
    assert store.stale_batches(3600) == []

    assert store.finish_batch(batch_id, 4) == 3
    assert store.finish_batch(batch_id, 4) == 0  # retry after a lost reply
    with pytest.raises(StoreError, match="already registered as version 4"):
        store.finish_batch(batch_id, 5)
    with pytest.raises(StoreError, match="cannot be marked failed"):
        store.fail_batch(batch_id, "late")
    assert store.batches()[0]["status"] == "registered" and store.batches()[0]["version"] == 4
    assert store.count("ETHUSDT", unconsumed=True) == 1 and store.stale_batches(0) == []

    second = store.claim_batch("ETHUSDT", ids[3], "run-2")
    store.fail_batch(second, "training diverged")
    failed = store.batches("ETHUSDT")[1]
    assert failed["status"] == "failed" and failed["error"] == "training diverged"
    assert store.count("ETHUSDT", unconsumed=True) == 1  # nothing lost
    assert store.batches("BTCUSDT") == []
    with pytest.raises(StoreError, match="no training batch 'nope'"):
        store.finish_batch("nope", 1)


def test_finish_batch_is_one_transaction(store, tmp_path):
    ids = store.add_many("ETHUSDT", [(GOOD, 1, 0.0, 0.0)] * 3)
    batch_id = store.claim_batch("ETHUSDT", ids[-1], "run-1")
    raw = sqlite3.connect(tmp_path / "samples.db")
    raw.execute("CREATE TRIGGER no_marks BEFORE UPDATE OF consumed_by_version ON samples "
                "BEGIN SELECT RAISE(ABORT, 'marking refused'); END")
    raw.commit()
    before = store.snapshot()
    with pytest.raises(StoreError, match="marking refused"):
        store.finish_batch(batch_id, 1)
    assert store.snapshot() == before  # the batch did not become 'registered' either
    raw.execute("DROP TRIGGER no_marks")
    raw.commit()
    raw.close()
    assert store.finish_batch(batch_id, 1) == 3


# --------------------------------------------------------------------------- leases
def test_lease_in_one_process(store):
    assert store.lease_holder("ETHUSDT") is None
    assert store.acquire_lease("ETHUSDT", "a", ttl_s=30)
    assert not store.acquire_lease("eth/usdt", "b", ttl_s=30)
    assert store.acquire_lease("ETHUSDT", "a", ttl_s=30)  # renewal
    assert store.lease_holder("ETHUSDT") == "a" and store.lease_holder("BTCUSDT") is None
    assert not store.release_lease("ETHUSDT", "b")
    assert store.release_lease("ETHUSDT", "a")
    assert store.lease_holder("ETHUSDT") is None

    assert store.acquire_lease("ETHUSDT", "a", ttl_s=0.05)
    time.sleep(0.1)
    assert store.lease_holder("ETHUSDT") is None
    assert store.acquire_lease("ETHUSDT", "b", ttl_s=30)  # expired lease taken over
    assert store.lease_holder("ETHUSDT") == "b"
    with pytest.raises(ValueError, match="ttl_s"):
        store.acquire_lease("ETHUSDT", "b", ttl_s=0)


def test_lease_race_between_processes(tmp_path):
    url = SampleStore(models_dir=tmp_path).url
    go, log = tmp_path / "go", tmp_path / "lease.log"
    procs = [_run_writer("lease", url, "ETHUSDT", owner, "50", str(go), str(log))
             for owner in ("p1", "p2")]
    time.sleep(0.5)
    go.touch()
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    held = [int(out) for out, _ in outs]
    spans = sorted((float(s), float(e), o) for o, s, e in
                   (line.split() for line in log.read_text().splitlines()))
    assert len(spans) == sum(held) >= 2
    for (_, end, owner), (start, _, nxt) in zip(spans, spans[1:]):
        assert start >= end, f"{owner} and {nxt} held the lease at the same time"

    # a lease left behind by a killed holder expires and is taken over
    store = SampleStore(url)
    assert store.acquire_lease("ETHUSDT", "crashed", ttl_s=0.2)
    assert not store.acquire_lease("ETHUSDT", "p1", ttl_s=5)
    time.sleep(0.25)
    assert store.acquire_lease("ETHUSDT", "p1", ttl_s=5)
    store.close()


# --------------------------------------------------------------------------- durability
def test_sqlite_settings_are_in_effect(store):
    with store.engine.connect() as conn:
        pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("synchronous") == 2  # FULL
        assert pragma("busy_timeout") == 10000
        assert pragma("foreign_keys") == 1


def test_writes_begin_immediate_and_reads_deferred(store):
    seen: list[str] = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda conn, cur, stmt, *a: seen.append(stmt.split()[0] + " " + stmt.split()[1]))
    store.add("ETHUSDT", GOOD, 0, 0.0, 0.0)
    assert seen[:2] == ["BEGIN IMMEDIATE", "INSERT INTO"]
    seen.clear()
    store.count()
    assert seen[0] == "BEGIN DEFERRED"


def test_writer_waits_for_a_locked_database(store, tmp_path):
    store.count()  # create the file
    raw = sqlite3.connect(tmp_path / "samples.db", isolation_level=None)
    raw.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(store.add("ETHUSDT", GOOD, 0, 0.0, 0.0)))
    worker.start()
    time.sleep(0.3)
    assert worker.is_alive() and store.count() == 0  # waiting, not failed; readers not blocked
    raw.execute("COMMIT")
    raw.close()
    worker.join(10)
    assert result == [1]


def test_committed_sample_survives_sigkill(tmp_path):
    url = SampleStore(models_dir=tmp_path).url
    proc = _run_writer("add", url, "ETHUSDT")
    line = proc.stdout.readline()
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    sample_id = int(line)
    fresh = SampleStore(url)
    batch = fresh.load("ETHUSDT")
    assert batch.ids.tolist() == [sample_id]
    assert batch.X.iloc[0].tolist() == [float(i) + 0.5 for i in range(N)]
    assert batch.y.iloc[0].tolist() == ["buy_pressure", 1.25, 3.5]
    fresh.close()


def test_two_processes_add_concurrently(tmp_path):
    url = SampleStore(models_dir=tmp_path).url
    go = tmp_path / "go"
    procs = [_run_writer("adds", url, "ETHUSDT", "150", str(go)) for _ in range(2)]
    time.sleep(0.5)
    go.touch()
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    store = SampleStore(url)
    batch = store.load("ETHUSDT")
    assert len(batch) == 300 and len(set(batch.ids.tolist())) == 300
    by_writer = batch.y.groupby("impact")["time_to_execution"].apply(list)
    assert len(by_writer) == 2
    assert all(v == [float(i) for i in range(150)] for v in by_writer)  # each writer in order
    store.close()


def test_lazy_init_is_thread_safe(tmp_path):
    folder = tmp_path / "models"
    store = SampleStore(models_dir=folder)
    assert not folder.exists()  # the constructor only stores
    engines, errors = [], []

    def use() -> None:
        try:
            store.add("ETHUSDT", GOOD, 0, 0.0, 0.0)
            engines.append(id(store.engine))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(set(engines)) == 1 and store.count() == 8
    store.close()
    assert store.count() == 8  # reopens after close


# --------------------------------------------------------------------------- errors
def test_default_url_and_database_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert SampleStore().url == f"sqlite:///{tmp_path.resolve() / 'mlruns' / 'samples.db'}"
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    broken = SampleStore(models_dir=blocker / "sub")
    with pytest.raises(StoreError, match=r"sample store sqlite:///.*could not open .*check that"):
        broken.count()
    remote = SampleStore("postgresql+psycopg2://user:s3cret@127.0.0.1:1/db")
    with pytest.raises(StoreError) as info:
        remote.count()
    assert "s3cret" not in str(info.value) and "user:***@127.0.0.1:1/db" in str(info.value)
    assert "s3cret" not in repr(remote)
    with pytest.raises(StoreError, match="is not a SQLAlchemy URL"):
        SampleStore("not a url")
