"""One read of a namespace's registered models and their *head* versions.

Multi-ticker views (status, the seed's metadata, best) need, per ticker, the
registered model (tags, aliases), how many live versions it has, and the full
tags of the versions that matter: the newest one and those an alias points to.
The :class:`Snapshot` holds exactly that, so its cost does not grow with a
ticker's history: older versions are counted, never read.

On a SQL store (SQLite, PostgreSQL, MySQL) :func:`read_snapshot` reads MLflow's
registry tables with five plain SQL statements in one transaction, fetching
tuples (no ORM objects, no reflection): ``MlflowClient``'s searches build one
ORM object per tag row and load each model's versions one query at a time. It
depends on MLflow's table layout, so the adapter falls back to the searches
(:func:`heads_of`) on any error (a release that changed the layout, a server
store, a missing permission); ``tests/test_snapshot.py`` checks both give the
same records. Registration's one read (:func:`registration_state`: a version
with this idempotency key already? the newest version's running totals) is made
the same way.
"""

from __future__ import annotations

import logging
import re
import weakref
from collections.abc import Collection, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa

from ..exceptions import ModelNotFoundError
from ..records import ModelRecord, Snapshot, VersionInfo, metric_tags


class _Searchable(Protocol):
    """What the fallback needs of :class:`~.adapter.MlflowStore` (no import: no cycle)."""

    _sql: Any

    @property
    def is_http(self) -> bool: ...
    @property
    def tracking_uri(self) -> str: ...

    def search_models(self, name_like: str) -> list[ModelRecord]: ...
    def search_versions(self, filter_string: str) -> list[VersionInfo]: ...
    def newest_version(self, name: str) -> VersionInfo | None: ...

__all__ = ["heads_of", "read_registration_state", "read_snapshot", "registration_state",
           "snapshot"]

log = logging.getLogger(__name__)

#: What a tag key must look like to be written into the SQL as a literal.
_SAFE_KEY = re.compile(r"[A-Za-z0-9_.\-]{1,250}")
#: MLflow marks a deleted version with this stage and keeps its row.
_DELETED = "Deleted_Internal"


def heads_of(models: list[ModelRecord], versions: Iterable[VersionInfo],
             keys: Collection[str] | None = None) -> Snapshot:
    """The :class:`Snapshot` of ``models`` given all their live ``versions`` (the fallback),
    the head versions' tags cut to ``keys`` like :func:`read_snapshot` does."""
    counts: dict[str, int] = {}
    newest: dict[str, int] = {}
    every = list(versions)
    for v in every:
        counts[v.name] = counts.get(v.name, 0) + 1
        newest[v.name] = max(newest.get(v.name, 0), v.version)
    wanted = {(name, version) for name, version in newest.items()}
    wanted |= {(m.name, version) for m in models for version in m.aliases.values()}
    heads = [v for v in every if (v.name, v.version) in wanted]
    if keys is not None:
        keep = set(keys)
        heads = [replace(v, tags=tags, metrics=metric_tags(tags)) for v in heads
                 for tags in [{k: x for k, x in v.tags.items() if k in keep}]]
    return Snapshot(models, heads, counts)


def _iso(ms: Any) -> str:
    return datetime.fromtimestamp(int(ms) / 1000, UTC).isoformat(timespec="seconds") if ms else ""


_WORKSPACES: weakref.WeakKeyDictionary[sa.Engine, bool] = weakref.WeakKeyDictionary()


def _has_workspaces(engine: sa.Engine) -> bool:
    """MLflow 3 added a ``workspace`` column (this client reads the default workspace);
    looked up once per engine."""
    if engine not in _WORKSPACES:
        columns = {c["name"] for c in sa.inspect(engine).get_columns("model_versions")}
        _WORKSPACES[engine] = "workspace" in columns
    return _WORKSPACES[engine]


def _literals(keys: Collection[str]) -> str:
    """SQL string literals of tag keys (our own names, checked: no quote can slip in)."""
    bad = [k for k in keys if not _SAFE_KEY.fullmatch(k)]
    if bad:
        raise ValueError(f"tag keys {bad[:3]} cannot be inlined")
    return ", ".join(f"'{k}'" for k in sorted(keys)) or "''"


