"""Bring a sample-store database to the newest schema with the Alembic revisions in ``migrations/``.

:func:`upgrade_to_head` runs each time a :class:`~ticker_registry.samples.SampleStore`
opens its engine. Alembic is configured in code (no ``alembic.ini`` at run time)
and runs on the store's own engine, so it works on whatever URL the store was
given. The revision is kept in its own table, ``samples_alembic_version``, not
Alembic's default ``alembic_version``, which MLflow uses for its own schema:
the sample store may share a database with an MLflow tracking store.

What happens on open:

- **At head** (the common case): one read of the version table, a few
  milliseconds; Alembic is not even imported.
- **New database** (none of our tables): the revisions create everything.
- **A store from before Alembic** (our tables, no version table): stamped
  ``0001`` (the first round's schema) when ``event_time``, ``spec_hash`` or
  ``feature_specs`` is missing, else ``0002`` (the newest schema written before
  Alembic), then upgraded. Rows are kept: revisions only add columns and tables.
- **Newer than this code** (a revision we do not know): StoreError, nothing touched.

Concurrent first use. The version is read again, and the migration run, inside
one write transaction that holds the database's own lock: ``BEGIN IMMEDIATE`` on
SQLite (other processes wait on ``busy_timeout``; SQLite's DDL is transactional,
so a killed migration leaves nothing behind) and ``pg_advisory_xact_lock`` on
PostgreSQL (also transactional DDL). The loser of the race waits, then finds the
database at head and does nothing. We chose the database's lock over a file lock
beside the SQLite file because it covers every URL the store accepts (in-memory,
``file:`` URIs, servers) and leaves no extra file. Databases without
transactional DDL (MySQL) have no such guarantee: there a failed attempt is
retried twice, re-reading the version each time.
"""

from __future__ import annotations

import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from ..exceptions import StoreError

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["BASELINE", "HEAD", "VERSION_TABLE", "current_revision", "upgrade_to_head"]

#: The newest revision in ``migrations/versions`` (a test checks it against Alembic's head).
HEAD = "0002"
#: The schema of the first round, before ``event_time``, ``spec_hash`` and ``feature_specs``.
BASELINE = "0001"
#: The newest schema a store written before Alembic can hold; never moves with HEAD.
_PRE_ALEMBIC_NEWEST = "0002"
VERSION_TABLE = "samples_alembic_version"

_MIGRATIONS = Path(__file__).with_name("migrations")
_BASELINE_TABLES = ("samples", "training_batches", "training_leases")
_PG_LOCK_KEY = zlib.crc32(b"ticker_registry.samples.migrate")
_ATTEMPTS = 3


def current_revision(conn: Connection) -> str | None:
    """The revision recorded in ``conn``'s database, or None when it has no version table."""
    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return None
    return conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def upgrade_to_head(engine: Engine, store: str) -> None:
    """Migrate ``engine``'s database to :data:`HEAD`; cheap when it is there already.

    ``store`` names the store in error messages (its URL without password).

    Raises
    ------
    StoreError
        The database is newer than this code, holds only part of our tables, or
        the migration failed (``__cause__`` is the database's or Alembic's error).
    """
    with engine.connect() as conn:
        conn.execution_options(sqlite_begin="DEFERRED")
        with conn.begin():
            if current_revision(conn) == HEAD:
                return
    for attempt in range(_ATTEMPTS):
        try:
            with engine.begin() as conn:  # BEGIN IMMEDIATE on SQLite: the write lock
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
                _upgrade(conn, store)
            return
        except SQLAlchemyError:
            if attempt == _ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))  # a concurrent migration without transactional DDL


def _upgrade(conn: Connection, store: str) -> None:
    """Stamp a pre-Alembic store, then upgrade; runs inside the locked transaction."""
    from alembic import command
    from alembic.script import ScriptDirectory
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError

    version = current_revision(conn)
    if version == HEAD:
        return  # another process migrated while we waited for the lock
    config = _config(conn)
    try:
        if version is None:
            legacy = _legacy_revision(conn, store)
            if legacy is not None:
                command.stamp(config, legacy)
        else:
            try:
                ScriptDirectory.from_config(config).get_revision(version)
            except (RevisionError, CommandError):
                raise StoreError(
                    f"sample store {store} is at schema revision {version!r}, which this "
                    f"ticker-registry does not know (it knows up to {HEAD!r}); a newer "
                    "ticker-registry wrote it: upgrade ticker-registry to use this store") from None
        command.upgrade(config, "head")
    except CommandError as exc:
        raise StoreError(f"sample store {store} could not be migrated to schema revision "
                         f"{HEAD!r}: {exc}; check the database, or restore it from a "
                         "backup") from exc


def _config(conn: Connection) -> Config:
    from alembic.config import Config

    config = Config()
    # the path is read through configparser, which treats '%' as interpolation
    config.set_main_option("script_location", str(_MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = conn
    return config


def _legacy_revision(conn: Connection, store: str) -> str | None:
    """The revision a store created before Alembic matches; None for an empty database."""
    inspector = sa.inspect(conn)
    present = [t for t in _BASELINE_TABLES if inspector.has_table(t)]
    if not present:
        return None
    if len(present) < len(_BASELINE_TABLES):
        missing = [t for t in _BASELINE_TABLES if t not in present]
        raise StoreError(
            f"sample store {store} holds the table(s) {present!r} but not {missing!r}, so it is "
            "neither empty nor a ticker-registry sample store; point the store at another "
            "database, or drop those tables if they are leftovers")
    columns = {c["name"] for c in inspector.get_columns("samples")}
    if {"event_time", "spec_hash"} <= columns and inspector.has_table("feature_specs"):
        return _PRE_ALEMBIC_NEWEST
    return BASELINE
