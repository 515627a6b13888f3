"""Schema migrations of the sample store (Alembic, run in code when a store opens).

Old stores are built here with the DDL the first round's ``create_all`` emitted
on SQLite, written out literally so the test does not depend on the code under
test; a test checks that revision 0001 produces exactly that DDL.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from ticker_registry.exceptions import StoreError
from ticker_registry.features import FEATURE_NAMES, FeatureSpec
from ticker_registry.samples import SampleStore, migrate, spec_hash
from ticker_registry.samples.schema import metadata

ROOT = Path(__file__).resolve().parents[1]
N = len(FEATURE_NAMES)
GOOD = [0.5 + i for i in range(N)]

#: What the first round's metadata.create_all created on SQLite (revision 0001).
FIRST_ROUND_DDL = """
CREATE TABLE samples (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    ticker VARCHAR(40) NOT NULL,
    created_at DOUBLE NOT NULL,
    spec_version INTEGER NOT NULL,
    features TEXT NOT NULL,
    flow_type SMALLINT NOT NULL,
    impact DOUBLE NOT NULL,
    time_to_execution DOUBLE NOT NULL,
    consumed_by_version INTEGER
);
CREATE INDEX ix_samples_ticker_id ON samples (ticker, id);
CREATE INDEX ix_samples_ticker_consumed ON samples (ticker, consumed_by_version);
CREATE TABLE training_batches (
    batch_id VARCHAR(32) NOT NULL,
    ticker VARCHAR(40) NOT NULL,
    max_sample_id BIGINT NOT NULL,
    n_samples INTEGER NOT NULL,
    idempotency_key VARCHAR(200) NOT NULL,
    status VARCHAR(16) NOT NULL,
    version INTEGER,
    error TEXT,
    created_at DOUBLE NOT NULL,
    updated_at DOUBLE NOT NULL,
    PRIMARY KEY (batch_id),
    CONSTRAINT uq_training_batches_key UNIQUE (ticker, idempotency_key),
    CONSTRAINT ck_training_batches_status CHECK (status IN ('claimed', 'registered', 'failed'))
);
CREATE TABLE training_leases (
    ticker VARCHAR(40) NOT NULL,
    owner VARCHAR(200) NOT NULL,
    acquired_at DOUBLE NOT NULL,
    expires_at DOUBLE NOT NULL,
    PRIMARY KEY (ticker)
);
"""


def _first_round_store(path: Path, *, extra_ddl: str = "") -> None:
    """A samples.db as the first round left it: three samples, a batch, a lease."""
    raw = sqlite3.connect(path)
    raw.executescript(FIRST_ROUND_DDL + extra_ddl)
    features = json.dumps(GOOD)
    raw.executemany(
        "INSERT INTO samples (ticker, created_at, spec_version, features, flow_type, impact, "
        "time_to_execution, consumed_by_version) VALUES (?, ?, 1, ?, ?, ?, ?, ?)",
        [("ETHUSDT", 1_700_000_000.0 + i, features, i % 3, 0.25 * i, float(i), 1 if i < 2 else None)
         for i in range(3)])
    raw.execute("INSERT INTO training_batches VALUES ('b1', 'ETHUSDT', 2, 2, 'key-1', 'registered', "
                "1, NULL, 1700000010.0, 1700000011.0)")
    raw.execute("INSERT INTO training_leases VALUES ('ETHUSDT', 'host:1', 1700000010.0, 4e9)")
    raw.commit()
    raw.close()


def _tables(path: Path) -> dict[str, list[str]]:
    """Every table of the file with its column names (SQLite's own catalogue)."""
    raw = sqlite3.connect(path)
    try:
        names = [r[0] for r in raw.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'sqlite_sequence'")]
        return {n: [c[1] for c in raw.execute(f"PRAGMA table_info({n})")] for n in sorted(names)}
    finally:
        raw.close()


def _revision(path: Path) -> list[str]:
    raw = sqlite3.connect(path)
    try:
        return [r[0] for r in raw.execute(f"SELECT version_num FROM {migrate.VERSION_TABLE}")]
    finally:
        raw.close()


def _schema_differences(url: str) -> list[object]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": migrate.VERSION_TABLE})
            return compare_metadata(context, metadata)
    finally:
        engine.dispose()


def _normalised(sql: str) -> list[str]:
    statements = [" ".join(s.replace("(", " ( ").replace(")", " ) ").replace(",", " , ").split())
                  for s in sql.split(";")]
    return sorted(s for s in statements if s)


# --------------------------------------------------------------------------- the revisions
def test_head_constant_is_the_newest_revision():
    config = Config()
    config.set_main_option("script_location", str(ROOT / "ticker_registry/samples/migrations"))
    script = ScriptDirectory.from_config(config)
    assert script.get_heads() == [migrate.HEAD]
    assert [r.revision for r in script.walk_revisions()][-1] == migrate.BASELINE


def test_baseline_revision_is_the_first_round_schema(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'baseline.db'}")
    try:
        with engine.begin() as conn:
            config = migrate._config(conn)
            command.upgrade(config, migrate.BASELINE)
    finally:
        engine.dispose()
    raw = sqlite3.connect(tmp_path / "baseline.db")
    created = ";".join(r[0] for r in raw.execute(
        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT IN "
        f"('sqlite_sequence', '{migrate.VERSION_TABLE}')"))
    raw.close()
    assert _normalised(created) == _normalised(FIRST_ROUND_DDL)


def test_fresh_store_is_at_head_with_the_schema_of_the_code(tmp_path):
    with SampleStore(models_dir=tmp_path) as store:
        store.add("ETHUSDT", GOOD, 0, 0.0, 1.0, spec=FeatureSpec())
        url = store.url
    assert _revision(tmp_path / "samples.db") == [migrate.HEAD]
    assert _schema_differences(url) == []


# --------------------------------------------------------------------------- old stores
def test_first_round_store_is_upgraded_and_keeps_its_rows(tmp_path):
    _first_round_store(tmp_path / "samples.db")
    assert "event_time" not in _tables(tmp_path / "samples.db")["samples"]
    with SampleStore(models_dir=tmp_path) as store:
        batch = store.load("ETHUSDT")
        assert batch.ids.tolist() == [1, 2, 3]
        assert batch.X.iloc[0].tolist() == GOOD
        assert batch.y["time_to_execution"].tolist() == [0.0, 1.0, 2.0]
        # no event time recorded: the index falls back to created_at
        assert batch.X.index[0].timestamp() == 1_700_000_000.0
        assert store.count("ETHUSDT", unconsumed=True) == 1
        assert [b["batch_id"] for b in store.batches("ETHUSDT")] == ["b1"]
        assert store.lease_holder("ETHUSDT") == "host:1"
        spec = FeatureSpec()
        new_id = store.add("ETHUSDT", GOOD, 1, 0.5, 2.0, event_time=1_700_000_100, spec=spec)
        assert new_id == 4 and store.feature_spec(spec_hash(spec)) == spec
        url = store.url
    tables = _tables(tmp_path / "samples.db")
    assert {"event_time", "spec_hash"} <= set(tables["samples"]) and "feature_specs" in tables
    assert _revision(tmp_path / "samples.db") == [migrate.HEAD]
    assert _schema_differences(url) == []


def test_store_written_between_the_rounds_gets_what_it_lacks(tmp_path):
    # one release stored event_time (and created every table of its metadata) before spec_hash
    _first_round_store(tmp_path / "samples.db",
                       extra_ddl="ALTER TABLE samples ADD COLUMN event_time BIGINT;")
    raw = sqlite3.connect(tmp_path / "samples.db")
    raw.execute("UPDATE samples SET event_time = 1700000500000000000 WHERE id = 3")
    raw.commit()
    raw.close()
    with SampleStore(models_dir=tmp_path) as store:
        batch = store.load("ETHUSDT")
        assert batch.X.index[-1].timestamp() == 1_700_000_500.0
        assert len(batch) == 3
        url = store.url
    assert _revision(tmp_path / "samples.db") == [migrate.HEAD]
    assert _schema_differences(url) == []


def test_complete_store_from_before_alembic_is_stamped_without_changes(tmp_path):
    path = tmp_path / "samples.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)  # what the store did before it had migrations
    engine.dispose()
    raw = sqlite3.connect(path)
    raw.execute("INSERT INTO feature_specs VALUES ('abc', '{}')")
    raw.commit()
    before = raw.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    raw.close()
    with SampleStore(models_dir=tmp_path) as store:
        assert store.count() == 0
    raw = sqlite3.connect(path)
    after = raw.execute(f"SELECT sql FROM sqlite_master WHERE name NOT LIKE "
                        f"'%{migrate.VERSION_TABLE}%' ORDER BY name").fetchall()
    assert raw.execute("SELECT spec_hash FROM feature_specs").fetchall() == [("abc",)]
    raw.close()
    assert after == before and _revision(path) == [migrate.HEAD]


# --------------------------------------------------------------------------- repeated opens
def test_opening_at_head_again_changes_nothing(tmp_path):
    for _ in range(2):
        with SampleStore(models_dir=tmp_path) as store:
            store.count()
    seen: list[str] = []

    def record(conn, cursor, statement, *args):  # every statement of every engine
        seen.append(statement.split()[0].upper())

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    try:
        with SampleStore(models_dir=tmp_path) as store:
            store.engine  # noqa: B018 - opening is the point
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)
    assert seen and set(seen) <= {"BEGIN", "PRAGMA", "SELECT"}, seen
    assert _revision(tmp_path / "samples.db") == [migrate.HEAD]


def test_opening_at_head_does_not_load_alembic(tmp_path):
    with SampleStore(models_dir=tmp_path) as store:
        store.count()
    code = ("import sys; from ticker_registry.samples import SampleStore; "
            f"SampleStore(models_dir={str(tmp_path)!r}).count(); print('alembic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- refusals
def test_store_newer_than_the_code_is_refused(tmp_path):
    with SampleStore(models_dir=tmp_path) as store:
        store.count()
    raw = sqlite3.connect(tmp_path / "samples.db")
    raw.execute(f"UPDATE {migrate.VERSION_TABLE} SET version_num = '9999'")
    raw.commit()
    raw.close()
    store = SampleStore(models_dir=tmp_path)
    with pytest.raises(StoreError, match=r"schema revision '9999', which this ticker-registry does "
                                         r"not know .*upgrade ticker-registry"):
        store.count()
    assert _revision(tmp_path / "samples.db") == ["9999"]


def test_foreign_tables_are_refused(tmp_path):
    raw = sqlite3.connect(tmp_path / "samples.db")
    raw.execute("CREATE TABLE samples (id INTEGER PRIMARY KEY, what TEXT)")
    raw.close()
    with pytest.raises(StoreError, match=r"holds the table\(s\) \['samples'\] but not "
                                         r"\['training_batches', 'training_leases'\].*point the store"):
        SampleStore(models_dir=tmp_path).count()
    assert list(_tables(tmp_path / "samples.db")) == ["samples"]


# --------------------------------------------------------------------------- concurrency
def _open_and_add(url: str, start: Any, results: Any) -> None:
    start.wait(60)
    try:
        with SampleStore(url) as store:
            results.put(("ok", store.add("ETHUSDT", GOOD, 0, float(os.getpid()), 1.0)))
    except Exception as exc:  # reported to the test
        results.put(("error", repr(exc)))


def _race(url: str, n: int = 4) -> list[tuple[str, object]]:
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_open_and_add, args=(url, start, results)) for _ in range(n)]
    for p in procs:
        p.start()
    start.set()  # every process imports first, then they open the new store together
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * n
    return outcomes


