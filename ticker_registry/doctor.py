"""Find (and, when asked, repair) inconsistencies left by crashes and manual edits.

Checks, and what ``repair=True`` does about each (only what is safe):

- ``store_damaged``: the embedded store's SQLite file is empty, not an SQLite
  database, fails ``PRAGMA integrity_check`` or has no MLflow registry tables.
  No repair: restore it from a backup. Nothing else is checked (or repaired)
  in a damaged store, whose answers cannot be trusted.
- ``broken_version``: a version whose native model files, downloaded from the
  store (not this machine's cache, which may still hold a good copy), are
  missing, differ from the sha256 recorded at registration (tag
  ``native.sha256``; versions registered before it have none and are only
  loaded) or do not load. Repair: tag it ``doctor.broken`` (never deleted: its
  lineage and metrics stay readable).
- ``broken_alias``: an alias on a broken (or vanished) version. Repair: move
  the alias to the newest loadable version that held it before (audit trail),
  else remove the alias.
- ``alias_audit_divergence``: an alias that is not where its audit trail ends
  (:func:`ticker_registry.audit.divergences`): a process died between moving
  the alias and writing its audit entry. Repair: append the lost move to the
  trail (action ``doctor``), under the ticker's lock.
- ``orphan_run``: a run of ours that never became a version (a crash between
  creating the run and the version). Repair: mark it FAILED and soft-delete it
  (``mlflow gc`` reclaims the space).
- ``stale_batch``: a training batch claimed long ago and never finished (a
  crash during training). Repair: finish it with the version registered under
  its key if there is one, else fail it, so its samples train again.
- ``stale_lock``: a leftover server lock model ``_lock.*``. Repair: delete it.
- ``stale_lease``: an unexpired training lease held by a process of this host
  that no longer runs (a killed trainer). Repair: release it, so retraining
  resumes now rather than after ``LEASE_TTL_S``.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from . import native_cache
from .audit import divergences
from .exceptions import ModelFormatError, ModelNotFoundError, RegistryError
from .locking import LOCK_PREFIX, STALE_AFTER, process_gone
from .model import OrderFlowModel
from .store.runs import NATIVE_SHA256_TAG, native_sha256_mismatch

if TYPE_CHECKING:
    from .cache import ModelCache
    from .registry import TickerRegistry
    from .samples import SampleStore


class Diagnosable(Protocol):
    """What doctor works on (a manager has it): the registry, the sample store, the cache."""

    registry: TickerRegistry
    samples: SampleStore
    cache: ModelCache

__all__ = ["Finding", "diagnose", "sqlite_store_problem"]

#: Runs and batches younger than this are left alone: a training may still be running.
GRACE_S = 15 * 60
#: The table every MLflow registry database has (a SQLite file without it is another database).
REGISTRY_TABLE = "registered_models"
_SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass(frozen=True)
class Finding:
    kind: str
    ticker: str
    detail: str
    action: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sqlite_store_problem(path: Path, *, thorough: bool = True) -> str:
    """What is wrong with the SQLite file of a model store, in a few words; "" if it is sound.

    The file is opened read-only (nothing is created or changed beside it). The check
    is ``PRAGMA integrity_check`` when ``thorough``, else ``PRAGMA quick_check`` (the
    b-trees without matching each index against its table): on a 300 MB store of
    1000 tickers x 5 versions they take about 4.5 s and 0.5 s, so read commands use
    the quick one and ``doctor`` the thorough one. A database that is locked or has
    a journal to roll back (a writer at work, or one that crashed) is not damaged:
    "" (MLflow's next writer rolls the journal back).
    """
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as head:
        magic = head.read(len(_SQLITE_MAGIC))
    if not magic:
        return f"{path.name} is empty (0 bytes)"
    if magic != _SQLITE_MAGIC:
        return f"{path.name} is not an SQLite database ({size} bytes)"
    pragma = "integrity_check" if thorough else "quick_check"
    try:
        connection = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            result = [row[0] for row in connection.execute(f"PRAGMA {pragma}(5)")]
            tables = {row[0] for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            connection.close()
    except sqlite3.OperationalError:
        return ""  # locked, or a hot journal a read-only connection may not roll back
    except sqlite3.DatabaseError as exc:  # SQLITE_CORRUPT, SQLITE_NOTADB
        return f"{path.name} is corrupt (SQLite: {exc})"
    if result != ["ok"]:
        said = " ".join(" ".join(map(str, result)).split())  # one line
        return f"{path.name} is corrupt (SQLite's {pragma}: {said[:200]})"
    if REGISTRY_TABLE not in tables:
        return (f"{path.name} is an SQLite database without MLflow's registry tables "
                f"({REGISTRY_TABLE}): not a model store")
    return ""


def diagnose(manager: Diagnosable, *, repair: bool = False,
             grace_s: float = GRACE_S) -> list[Finding]:
    """Every inconsistency found; with ``repair`` each safe fix is applied and reported.

    A damaged store (``store_damaged``) is the only finding then: nothing else is
    checked or repaired in it.
    """
    registry = manager.registry
    damaged = _store_damaged(registry)
    if damaged:
        return [damaged]
    findings: list[Finding] = []
    broken: dict[tuple[str, int], str] = {}
    version_runs: set[str] = set()
    keys: dict[tuple[str, str], int] = {}
    for info in registry.search_versions(f"name LIKE '{registry.config.namespace}.%'"):
        if info.run_id:
            version_runs.add(info.run_id)
        keys[(info.ticker, info.tags.get("idempotency_key", ""))] = info.version
        problem = _version_problem(registry, info)
        if problem:
            broken[(info.ticker, info.version)] = problem
            action = ""
            if info.tags.get("doctor.broken"):
                action = "already tagged doctor.broken"
            elif repair:
                registry.set_version_tag(info.ticker, info.version, "doctor.broken", problem[:500])
                action = "tagged doctor.broken"
            findings.append(Finding("broken_version", info.ticker, f"v{info.version}: {problem}",
                                    action))
    for state in registry.search_models():
        ticker = registry.ticker_of(state.name)
        for alias, version in state.aliases.items():
            if (ticker, version) not in broken:
                continue
            action = _repair_alias(manager, ticker, alias, version, broken) if repair else ""
            findings.append(Finding("broken_alias", ticker, f"{alias} -> v{version} is broken",
                                    action))
    findings += _audit_divergences(registry, repair)
    findings += _orphan_runs(registry, version_runs, repair, grace_s)
    findings += _stale_batches(manager, keys, repair, grace_s)
    findings += _stale_locks(registry, repair)
    findings += _stale_leases(manager, repair)
    return findings


def _store_damaged(registry: Any) -> Finding | None:
    path = registry.store.sqlite_path
    if path is None or not path.is_file():
        return None  # a server or database store; or a store MLflow has yet to create
    problem = sqlite_store_problem(path)
    if not problem:
        return None
    return Finding("store_damaged", "", f"{path}: {problem}; restore it from a backup "
                   "(nothing else was checked or repaired: a damaged store's answers cannot "
                   "be trusted)")


def _version_problem(registry: Any, info: Any) -> str:
    """Why ``info`` does not serve, judged on a fresh download of its native files from the
    store (the local cache may hold a good copy of a file the store has lost); "" if it does."""
    if info.status != "READY":
        return f"status {info.status}"
    tag = info.tags.get(NATIVE_SHA256_TAG)
    with tempfile.TemporaryDirectory(prefix="ticker-registry-doctor-") as tmp:
        try:
            folder = native_cache.fetch(registry.store, info, Path(tmp))
            if tag:  # versions registered before the checksums have none: loading must do
                try:
                    mismatch = native_sha256_mismatch(folder, tag)
                except ValueError:
                    return f"its {NATIVE_SHA256_TAG} tag is unreadable: {tag[:80]!r}"
                if mismatch:
                    return mismatch[:300]
            OrderFlowModel.load(folder)
        except (ModelFormatError, RegistryError, OSError) as exc:
            return str(exc).splitlines()[0][:300]
    return ""


def _audit_divergences(registry: Any, repair: bool) -> list[Finding]:
    out = []
    for state in registry.search_models():
        ticker = registry.ticker_of(state.name)
        lost = _lost_moves(registry, state)
        if not lost:
            continue
        recorded: dict[str, str] = {}
        if repair:
            with registry.lock(ticker):
                state = registry.model(ticker)  # as it is now, under the lock
                recorded = dict.fromkeys(lost, "none: the trail caught up (a move in progress)")
                for alias, (trail, actual) in sorted(_lost_moves(registry, state).items()):
                    registry.audit.append(
                        state, ticker, action="doctor", alias=alias, from_version=trail,
                        to_version=actual,
                        reason="doctor: recorded a move whose audit entry was lost (crash)")
                    recorded[alias] = f"recorded the move {_v(trail)} -> {_v(actual)} in the trail"
        for alias, (trail, actual) in sorted(lost.items()):
            out.append(Finding("alias_audit_divergence", ticker,
                               f"{alias} is {_v(actual)} but its audit trail ends at {_v(trail)} "
                               "(a move whose audit entry a crash lost)",
                               recorded.get(alias, "")))
    return out


def _lost_moves(registry: Any, state: Any) -> dict[str, tuple[int | None, int | None]]:
    """:func:`~ticker_registry.audit.divergences` of ``state``, less the staging alias that
    promoting its version to production took away without an audit entry in trails written
    before that removal was recorded (aliases.promote records it now)."""
    cfg = registry.config
    events = registry.audit.events(state)
    found = divergences(events, state.aliases)
    staging = found.get(cfg.staging_alias)
    if staging is not None and staging[1] is None and staging[0] is not None:
        last = max(i for i, e in enumerate(events) if e.alias == cfg.staging_alias)
        if any(e.alias == cfg.production_alias and e.to_version == staging[0]
               and e.action != "gate" for e in events[last + 1:]):
            del found[cfg.staging_alias]
    return found


def _v(version: int | None) -> str:
    return "unset" if version is None else f"v{version}"


def _repair_alias(manager: Any, ticker: str, alias: str, version: int,
                  broken: dict[tuple[str, int], str]) -> str:
    registry = manager.registry
    history = [e.to_version for e in registry.audit_trail(ticker)
               if e.alias == alias and e.to_version is not None]
    for candidate in reversed(history):
        if candidate == version or (ticker, candidate) in broken:
            continue
        try:
            registry.get_version(ticker, candidate)
        except ModelNotFoundError:
            continue
        registry.promote(ticker, candidate, to=alias, expected=version, action="doctor",
                         reason=f"doctor: v{version} is broken")
        manager.cache.invalidate(ticker)
        return f"moved {alias} to v{candidate}"
    registry.remove_alias(ticker, alias, reason=f"doctor: v{version} is broken",
                          action="doctor")
    manager.cache.invalidate(ticker)
    return f"removed {alias} (no earlier loadable version)"


def _orphan_runs(registry: Any, version_runs: set[str], repair: bool,
                 grace_s: float) -> list[Finding]:
    out = []
    now_ms = time.time() * 1000
    for run in registry.store.search_runs(registry.experiment_name):
        if run.run_id in version_runs:
            continue
        if now_ms - run.start_time_ms < grace_s * 1000:
            continue
        ticker = run.tags.get("ticker", "?")
        action = ""
        if repair:
            registry.store.finish_run(run.run_id, "FAILED")
            registry.store.delete_run(run.run_id)
            action = "marked FAILED and deleted (run `mlflow gc` to reclaim space)"
        out.append(Finding("orphan_run", ticker, f"run {run.run_id} has no model version",
                           action))
    return out


def _stale_batches(manager: Any, keys: dict[tuple[str, str], int], repair: bool,
                   grace_s: float) -> list[Finding]:
    out = []
    for batch in manager.samples.stale_batches(grace_s):
        ticker = batch["ticker"]
        version = keys.get((ticker, batch["idempotency_key"]))
        action = ""
        if repair:
            if version is not None:
                manager.samples.finish_batch(batch["batch_id"], version)
                action = f"finished: registered as v{version}"
            else:
                manager.samples.fail_batch(batch["batch_id"], "doctor: training never registered")
                action = "failed: its samples will train again"
        out.append(Finding("stale_batch", ticker,
                           f"batch {batch['batch_id']} (samples <= {batch['max_sample_id']}) "
                           "was claimed and never finished", action))
    return out


def _stale_locks(registry: Any, repair: bool) -> list[Finding]:
    out = []
    for rm in registry.store.search_models(f"{LOCK_PREFIX}%"):
        try:
            age = time.time() - float(rm.tags.get("acquired_at", "0"))
        except ValueError:
            age = float("inf")
        if age < STALE_AFTER:
            continue
        action = ""
        if repair:
            registry.store.delete_model(rm.name)
            action = "deleted"
        out.append(Finding("stale_lock", rm.name[len(LOCK_PREFIX):], f"{rm.name} is "
                           f"{age:.0f} s old", action))
    return out


def _stale_leases(manager: Any, repair: bool) -> list[Finding]:
    out = []
    now = time.time()
    for lease in manager.samples.leases():
        if lease["expires_at"] <= now or not process_gone(lease["owner"]):
            continue  # an expired lease is taken over anyway; live or remote owners stay
        action = ""
        if repair:
            manager.samples.release_lease(lease["ticker"], lease["owner"])
            action = "released"
        out.append(Finding("stale_lease", lease["ticker"], f"training lease held by "
                           f"{lease['owner']}, a process that no longer runs", action))
    return out