def _fetch(engine: sa.Engine, statements: dict[str, str],
           params: dict[str, Any]) -> dict[str, Any]:
    """Run each statement on one DBAPI cursor and fetch plain tuples.

    Hundreds of thousands of tag rows are read here: SQLAlchemy's ``Row`` objects
    cost a third of the time, so only the SQL is compiled by SQLAlchemy (for the
    driver's parameter style) and the rows come straight from the driver.
    """
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        got = {}
        for key, sql in statements.items():
            compiled = sa.text(sql).compile(dialect=engine.dialect)
            bound = compiled.construct_params({k: v for k, v in params.items() if f":{k}" in sql})
            args: Any = (tuple(bound[n] for n in compiled.positiontup or ())
                         if engine.dialect.positional else bound)
            cursor.execute(str(compiled), args)
            got[key] = cursor.fetchall()
        cursor.close()
        raw.rollback()  # read only: end the driver's implicit transaction
        return got
    finally:
        raw.close()


def read_snapshot(engine: sa.Engine, prefix: str, keys: Collection[str] | None = None) -> Snapshot:
    """The :class:`Snapshot` of every registered model whose name starts with ``prefix``.

    ``keys`` limits the head versions' tags to those keys (a view reads what it shows:
    the tag rows are most of the read's cost); None reads them all.
    """
    like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    ws = " AND {t}.workspace = 'default'" if _has_workspaces(engine) else ""

    def where(t: str) -> str:
        return f"{t}.name LIKE :like ESCAPE '\\'" + ws.format(t=t)

    live = f"(mv.current_stage IS NULL OR mv.current_stage <> '{_DELETED}')"
    heads = (f"SELECT mv.name AS name, MAX(mv.version) AS version FROM model_versions mv "
             f"WHERE {where('mv')} AND {live} GROUP BY mv.name "
             f"UNION SELECT a.name, a.version FROM registered_model_aliases a WHERE {where('a')}")
    statements = {
        "models": f"SELECT m.name, m.description FROM registered_models m WHERE {where('m')}",
        "model_tags": f"SELECT t.name, t.key, t.value FROM registered_model_tags t "
                      f"WHERE {where('t')}",
        "aliases": f"SELECT a.name, a.alias, a.version FROM registered_model_aliases a "
                   f"WHERE {where('a')}",
        "counts": f"SELECT mv.name, COUNT(*) FROM model_versions mv WHERE {where('mv')} AND {live} "
                  f"GROUP BY mv.name",
        "versions": f"SELECT mv.name, mv.version, mv.run_id, mv.creation_time, mv.source, "
                    f"mv.status, mv.description FROM model_versions mv JOIN ({heads}) h "
                    f"ON mv.name = h.name AND mv.version = h.version "
                    f"WHERE {where('mv')} AND {live}",
        "version_tags": f"SELECT t.name, t.version, t.key, t.value FROM model_version_tags t "
                        f"JOIN ({heads}) h ON t.name = h.name AND t.version = h.version "
                        f"WHERE {where('t')}" + (f" AND t.key IN ({_literals(keys)})"
                                                 if keys is not None else ""),
    }
    got = _fetch(engine, statements, {"like": like})

    tags_of: dict[str, dict[str, str]] = {}
    for name, key, value in got["model_tags"]:
        tags_of.setdefault(name, {})[key] = value
    aliases_of: dict[str, dict[str, int]] = {}
    for name, alias, version in got["aliases"]:
        aliases_of.setdefault(name, {})[alias] = int(version)
    vtags: dict[tuple[str, int], dict[str, str]] = {}
    for name, version, key, value in got["version_tags"]:
        vtags.setdefault((name, int(version)), {})[key] = value
    # LIKE's escapes differ between databases: startswith is the exact test
    models = [ModelRecord(name, aliases_of.get(name, {}), tags_of.get(name, {}), description or "")
              for name, description in got["models"] if name.startswith(prefix)]
    versions = []
    for name, version, run_id, created, source, status, description in got["versions"]:
        if not name.startswith(prefix):
            continue
        tags = vtags.get((name, int(version)), {})
        versions.append(VersionInfo(
            ticker=tags.get("ticker") or name.partition(".")[2], name=name, version=int(version),
            run_id=run_id, created_at=_iso(created), aliases=(), metrics=metric_tags(tags),
            tags=tags, source=source or "", status=str(status), description=description or ""))
    counts = {name: int(n) for name, n in got["counts"] if name.startswith(prefix)}
    return Snapshot(models, versions, counts)


