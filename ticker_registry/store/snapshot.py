"""One read of a namespace's registered models and versions from MLflow's own SQL tables.

A status read over thousands of tickers cannot go through ``MlflowClient``: its
searches build one ORM object per tag row and load each model's latest versions
one query at a time. On a SQL store (SQLite, PostgreSQL, MySQL) this module reads
the five registry tables (``registered_models``, ``registered_model_tags``,
``registered_model_aliases``, ``model_versions``, ``model_version_tags``) with
SQLAlchemy Core in one transaction and returns the same records the searches
give (``tests/test_snapshot.py`` compares them). It depends on MLflow's table
layout, so the adapter falls back to the searches on any error (a release that
changed the layout, a server store, a missing permission).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from ..records import ModelRecord, VersionInfo, metric_tags

__all__ = ["read_snapshot"]

#: MLflow marks a deleted version with this stage and keeps its row.
_DELETED = "Deleted_Internal"
_TABLES = ("registered_models", "registered_model_tags", "registered_model_aliases",
           "model_versions", "model_version_tags")


def _iso(ms: Any) -> str:
    return datetime.fromtimestamp(int(ms) / 1000, UTC).isoformat(timespec="seconds") if ms else ""


def read_snapshot(engine: sa.Engine, prefix: str) -> tuple[list[ModelRecord], list[VersionInfo]]:
    """Every registered model whose name starts with ``prefix`` and its live versions."""
    meta = sa.MetaData()
    tables = {name: sa.Table(name, meta, autoload_with=engine) for name in _TABLES}
    like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"

    def rows(name: str) -> sa.Select[Any]:
        table = tables[name]
        query = sa.select(table).where(table.c.name.like(like, escape="\\"))
        if "workspace" in table.c:  # MLflow 3: this client reads the default workspace
            query = query.where(table.c.workspace == "default")
        return query

    with engine.connect() as conn, conn.begin():
        models = conn.execute(rows("registered_models")).mappings().all()
        model_tags = conn.execute(rows("registered_model_tags")).mappings().all()
        aliases = conn.execute(rows("registered_model_aliases")).mappings().all()
        versions = conn.execute(rows("model_versions")).mappings().all()
        version_tags = conn.execute(rows("model_version_tags")).mappings().all()
    tags_of: dict[str, dict[str, str]] = {}
    for r in model_tags:
        tags_of.setdefault(r["name"], {})[r["key"]] = r["value"]
    aliases_of: dict[str, dict[str, int]] = {}
    for r in aliases:
        aliases_of.setdefault(r["name"], {})[r["alias"]] = int(r["version"])
    vtags: dict[tuple[str, int], dict[str, str]] = {}
    for r in version_tags:
        vtags.setdefault((r["name"], int(r["version"])), {})[r["key"]] = r["value"]
    out_models = [ModelRecord(r["name"], aliases_of.get(r["name"], {}),
                              tags_of.get(r["name"], {}), r["description"] or "")
                  for r in models if r["name"].startswith(prefix)]
    out_versions = []
    for r in versions:
        if r["current_stage"] == _DELETED or not r["name"].startswith(prefix):
            continue
        tags = vtags.get((r["name"], int(r["version"])), {})
        out_versions.append(VersionInfo(
            ticker=tags.get("ticker") or r["name"].partition(".")[2], name=r["name"],
            version=int(r["version"]), run_id=r["run_id"], created_at=_iso(r["creation_time"]),
            aliases=(), metrics=metric_tags(tags), tags=tags, source=r["source"] or "",
            status=str(r["status"]), description=r["description"] or ""))
    return out_models, out_versions
