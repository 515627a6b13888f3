"""Training leases of the sample store: one trainer per ticker, across processes.

On SQLite the lease row is read inside a ``BEGIN IMMEDIATE`` transaction, so a
check-then-write cannot interleave with another process's. On PostgreSQL the
row is read with ``SELECT ... FOR UPDATE``; a race on a lease row that does not
exist yet is settled by the primary key.
"""

from __future__ import annotations

import math
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ..exceptions import StoreError
from ..tickers import normalize_ticker
from .database import StoreDatabase
from .schema import leases_table as _leases

__all__ = ["TrainingLeases"]


class TrainingLeases(StoreDatabase):
    """The training-lease part of :class:`~ticker_registry.samples.SampleStore`."""

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