def read_registration_state(engine: sa.Engine, name: str,
                            key: str) -> tuple[list[tuple[int, str]], dict[str, str] | None]:
    """What registering a version of ``name`` under idempotency ``key`` needs, in one read.

    Returns the live versions tagged with ``key`` as ``(version, status)`` pairs, and the
    newest live version's tags (None when there is none).
    """
    ws = " AND {t}.workspace = 'default'" if _has_workspaces(engine) else ""
    live = f"(mv.current_stage IS NULL OR mv.current_stage <> '{_DELETED}')"
    by_key = (f"SELECT mv.version, mv.status FROM model_versions mv JOIN model_version_tags t "
              f"ON t.name = mv.name AND t.version = mv.version{ws.format(t='t')} "
              f"WHERE mv.name = :name AND t.key = 'idempotency_key' AND t.value = :key "
              f"AND {live}{ws.format(t='mv')}")
    newest = (f"SELECT MAX(mv.version) FROM model_versions mv WHERE mv.name = :name AND {live}"
              f"{ws.format(t='mv')}")
    tags_of = (f"SELECT t.key, t.value FROM model_version_tags t WHERE t.name = :name "
               f"AND t.version = :version{ws.format(t='t')}")
    with engine.connect() as conn, conn.begin():
        keyed = [(int(v), str(status)) for v, status in
                 conn.execute(sa.text(by_key), {"name": name, "key": key}).all()]
        version = conn.execute(sa.text(newest), {"name": name}).scalar()
        if version is None:
            return keyed, None
        tags = {k: v for k, v in conn.execute(sa.text(tags_of),
                                                {"name": name, "version": version}).all()}
    return keyed, tags


# --------------------------------------------------------------------------- with the fallback
def _engine(store: _Searchable) -> sa.Engine:
    """The SQLAlchemy engine of a SQL store's direct reads, created on first use."""
    if store._sql is None:
        store._sql = sa.create_engine(store.tracking_uri)
    return store._sql


def snapshot(store: _Searchable, prefix: str, keys: Collection[str] | None = None) -> Snapshot:
    """:func:`read_snapshot` on a SQL store, else the paged searches (:func:`heads_of`)."""
    if not store.is_http:
        try:
            return read_snapshot(_engine(store), prefix, keys)
        except Exception as exc:  # layout changed, no permission...: the searches are exact
            log.debug("snapshot through MLflow's searches (%s)", exc)
    like = f"{prefix}%"  # '_' matches any character here: startswith keeps ours
    models = [m for m in store.search_models(like) if m.name.startswith(prefix)]
    versions = store.search_versions(f"name LIKE '{like}'")
    return heads_of(models, (v for v in versions if v.name.startswith(prefix)), keys)


def registration_state(store: _Searchable, name: str,
                       key: str) -> tuple[list[tuple[int, str]], dict[str, str] | None]:
    """:func:`read_registration_state` on a SQL store, else two searches."""
    if not store.is_http:
        try:
            return read_registration_state(_engine(store), name, key)
        except Exception as exc:  # layout changed, no permission...: the searches are exact
            log.debug("registration state through MLflow's searches (%s)", exc)
    try:
        found = store.search_versions(f"name='{name}' and tags.idempotency_key='{key}'")
    except ModelNotFoundError:
        return [], None
    newest = store.newest_version(name)
    return [(v.version, v.status) for v in found], (newest.tags if newest else None)
