"""The sample store's database: engine on first use, transactions, error translation.

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

The schema is created and upgraded by :func:`~ticker_registry.samples.migrate.upgrade_to_head`
when the engine is created.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from ..exceptions import StoreError
from ..redaction import redact_text
from .migrate import upgrade_to_head
from .schema import metadata

__all__ = ["StoreDatabase"]


class StoreDatabase:
    """Engine, transactions and error translation shared by the parts of the sample store.

    See :class:`~ticker_registry.samples.SampleStore` for the parameters.
    Nothing is opened until the first call.
    """

    def __init__(self, url: str | None = None, *, models_dir: str | Path | None = None,
                 create: bool = True) -> None:
        self._create = create
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

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the store (as given, password included)."""
        return self._url

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, created (and the schema migrated) on first access."""
        return self._get_engine()

    def __repr__(self) -> str:
        return f"SampleStore({self._safe_url!r})"

    def close(self) -> None:
        """Close every pooled connection; the store reopens on its next use."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

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
            upgrade_to_head(engine, self._safe_url)
        except BaseException:
            engine.dispose()
            raise
        return engine

    @contextmanager
    def _write(self, action: str) -> Iterator[Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on exit."""
        if self._missing_file():
            raise StoreError(f"no sample store at {self._safe_url} and this one only reads "
                             "(create=False); open it without create=False to write")
        engine = self._get_engine()
        with self._translated(action), engine.begin() as conn:
            yield conn

    def _missing_file(self) -> bool:
        """True for a SQLite store whose file does not exist (yet): reading it must not create it."""
        if self._create or not self._is_sqlite or self._engine is not None:
            return False
        database = sa.make_url(self._url).database
        return bool(database) and database != ":memory:" and not str(database).startswith(
            "file:") and not Path(str(database)).exists()

    @contextmanager
    def _read(self, action: str) -> Iterator[Connection]:
        """One read-only transaction on a consistent snapshot (``BEGIN DEFERRED`` on SQLite).

        With ``create=False``, a SQLite store that does not exist reads as empty and stays
        uncreated: a read command leaves its folder as it was.
        """
        if self._missing_file():
            engine = sa.create_engine("sqlite://")
            metadata.create_all(engine)
            with engine.connect() as conn:
                yield conn
            engine.dispose()
            return
        engine = self._get_engine()
        with self._translated(action), engine.connect() as conn:
            conn.execution_options(sqlite_begin="DEFERRED")
            with conn.begin():
                yield conn


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
