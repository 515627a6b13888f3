"""The durable training-sample store: every labelled sample, one SQL row, committed.

Samples, their feature specs, training batches and training leases live in
four tables reached through SQLAlchemy Core, so the same code runs on an
embedded SQLite file (the default, ``<models_dir>/samples.db``) and on a shared
PostgreSQL server. The engine, transactions and SQLite durability settings are
in :mod:`.database`, the schema migrations in :mod:`.migrate`, batches and
leases in :mod:`.batches` and :mod:`.leases`.

On PostgreSQL ids come from a sequence; two writers may commit ids out of
order, so call :meth:`SampleStore.load` for training while holding the ticker's
lease.

Features are stored as a JSON array of floats (``json.dumps`` writes the
shortest repr, which round-trips a float64 exactly) with a ``spec_version``
column (1). Times are UTC seconds since the epoch.

A sample is checked by :func:`~ticker_registry.samples.validation.validate_sample`
before anything is written.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ..exceptions import SampleValidationError, StoreError, TimestampError
from ..features import FEATURE_NAMES, FLOW_TYPES, FeatureSpec
from ..tickers import normalize_ticker
from ..timestamps import to_epoch_ns
from .batches import TrainingBatches
from .leases import TrainingLeases
from .schema import SPEC_VERSION, metadata
from .schema import samples_table as _samples
from .schema import specs_table as _specs
from .validation import positive_int, validate_sample

__all__ = ["SampleBatch", "SampleStore", "spec_hash"]

_N = len(FEATURE_NAMES)


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


class SampleStore(TrainingBatches, TrainingLeases):
    """Durable store of training samples, training batches and training leases.

    Parameters
    ----------
    url
        Any SQLAlchemy URL (``sqlite:////abs/samples.db``,
        ``postgresql+psycopg2://user@host/db``). When given, ``models_dir``
        is ignored.
    models_dir
        Folder of the default SQLite file ``samples.db`` (default ``./mlruns``,
        made absolute now). Nothing is opened until the first call, which also
        creates or migrates the schema.
    create
        False: never create the store; while a SQLite store's file does not exist,
        reads are empty and writes raise :class:`StoreError` (read-only commands).
    """

    def __init__(self, url: str | None = None, *, models_dir: str | Path | None = None,
                 create: bool = True) -> None:
        super().__init__(url, models_dir=models_dir, create=create)
        self._recorded_specs: set[str] = set()  # spec hashes this process has stored

    def __enter__(self) -> SampleStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
            q = q.where(c.id <= positive_int(max_id, "max_id", low=0))
        if last is not None:
            q = q.order_by(c.id.desc()).limit(positive_int(last, "last", low=0))
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

    # ------------------------------------------------------------------ inspection
    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of every table, by table name, in primary-key order."""
        with self._read("read a snapshot") as conn:
            return {t.name: [dict(r._mapping) for r in
                             conn.execute(sa.select(t).order_by(*t.primary_key.columns))]
                    for t in metadata.sorted_tables}


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