def test_processes_opening_a_new_store_at_once_all_succeed(tmp_path):
    url = f"sqlite:///{tmp_path / 'new' / 'samples.db'}"
    outcomes = _race(url)
    assert sorted(outcomes) == [("ok", i) for i in range(1, 5)], outcomes
    assert _revision(tmp_path / "new" / "samples.db") == [migrate.HEAD]


def test_processes_opening_an_old_store_at_once_all_succeed(tmp_path):
    _first_round_store(tmp_path / "samples.db")
    outcomes = _race(f"sqlite:///{tmp_path / 'samples.db'}")
    assert sorted(outcomes) == [("ok", i) for i in range(4, 8)], outcomes
    assert _revision(tmp_path / "samples.db") == [migrate.HEAD]


@pytest.mark.server
@pytest.mark.slow
def test_postgresql_store_is_migrated_once_under_a_race(tracking_server):
    server = sa.make_url(tracking_server.env["TR_PG_URI"])
    schema = f"samples_{uuid.uuid4().hex[:12]}"  # a private schema: the role may not create databases
    engine = sa.create_engine(server)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = server.update_query_dict({"options": f"-csearch_path={schema}"})
    url_text = url.render_as_string(hide_password=False)
    try:
        outcomes = _race(url_text)
        assert sorted(outcomes) == [("ok", i) for i in range(1, 5)], outcomes
        assert _schema_differences(url_text) == []
        with sa.create_engine(url).connect() as conn:
            assert conn.exec_driver_sql(
                f"SELECT version_num FROM {migrate.VERSION_TABLE}").scalars().all() == [migrate.HEAD]
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        engine.dispose()
