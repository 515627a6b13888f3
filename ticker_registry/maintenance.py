"""Registry housekeeping: delete old model versions nobody serves or may roll back to.

:func:`cleanup` deletes a version only when **all** of these hold:

- it was created more than ``days`` days before ``now``;
- it holds no alias (production, staging or any other);
- it is not among the newest ``keep_last`` READY versions of its ticker;
- no alias moved to it or away from it within ``days`` days (the audit
  trail): a version promoted, or demoted, recently stays a rollback target.

A registered model is deleted only when it has no version left and was
created more than ``days`` days ago. With ``keep_last >= 1`` the newest READY
version is always kept, so that happens only to a model whose versions were
all deleted by hand or all failed to register.

Each deleted version's run is marked deleted too (when no other version uses
it), and so is the LoggedModel that holds its files (``model_id`` tag), so
their artifacts can be reclaimed with ``mlflow gc``; the version's copy in the
local model cache is removed at once. Deletions run under the ticker's
write lock, after planning again, so a promotion that lands meanwhile wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import native_cache
from .exceptions import InvalidArgumentError, ModelNotFoundError
from .records import AuditEvent, VersionInfo
from .redaction import redact_uri
from .tickers import normalize_ticker

if TYPE_CHECKING:
    from .registry import TickerRegistry

__all__ = ["CleanupReport", "cleanup"]


@dataclass(frozen=True)
class CleanupReport:
    """What :func:`cleanup` deleted (or, in a dry run, would delete) and what it kept.

    ``deleted`` and ``kept`` hold one row per version: ``{"ticker", "version", "reason"}``.
    """

    deleted: list[dict[str, Any]]
    kept: list[dict[str, Any]]
    deleted_models: list[str]
    deleted_runs: list[str] = field(default_factory=list)
    deleted_logged_models: list[str] = field(default_factory=list)
    dry_run: bool = False
    days: float = 30
    keep_last: int = 2
    backend_store_uri: str = ""

    def summary(self) -> str:
        """A few lines for people: counts, each deletion with its reason, how to reclaim space."""
        verb = "Would delete" if self.dry_run else "Deleted"
        tickers = len({row["ticker"] for row in self.deleted})
        lines = [f"{verb} {len(self.deleted)} version(s) of {tickers} ticker(s) (older than "
                 f"{self.days:g} days, no alias, not among the newest {self.keep_last}, no "
                 f"recent alias move); kept {len(self.kept)}."]
        lines += [f"  {row['ticker']} v{row['version']}: {row['reason']}" for row in self.deleted]
        if self.deleted_models:
            lines.append(f"{verb} registered model(s) with no version left: "
                         f"{', '.join(self.deleted_models)}.")
        gc = f"mlflow gc --backend-store-uri {self.backend_store_uri}"
        if self.dry_run:
            lines.append("Dry run: nothing was changed. Run again without --dry-run (in Python: "
                         "dry_run=False) to delete; "
                         f"then reclaim artifact space with `{gc}`.")
        elif self.deleted:
            lines.append(f"The runs and LoggedModels of deleted versions are marked deleted; their "
                         f"artifacts stay on disk until you reclaim the space with `{gc}`.")
        else:
            lines.append(f"Artifacts of runs deleted earlier are reclaimed with `{gc}`.")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"deleted": self.deleted, "kept": self.kept,
                "deleted_models": self.deleted_models, "deleted_runs": self.deleted_runs,
                "deleted_logged_models": self.deleted_logged_models,
                "dry_run": self.dry_run, "days": self.days, "keep_last": self.keep_last}


@dataclass(frozen=True)
class _Plan:
    delete: list[dict[str, Any]]
    keep: list[dict[str, Any]]
    runs: dict[int, str | None]
    logged_models: dict[int, str]
    delete_model: bool


def cleanup(registry: TickerRegistry, days: float = 30, keep_last: int = 2,
            ticker: str | None = None, dry_run: bool = False,
            now: datetime | None = None) -> CleanupReport:
    """Delete old versions that hold no alias and moved no alias recently (see module docs).

    Parameters
    ----------
    days
        Age in days (from a version's creation) below which nothing is deleted,
        and the window in which an alias move protects a version.
    keep_last
        Newest READY versions of each ticker always kept; at least 1.
    ticker
        Only this ticker (default: every ticker of the namespace).
    dry_run
        Report the plan and change nothing.
    now
        The current time (for tests and reproducible plans); default: the clock.

    Raises
    ------
    RegistryError
        ``keep_last < 1`` or ``days < 0`` (nothing is changed).
    ModelNotFoundError
        ``ticker`` is not in the registry.
    """
    if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1:
        raise InvalidArgumentError(f"keep_last must be an integer of at least 1, got {keep_last!r}: "
                            "cleanup always keeps each ticker's newest version; to remove a "
                            "ticker entirely, delete its registered model")
    if isinstance(days, bool) or not isinstance(days, (int, float)) or not days >= 0:
        raise InvalidArgumentError(f"days must be a number of at least 0, got {days!r}")
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    cutoff = now - timedelta(days=days)
    states = {s.name: s for s in registry.search_models()}
    if ticker is not None:
        name = registry.model_name(ticker)
        if name not in states:
            raise ModelNotFoundError(f"{normalize_ticker(ticker)} is not in the registry; see "
                                     "`ticker-registry status`")
        names = [name]
    else:
        names = sorted(states)
    deleted: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    deleted_models: list[str] = []
    deleted_runs: list[str] = []
    deleted_logged: list[str] = []
    for name in names:
        state = states[name]
        symbol = state.tags.get("ticker") or registry.ticker_of(name)
        model_created = _parse_time(state.tags.get("created_at", ""))
        if dry_run:
            plan = _plan(registry, symbol, cutoff, days, keep_last, model_created)
        else:
            with registry.lock(symbol):  # plan again under the lock: a new promotion wins
                plan = _plan(registry, symbol, cutoff, days, keep_last, model_created)
                for row in plan.delete:
                    registry.delete_version(symbol, row["version"])
                if plan.delete_model:
                    registry.delete_registered_model(symbol)
            for row in plan.delete:
                run_id = plan.runs.get(row["version"])
                if run_id and _delete_orphan_run(registry, run_id):
                    deleted_runs.append(run_id)
                model_id = plan.logged_models.get(row["version"])
                if model_id and registry.delete_logged_model(model_id):
                    deleted_logged.append(model_id)
                if run_id:
                    native_cache.drop(registry.models_dir, name, row["version"], run_id)
            if plan.delete_model:
                native_cache.drop(registry.models_dir, name)
        deleted += plan.delete
        kept += plan.keep
        if plan.delete_model:
            deleted_models.append(name)
    return CleanupReport(deleted=deleted, kept=kept, deleted_models=deleted_models,
                         deleted_runs=deleted_runs, deleted_logged_models=deleted_logged,
                         dry_run=dry_run, days=days,
                         keep_last=keep_last, backend_store_uri=redact_uri(registry.tracking_uri))


def _plan(registry: TickerRegistry, ticker: str, cutoff: datetime, days: float, keep_last: int,
          model_created: datetime | None) -> _Plan:
    versions = registry.list_versions(ticker)  # newest first, aliases filled in
    moves = _recent_moves(registry.audit_trail(ticker), cutoff)
    newest = {v.version for v in [v for v in versions if v.status == "READY"][:keep_last]}
    delete: list[dict[str, Any]] = []
    keep: list[dict[str, Any]] = []
    for v in versions:
        reason = _keep_reason(v, newest, keep_last, moves, cutoff, days)
        row = {"ticker": ticker, "version": v.version,
               "reason": reason or (f"created {v.created_at}, older than {days:g} days; no "
                                    f"alias, not among the newest {keep_last}, no alias move "
                                    f"within {days:g} days")}
        (keep if reason else delete).append(row)
    empty = len(delete) == len(versions)
    delete_model = empty and model_created is not None and model_created < cutoff
    return _Plan(delete, keep, {v.version: v.run_id for v in versions},
                 {v.version: v.tags["model_id"] for v in versions if v.tags.get("model_id")},
                 delete_model)


def _keep_reason(v: VersionInfo, newest: set[int], keep_last: int,
                 moves: dict[int, str], cutoff: datetime, days: float) -> str | None:
    if v.aliases:
        return f"holds alias {', '.join(v.aliases)}"
    if v.version in newest:
        return f"one of the newest {keep_last} version(s)"
    if v.version in moves:
        return f"{moves[v.version]} (within {days:g} days)"
    created = _parse_time(v.created_at)
    if created is None:
        return "creation time unknown"
    if created >= cutoff:
        return f"created {v.created_at}, within {days:g} days"
    return None


def _recent_moves(events: list[AuditEvent], cutoff: datetime) -> dict[int, str]:
    """Versions an alias moved to or away from after ``cutoff`` (latest move wins)."""
    out: dict[int, str] = {}
    for event in events:
        when = _parse_time(event.when)
        if when is None or when < cutoff:
            continue
        if event.from_version is not None and event.from_version != event.to_version:
            out[event.from_version] = f"held {event.alias} until {event.when}"
        if event.to_version is not None:
            out[event.to_version] = f"moved to {event.alias} by {event.action} on {event.when}"
    return out


def _delete_orphan_run(registry: TickerRegistry, run_id: str) -> bool:
    """Mark ``run_id`` deleted when no remaining version uses it; True if it was."""
    if registry.search_versions(f"run_id='{run_id}'"):
        return False
    return registry.store.delete_run(run_id)


def _parse_time(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
