"""Training batches of the sample store: which samples a training used, claimed then finished.

A training claims the ticker's samples up to an id under an idempotency key,
and finishing the batch records the registered version on them atomically, so
a crash between training and registration never loses or double-counts samples.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ..exceptions import StoreError
from ..tickers import normalize_ticker
from .database import StoreDatabase
from .schema import batches_table as _batches
from .schema import samples_table as _samples
from .validation import positive_int

__all__ = ["TrainingBatches"]


class TrainingBatches(StoreDatabase):
    """The training-batch part of :class:`~ticker_registry.samples.SampleStore`."""

    def mark_consumed(self, ticker: str, max_id: int, version: int) -> int:
        """Record ``version`` on the ticker's samples with id <= ``max_id`` not yet consumed.

        Returns the number of samples marked.
        """
        ticker = normalize_ticker(ticker)
        with self._write(f"mark the samples of {ticker} consumed") as conn:
            return _mark(conn, ticker, positive_int(max_id, "max_id", low=0),
                         positive_int(version, "version"))

    def claim_batch(self, ticker: str, max_id: int, idempotency_key: str) -> str:
        """Record that a training of ``ticker`` on samples up to ``max_id`` has started.

        Returns the batch id. Claiming again with the same ``idempotency_key``
        returns the same batch; reusing a key with another ``max_id`` is a
        StoreError.
        """
        ticker = normalize_ticker(ticker)
        max_id = positive_int(max_id, "max_id", low=0)
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
        version = positive_int(version, "version")
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


def _mark(conn: Connection, ticker: str, max_id: int, version: int) -> int:
    result = conn.execute(sa.update(_samples).where(
        _samples.c.ticker == ticker, _samples.c.id <= max_id,
        _samples.c.consumed_by_version.is_(None)).values(consumed_by_version=version))
    return int(result.rowcount)
