"""Find (and, when asked, repair) inconsistencies left by crashes and manual edits.

Checks, and what ``repair=True`` does about each (only what is safe):

- ``broken_version``: a version whose model artifacts are missing or do not
  load. Repair: tag it ``doctor.broken`` (never deleted: its lineage and
  metrics stay readable).
- ``broken_alias``: an alias on a broken (or vanished) version. Repair: move
  the alias to the newest loadable version that held it before (audit trail),
  else remove the alias.
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

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

from . import native_cache
from .exceptions import ModelFormatError, ModelNotFoundError, RegistryError
from .locking import LOCK_PREFIX, STALE_AFTER, process_gone
from .model import OrderFlowModel

if TYPE_CHECKING:
    from .cache import ModelCache
    from .registry import TickerRegistry
    from .samples import SampleStore


class Diagnosable(Protocol):
    """What doctor works on (a manager has it): the registry, the sample store, the cache."""

    registry: TickerRegistry
    samples: SampleStore
    cache: ModelCache

__all__ = ["Finding", "diagnose"]

#: Runs and batches younger than this are left alone: a training may still be running.
GRACE_S = 15 * 60


@dataclass(frozen=True)
class Finding:
    kind: str
    ticker: str
    detail: str
    action: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def diagnose(manager: Diagnosable, *, repair: bool = False,
             grace_s: float = GRACE_S) -> list[Finding]:
    """Every inconsistency found; with ``repair`` each safe fix is applied and reported."""
    registry = manager.registry
    findings: list[Finding] = []
    broken: dict[tuple[str, int], str] = {}
    version_runs: set[str] = set()
    keys: dict[tuple[str, str], int] = {}
    for info in registry.search_versions(f"name LIKE '{registry.config.namespace}.%'"):
        if info.run_id:
            version_runs.add(info.run_id)
        keys[(info.ticker, info.tags.get("idempotency_key", ""))] = info.version
        problem = _load_problem(registry, info)
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
    findings += _orphan_runs(registry, version_runs, repair, grace_s)
    findings += _stale_batches(manager, keys, repair, grace_s)
    findings += _stale_locks(registry, repair)
    findings += _stale_leases(manager, repair)
    return findings


def _load_problem(registry: Any, info: Any) -> str:
    if info.status != "READY":
        return f"status {info.status}"
    try:
        folder = registry.download_native(info)
        OrderFlowModel.load(folder)
    except (ModelFormatError, RegistryError, OSError) as exc:
        # drop a half-downloaded cache entry so a later repair of the store is seen
        native_cache.drop(registry.models_dir, info.name, info.version, info.run_id)
        return str(exc).splitlines()[0][:300]
    return ""


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
