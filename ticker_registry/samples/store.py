"""The durable training-sample store: every labelled sample, one SQL row, committed.

Samples, training batches and training leases live in three tables reached
through SQLAlchemy Core, so the same code runs on an embedded SQLite file
(the default, ``<models_dir>/samples.db``) and on a shared PostgreSQL server.

Durability on SQLite. Every connection is opened with these settings:

- ``PRAGMA busy_timeout=10000``: a writer that finds the file locked waits up
  to 10 s instead of failing at once with "database is locked"; set first so
  the other PRAGMAs wait too.
- ``PRAGMA journal_mode=WAL``: readers never block the writer (and vice
  versa), and a commit is one append to the write-ahead log, so a killed
  process never leaves a half-written database.
- ``PRAGMA synchronous=FULL``: the WAL is fsynced at every commit, so a
  committed sample survives power loss, not only a process kill (``NORMAL``
  in WAL mode may lose the last commits on power loss).
- ``PRAGMA foreign_keys=ON``: SQLite ignores foreign keys unless asked.

Transactions on SQLite follow SQLAlchemy's documented recipe ("Using
SQLAlchemy to emit BEGIN in lieu of SQLite's transaction control"): the
driver's own transaction handling is switched off at connect
(``isolation_level = None``) and the engine's ``begin`` event emits the BEGIN.
Writes emit ``BEGIN IMMEDIATE``, which takes the write lock before the first
read, so a read-then-write (a lease check, a batch claim) cannot interleave
with another process's and never fails with ``SQLITE_BUSY_SNAPSHOT``.
Read-only calls emit ``BEGIN DEFERRED`` and so run on a consistent snapshot
without blocking writers. Writes are serialised, so sample ids are committed
in increasing order (``AUTOINCREMENT`` also keeps them from being reused).

On PostgreSQL the lease row is read with ``SELECT ... FOR UPDATE``; a race on
a lease row that does not exist yet is settled by the primary key. Ids come
from a sequence; two writers may commit ids out of order, so call
:meth:`SampleStore.load` for training while holding the ticker's lease.

Features are stored as a JSON array of floats (``json.dumps`` writes the
shortest repr, which round-trips a float64 exactly) with a ``spec_version``
column (1). Times are UTC seconds since the epoch.

A sample is checked by :func:`~ticker_registry.sample_validation.validate_sample`
(re-exported here) before anything is written.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError

from .exceptions import SampleValidationError, StoreError, TimestampError
from .features import FEATURE_NAMES, FLOW_TYPES, FeatureSpec
from .redaction import redact_text
from .sample_validation import validate_sample
from .tickers import normalize_ticker
from .timestamps import to_epoch_ns

__all__ = ["SPEC_VERSION", "SampleBatch", "SampleStore", "spec_hash", "validate_sample"]

#: Layout of the stored feature vector; bump when FEATURE_NAMES changes.
SPEC_VERSION = 1
_N = len(FEATURE_NAMES)
_STATUSES = ("claimed", "registered", "failed")

_metadata = sa.MetaData()
_samples = sa.Table(
    "samples", _metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("ticker", sa.String(40), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("spec_version", sa.Integer, nullable=False),
    sa.Column("features", sa.Text, nullable=False),
    sa.Column("flow_type", sa.SmallInteger, nullable=False),
    sa.Column("impact", sa.Double, nullable=False),
    sa.Column("time_to_execution", sa.Double, nullable=False),
    sa.Column("consumed_by_version", sa.Integer, nullable=True),
    # the trade time of the sample's event (int ns since the epoch, UTC); null only in
    # stores written before it existed, whose samples then fall back to created_at
    sa.Column("event_time", sa.BigInteger, nullable=True),
    # hash of the FeatureSpec the sample's features and labels were computed with (the spec
    # itself is in feature_specs); null for samples stored without a known spec
    sa.Column("spec_hash", sa.String(16), nullable=True),
    sa.Index("ix_samples_ticker_id", "ticker", "id"),
    sa.Index("ix_samples_ticker_consumed", "ticker", "consumed_by_version"),
    sqlite_autoincrement=True,
)
_specs = sa.Table(
    "feature_specs", _metadata,
    sa.Column("spec_hash", sa.String(16), primary_key=True),
    sa.Column("spec", sa.Text, nullable=False),
)
_batches = sa.Table(
    "training_batches", _metadata,
    sa.Column("batch_id", sa.String(32), primary_key=True),
    sa.Column("ticker", sa.String(40), nullable=False),
    sa.Column("max_sample_id", sa.BigInteger, nullable=False),
    sa.Column("n_samples", sa.Integer, nullable=False),
    sa.Column("idempotency_key", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.UniqueConstraint("ticker", "idempotency_key", name="uq_training_batches_key"),
    sa.CheckConstraint(f"status IN {_STATUSES!r}", name="ck_training_batches_status"),
)
_leases = sa.Table(
    "training_leases", _metadata,
    sa.Column("ticker", sa.String(40), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("acquired_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False),
)


def _positive_int(value: Any, what: str, *, low: int = 1) -> int:
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer))
            or value < low):
        raise ValueError(f"{what} must be an integer >= {low}, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- the store
@dataclass(frozen=True, eq=False)
class SampleBatch:
    """Samples of one ticker, in insertion order.

    ``X`` has the ``FEATURE_NAMES`` columns; ``y`` has ``flow_type``
    (Categorical of ``FLOW_TYPES``), ``impact`` and ``time_to_execution``.
    Both are indexed by the samples' UTC event time (the trade time given to
    ``add``; the insertion time for samples stored without one). ``ids`` are the
    sample ids (int64); ``max_id`` is the largest, or None when empty.
    """

    ticker: str
    X: pd.DataFrame
    y: pd.DataFrame
    ids: np.ndarray
    max_id: int | None

    def __len__(self) -> int:
        return len(self.ids)


class SampleStore:
    """Durable store of training samples, training batches and training leases.

    Parameters
    ----------
    url
        Any SQLAlchemy URL (``sqlite:////abs/samples.db``,
        ``postgresql+psycopg2://user@host/db``). When given, ``models_dir``
        is ignored.
    models_dir
        Folder of the default SQLite file ``samples.db`` (default ``./mlruns``,
        made absolute now). Nothing is opened until the first call.
    """

    def __init__(self, url: str | None = None, *, models_dir: str | Path | None = None) -> None:
        if url is None:
            folder = Path(models_dir if models_dir is not None else "mlruns").expanduser()
            url = f"sqlite:///{folder.resolve() / 'samples.db'}"
        elif not isinstance(url, str):
            raise TypeError(f"url must be a SQLAlchemy URL string, got {type(url).__name__}")
        try:
            parsed = sa.make_url(url)
        except ArgumentError:
            raise StoreError(
                f"sample store URL {redact_text(url)!r} is not a SQLAlchemy URL; use one such as "
                "'sqlite:////abs/path/samples.db' or 'postgresql+psycopg2://user@host/db'"
            ) from None
        self._url = url
        self._safe_url = parsed.render_as_string(hide_password=True)
        self._is_sqlite = parsed.get_backend_name() == "sqlite"
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self._recorded_specs: set[str] = set()  # spec hashes this process has stored

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the store (as given, password included)."""
        return self._url

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, created (with the tables) on first access."""
        return self._get_engine()

    def __repr__(self) -> str:
        return f"SampleStore({self._safe_url!r})"

    def __enter__(self) -> SampleStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every pooled connection; the store reopens on its next use."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    # ------------------------------------------------------------------ plumbing
    def _hint(self) -> str:
        if self._is_sqlite:
            return "check that the folder exists, is writable and the disk is not full"
        return "check that the database server is running and the URL and credentials are right"

    @contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except (SQLAlchemyError, OSError) as exc:
            detail = getattr(exc, "orig", None) or exc
            text = str(detail).strip()
            first = text.splitlines()[0] if text else type(exc).__name__
            raise StoreError(f"sample store {self._safe_url} could not {action}: {first}; "
                             f"{self._hint()}") from exc

    def _get_engine(self) -> Engine:
        engine = self._engine
        if engine is not None:
            return engine
        with self._lock:
            if self._engine is None:
                with self._translated("open the database"):
                    self._engine = self._create_engine()
            return self._engine

    def _create_engine(self) -> Engine:
        url = sa.make_url(self._url)
        if not self._is_sqlite:
            engine = sa.create_engine(url, pool_pre_ping=True)
        else:
            if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(url)
            sa.event.listen(engine, "connect", _sqlite_on_connect)
            sa.event.listen(engine, "begin", _sqlite_on_begin)
        try:
            for attempt in range(3):  # concurrent first use on a server may race on CREATE
                try:
                    _metadata.create_all(engine)
                    _add_missing_columns(engine)
                    break
                except (IntegrityError, sa.exc.ProgrammingError):
                    if attempt == 2:
                        raise
                    time.sleep(0.05)
        except BaseException:
            engine.dispose()
            raise
        return engine

    @contextmanager
    def _write(self, action: str) -> Iterator[Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on exit."""
        engine = self._get_engine()
        with self._translated(action), engine.begin() as conn:
            yield conn

    @contextmanager
    def _read(self, action: str) -> Iterator[Connection]:
        """One read-only transaction on a consistent snapshot (``BEGIN DEFERRED`` on SQLite)."""
        engine = self._get_engine()
        with self._translated(action), engine.connect() as conn:
            conn.execution_options(sqlite_begin="DEFERRED")
            with conn.begin():
                yield conn

    # ------------------------------------------------------------------ samples
    def add(self, ticker: str, features: Any, flow_type: Any, impact: Any,
            time_to_execution: Any, *, event_time: Any = None,
            spec: FeatureSpec | None = None) -> int:
        """Validate one sample, insert it and commit; return its id.

        ``event_time`` is the trade time of the sample's event (epoch s/ms/us/ns,
        datetime or ISO text); None records the time of insertion. ``spec`` is the
        feature spec the sample was computed with; its hash is stored with the
        sample so a retrain never mixes recipes.

        Raises SampleValidationError / InvalidTickerError before anything is
        written, StoreError when the database fails.
        """
        ticker = normalize_ticker(ticker)
        row = _row(ticker, *validate_sample(features, flow_type, impact, time_to_execution),
                   event_time=event_time, spec_hash=spec_hash(spec) if spec else None)
        new_spec = spec is not None and row["spec_hash"] not in self._recorded_specs
        with self._write(f"add a sample for {ticker}") as conn:
            if new_spec:
                _remember_spec(conn, spec)  # type: ignore[arg-type]
            key = conn.execute(sa.insert(_samples).values(**row)).inserted_primary_key
            assert key is not None  # an autoincrement insert always returns its key
        if new_spec:
            self._recorded_specs.add(row["spec_hash"])
        return int(key[0])

    def add_many(self, ticker: str, rows: Iterable[Any], *,
                 spec: FeatureSpec | None = None) -> list[int]:
        """Validate every row, then insert them all in one transaction; return their ids.

        Each row is a mapping with keys ``features``, ``flow_type``, ``impact``,
        ``time_to_execution`` (and optionally ``event_time``) or a 4- or 5-tuple in
        that order. One bad row rejects the whole batch (the error names its position).
        """
        ticker = normalize_ticker(ticker)
        prepared = []
        fields = ("features", "flow_type", "impact", "time_to_execution")
        for i, item in enumerate(rows):
            if isinstance(item, Mapping) and set(fields) <= set(item) <= {*fields, "event_time"}:
                args = tuple(item[k] for k in fields)
                event_time = item.get("event_time")
            elif isinstance(item, (list, tuple)) and len(item) in (len(fields), len(fields) + 1):
                args, event_time = tuple(item[:4]), (item[4] if len(item) > 4 else None)
            else:
                raise SampleValidationError(
                    f"row {i} is {item!r:.80}; each row must be a mapping with the keys "
                    f"{', '.join(fields)} (and optionally event_time) or a tuple in that order")
            try:
                prepared.append(_row(ticker, *validate_sample(*args), event_time=event_time,
                                     spec_hash=spec_hash(spec) if spec else None))
            except SampleValidationError as exc:
                raise SampleValidationError(f"row {i}: {exc}") from None
        if not prepared:
            return []
        with self._write(f"add {len(prepared)} samples for {ticker}") as conn:
            if spec is not None:
                _remember_spec(conn, spec)
            if conn.dialect.insert_executemany_returning_sort_by_parameter_order:
                stmt = sa.insert(_samples).returning(_samples.c.id, sort_by_parameter_order=True)
                return [int(i) for i in conn.execute(stmt, prepared).scalars()]
            keys = [conn.execute(sa.insert(_samples).values(**r)).inserted_primary_key
                    for r in prepared]
            return [int(k[0]) for k in keys if k is not None]

    def spec_counts(self, ticker: str) -> list[tuple[str | None, int, int]]:
        """``(spec_hash, samples, newest id)`` of each spec the ticker's samples use, newest last."""
        c = _samples.c
        q = (sa.select(c.spec_hash, sa.func.count(), sa.func.max(c.id))
             .where(c.ticker == normalize_ticker(ticker)).group_by(c.spec_hash)
             .order_by(sa.func.max(c.id)))
        with self._read("count samples per feature spec") as conn:
            return [(h, int(n), int(m)) for h, n, m in conn.execute(q)]

    def feature_spec(self, key: str) -> FeatureSpec | None:
        """The spec recorded under hash ``key``, or None."""
        with self._read("read a feature spec") as conn:
            text = conn.execute(sa.select(_specs.c.spec).where(_specs.c.spec_hash == key)).scalar()
        return FeatureSpec.from_dict(json.loads(text)) if text else None

    def count(self, ticker: str | None = None, *, unconsumed: bool = False) -> int:
        """Number of samples (of ``ticker``, or all), optionally only those not yet trained on."""
        q = sa.select(sa.func.count()).select_from(_samples)
        if ticker is not None:
            q = q.where(_samples.c.ticker == normalize_ticker(ticker))
        if unconsumed:
            q = q.where(_samples.c.consumed_by_version.is_(None))
        with self._read("count samples") as conn:
            return int(conn.execute(q).scalar_one())

    def counts(self) -> dict[str, dict[str, int]]:
        """``{ticker: {"total": n, "unconsumed": m}}`` for every ticker with samples."""
        fresh = sa.case((_samples.c.consumed_by_version.is_(None), 1), else_=0)
        q = (sa.select(_samples.c.ticker, sa.func.count(), sa.func.sum(fresh))
             .group_by(_samples.c.ticker).order_by(_samples.c.ticker))
        with self._read("count samples") as conn:
            return {t: {"total": int(n), "unconsumed": int(u or 0)} for t, n, u in conn.execute(q)}

    def load(self, ticker: str, *, max_id: int | None = None,
             last: int | None = None, spec: str | None = None) -> SampleBatch:
        """The samples of ``ticker`` in insertion order.

        ``max_id`` keeps ids <= max_id; ``last=N`` keeps the N newest of those;
        ``spec`` (a :func:`spec_hash`) keeps samples computed with that spec and
        those stored without one.
        """
        ticker = normalize_ticker(ticker)
        c = _samples.c
        q = sa.select(c.id, c.created_at, c.event_time, c.spec_version, c.features, c.flow_type,
                      c.impact, c.time_to_execution).where(c.ticker == ticker)
        if spec is not None:
            q = q.where(sa.or_(c.spec_hash == spec, c.spec_hash.is_(None)))
        if max_id is not None:
            q = q.where(c.id <= _positive_int(max_id, "max_id", low=0))
        if last is not None:
            q = q.order_by(c.id.desc()).limit(_positive_int(last, "last", low=0))
        else:
            q = q.order_by(c.id)
        with self._read(f"load the samples of {ticker}") as conn:
            rows = list(conn.execute(q).all())
        if last is not None:
            rows.reverse()
        return self._batch(ticker, rows)

    def _batch(self, ticker: str, rows: list[Any]) -> SampleBatch:
        for r in rows:
            if r.spec_version != SPEC_VERSION:
                raise StoreError(
                    f"sample {r.id} of {ticker} in {self._safe_url} uses feature spec version "
                    f"{r.spec_version}; this ticker-registry reads version {SPEC_VERSION} only; "
                    "upgrade ticker-registry or load these samples elsewhere")
        ids = np.fromiter((r.id for r in rows), dtype=np.int64, count=len(rows))
        event_ns = np.array([r.event_time if r.event_time is not None else int(r.created_at * 1e9)
                             for r in rows], dtype=np.int64)
        index = pd.DatetimeIndex(event_ns.view("datetime64[ns]"), name="event_time").tz_localize("UTC")
        matrix = np.array(json.loads("[" + ",".join(r.features for r in rows) + "]"),
                          dtype=np.float64).reshape(len(rows), _N)
        X = pd.DataFrame(matrix, columns=list(FEATURE_NAMES), index=index)
        codes = np.fromiter((r.flow_type for r in rows), dtype=np.int64, count=len(rows))
        y = pd.DataFrame({
            "flow_type": pd.Categorical.from_codes(codes, categories=list(FLOW_TYPES)),
            "impact": np.array([r.impact for r in rows], dtype=np.float64),
            "time_to_execution": np.array([r.time_to_execution for r in rows], dtype=np.float64),
        }, index=index)
        return SampleBatch(ticker=ticker, X=X, y=y, ids=ids,
                           max_id=int(ids[-1]) if len(ids) else None)

    def mark_consumed(self, ticker: str, max_id: int, version: int) -> int:
        """Record ``version`` on the ticker's samples with id <= ``max_id`` not yet consumed.

        Returns the number of samples marked.
        """
        ticker = normalize_ticker(ticker)
        with self._write(f"mark the samples of {ticker} consumed") as conn:
            return _mark(conn, ticker, _positive_int(max_id, "max_id", low=0),
                         _positive_int(version, "version"))

    # ------------------------------------------------------------------ training batches
    def claim_batch(self, ticker: str, max_id: int, idempotency_key: str) -> str:
        """Record that a training of ``ticker`` on samples up to ``max_id`` has started.

        Returns the batch id. Claiming again with the same ``idempotency_key``
        returns the same batch; reusing a key with another ``max_id`` is a
        StoreError.
        """
        ticker = normalize_ticker(ticker)
        max_id = _positive_int(max_id, "max_id", low=0)
        if not isinstance(idempotency_key, str) or not idempotency_key:
            raise ValueError(f"idempotency_key must be a non-empty string, got {idempotency_key!r}")
        action = f"claim a training batch of {ticker}"
        key_match = (_batches.c.ticker == ticker) & (_batches.c.idempotency_key == idempotency_key)
        try:
            with self._write(action) as conn:
                existing = conn.execute(sa.select(_batches).where(key_match)).first()
                if existing is None:
                    pending = sa.select(sa.func.count()).select_from(_samples).where(
                        _samples.c.ticker == ticker, _samples.c.id <= max_id,
                        _samples.c.consumed_by_version.is_(None))
                    now = time.time()
                    batch_id = uuid.uuid4().hex
                    conn.execute(sa.insert(_batches).values(
                        batch_id=batch_id, ticker=ticker, max_sample_id=max_id,
                        n_samples=int(conn.execute(pending).scalar_one()),
                        idempotency_key=idempotency_key, status="claimed", version=None,
                        error=None, created_at=now, updated_at=now))
                    return batch_id
        except StoreError as exc:  # a concurrent claim with the same key won (server DBs)
            if not isinstance(exc.__cause__, IntegrityError):
                raise
            with self._read(action) as conn:
                existing = conn.execute(sa.select(_batches).where(key_match)).one()
        if existing.max_sample_id != max_id:
            raise StoreError(
                f"idempotency key {idempotency_key!r} of {ticker} already claimed batch "
                f"{existing.batch_id} up to sample {existing.max_sample_id}, not {max_id}; "
                "use a new key for a different batch")
        return str(existing.batch_id)

    def finish_batch(self, batch_id: str, version: int) -> int:
        """Mark a batch registered as ``version`` and its samples consumed, atomically.

        Returns the number of samples marked. Finishing twice with the same
        version is a no-op; a failed batch may still be finished (its model
        was registered after all).
        """
        version = _positive_int(version, "version")
        with self._write(f"finish training batch {batch_id!r}") as conn:
            row = self._batch_row(conn, batch_id)
            if row.status == "registered":
                if row.version == version:
                    return 0
                raise StoreError(
                    f"training batch {batch_id!r} is already registered as version {row.version}, "
                    f"not {version}; claim a new batch for a new training")
            conn.execute(sa.update(_batches).where(_batches.c.batch_id == batch_id).values(
                status="registered", version=version, updated_at=time.time()))
            return _mark(conn, row.ticker, row.max_sample_id, version)

    def fail_batch(self, batch_id: str, reason: str) -> None:
        """Mark a claimed batch failed with ``reason``; its samples stay unconsumed."""
        with self._write(f"fail training batch {batch_id!r}") as conn:
            row = self._batch_row(conn, batch_id)
            if row.status == "registered":
                raise StoreError(
                    f"training batch {batch_id!r} is already registered as version "
                    f"{row.version}; a registered batch cannot be marked failed")
            conn.execute(sa.update(_batches).where(_batches.c.batch_id == batch_id).values(
                status="failed", error=str(reason), updated_at=time.time()))

    def _batch_row(self, conn: Connection, batch_id: str) -> Any:
        row = conn.execute(sa.select(_batches).where(_batches.c.batch_id == batch_id)).first()
        if row is None:
            raise StoreError(f"no training batch {batch_id!r} in {self._safe_url}; "
                             "use the id returned by claim_batch (see batches())")
        return row

    def stale_batches(self, older_than_s: float) -> list[dict[str, Any]]:
        """Batches still ``claimed`` (neither finished nor failed) after ``older_than_s`` s."""
        cutoff = time.time() - float(older_than_s)
        q = sa.select(_batches).where(_batches.c.status == "claimed",
                                      _batches.c.updated_at <= cutoff)
        with self._read("list stale training batches") as conn:
            return [dict(r._mapping) for r in conn.execute(q.order_by(_batches.c.created_at))]

    def batches(self, ticker: str | None = None) -> list[dict[str, Any]]:
        """Every training batch (of ``ticker``), oldest first, as dicts of the table's columns."""
        q = sa.select(_batches).order_by(_batches.c.created_at, _batches.c.batch_id)
        if ticker is not None:
            q = q.where(_batches.c.ticker == normalize_ticker(ticker))
        with self._read("list training batches") as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    # ------------------------------------------------------------------ training lease
    def acquire_lease(self, ticker: str, owner: str, ttl_s: float) -> bool:
        """Take the training lease of ``ticker`` for ``ttl_s`` seconds; True when held.

        Succeeds when nobody holds it, the holder's lease expired, or ``owner``
        already holds it (which renews it). Atomic across processes.
        """
        ticker = normalize_ticker(ticker)
        if not isinstance(owner, str) or not owner:
            raise ValueError(f"owner must be a non-empty string, got {owner!r}")
        ttl = float(ttl_s)
        if not (math.isfinite(ttl) and ttl > 0):
            raise ValueError(f"ttl_s must be a finite number of seconds > 0, got {ttl_s!r}")
        try:
            with self._write(f"acquire the training lease of {ticker}") as conn:
                now = time.time()
                held = conn.execute(sa.select(_leases.c.owner, _leases.c.expires_at)
                                    .where(_leases.c.ticker == ticker).with_for_update()).first()
                values = {"owner": owner, "acquired_at": now, "expires_at": now + ttl}
                if held is None:
                    conn.execute(sa.insert(_leases).values(ticker=ticker, **values))
                elif held.owner == owner or held.expires_at <= now:
                    conn.execute(sa.update(_leases).where(_leases.c.ticker == ticker)
                                 .values(**values))
                else:
                    return False
                return True
        except StoreError as exc:  # another process inserted the row first (server DBs)
            if isinstance(exc.__cause__, IntegrityError):
                return False
            raise

    def release_lease(self, ticker: str, owner: str) -> bool:
        """Give up ``owner``'s lease of ``ticker``; False when ``owner`` did not hold it."""
        ticker = normalize_ticker(ticker)
        with self._write(f"release the training lease of {ticker}") as conn:
            gone = conn.execute(sa.delete(_leases).where(_leases.c.ticker == ticker,
                                                         _leases.c.owner == owner))
            return gone.rowcount > 0

    def lease_holder(self, ticker: str) -> str | None:
        """The owner of the unexpired lease of ``ticker``, or None."""
        ticker = normalize_ticker(ticker)
        with self._read(f"read the training lease of {ticker}") as conn:
            row = conn.execute(sa.select(_leases.c.owner, _leases.c.expires_at)
                               .where(_leases.c.ticker == ticker)).first()
        return row.owner if row is not None and row.expires_at > time.time() else None

    def leases(self) -> list[dict[str, Any]]:
        """Every training lease row (expired ones included), by ticker."""
        with self._read("list training leases") as conn:
            return [dict(r._mapping)
                    for r in conn.execute(sa.select(_leases).order_by(_leases.c.ticker))]

    # ------------------------------------------------------------------ inspection
    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of every table, by table name, in primary-key order."""
        with self._read("read a snapshot") as conn:
            return {t.name: [dict(r._mapping) for r in
                             conn.execute(sa.select(t).order_by(*t.primary_key.columns))]
                    for t in _metadata.sorted_tables}


def _add_missing_columns(engine: Engine) -> None:
    """Bring a store written by an older ticker-registry up to the current samples table."""
    present = {c["name"] for c in sa.inspect(engine).get_columns("samples")}
    for name, kind in (("event_time", "BIGINT"), ("spec_hash", "VARCHAR(16)")):
        if name in present:
            continue
        with engine.begin() as conn:
            try:
                conn.execute(sa.text(f"ALTER TABLE samples ADD COLUMN {name} {kind}"))
            except (sa.exc.OperationalError, sa.exc.ProgrammingError):
                pass  # another process added it first


@functools.lru_cache(maxsize=64)
def spec_hash(spec: FeatureSpec) -> str:
    """Short, stable hash of a feature spec (what a sample records)."""
    text = json.dumps(spec.to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _remember_spec(conn: Connection, spec: FeatureSpec) -> None:
    key = spec_hash(spec)
    if conn.execute(sa.select(_specs.c.spec_hash).where(_specs.c.spec_hash == key)).first() is None:
        try:
            with conn.begin_nested():
                conn.execute(sa.insert(_specs).values(spec_hash=key,
                                                      spec=json.dumps(spec.to_dict(), sort_keys=True)))
        except IntegrityError:
            pass  # a concurrent writer recorded the same spec


def _row(ticker: str, vector: np.ndarray, code: int, impact: float, tte: float,
         event_time: Any = None, spec_hash: str | None = None) -> dict[str, Any]:
    """One samples row; ``event_time`` (any form the epoch rule reads) defaults to now."""
    now = time.time()
    try:
        event_ns = to_epoch_ns(event_time) if event_time is not None else int(now * 1e9)
    except TimestampError as exc:
        raise SampleValidationError(f"event time of the sample: {exc}") from None
    return {"ticker": ticker, "created_at": now, "spec_version": SPEC_VERSION,
            "features": json.dumps(vector.tolist(), allow_nan=False), "flow_type": code,
            "impact": impact, "time_to_execution": tte, "consumed_by_version": None,
            "event_time": event_ns, "spec_hash": spec_hash}


def _mark(conn: Connection, ticker: str, max_id: int, version: int) -> int:
    result = conn.execute(sa.update(_samples).where(
        _samples.c.ticker == ticker, _samples.c.id <= max_id,
        _samples.c.consumed_by_version.is_(None)).values(consumed_by_version=version))
    return int(result.rowcount)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control away from pysqlite; _sqlite_on_begin emits BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        for pragma in ("busy_timeout=10000", "journal_mode=WAL", "synchronous=FULL",
                       "foreign_keys=ON"):
            cursor.execute(f"PRAGMA {pragma}")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
    conn.exec_driver_sql(f"BEGIN {mode}")
