"""The audit trail: every alias move of a ticker, complete, and bounded where it is read.

Each move is one tag ``audit.<seq>`` (an :class:`~ticker_registry.records.AuditEvent`
as JSON) on the ticker's **audit run**: a run named ``audit-<TICKER>`` in the
experiment ``ticker-registry/<namespace>/audit``, whose id the registered model
carries in its tag ``audit_run``. The registered model's own tags therefore stay
a fixed handful however many moves there are, so ``search_registered_models``
(every status read, the UI's model list) does not grow with history, while the
whole trail stays one read away (``ticker-registry history TICKER``, or the
audit run's page in the MLflow UI).

Stores written before this layout kept each event as a registered-model tag
``audit.<seq>``; those are still read (and never written again), so a trail
continues across the change. The caller of :meth:`AuditTrail.append` holds the
ticker's write lock: sequence numbers are allocated under it.
"""

from __future__ import annotations

import getpass
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .records import AuditEvent, ModelRecord

if TYPE_CHECKING:
    from .store import MlflowStore

__all__ = ["AUDIT_RUN_TAG", "AuditTrail", "divergences", "production_history"]

log = logging.getLogger(__name__)

#: The registered-model tag holding the id of the ticker's audit run.
AUDIT_RUN_TAG = "audit_run"
_PREFIX = "audit."


def _events(tags: dict[str, str]) -> list[AuditEvent]:
    events = []
    for key in sorted(k for k in tags if k.startswith(_PREFIX) and k[len(_PREFIX):].isdigit()):
        try:
            events.append(AuditEvent.from_json(tags[key]))
        except (ValueError, TypeError):
            log.warning("ignoring unreadable audit entry %s", key)
    return events


class AuditTrail:
    """Read and append the alias moves of the tickers of one namespace."""

    def __init__(self, store: MlflowStore, namespace: str) -> None:
        self.store = store
        self.experiment = f"ticker-registry/{namespace}/audit"

    def events(self, model: ModelRecord) -> list[AuditEvent]:
        """Every move of ``model``'s aliases, oldest first."""
        events = _events(model.tags)  # written before the audit run existed
        run_id = model.tags.get(AUDIT_RUN_TAG)
        if run_id:
            events += _events(self.store.get_run(run_id).tags)
        return sorted(events, key=lambda e: e.seq)

    def append(self, model: ModelRecord, ticker: str, **fields: Any) -> AuditEvent:
        """Record one move (the caller holds ``ticker``'s write lock)."""
        run_id = model.tags.get(AUDIT_RUN_TAG)
        if not run_id:  # the caller's record may predate this ticker's first recorded move
            model = self.store.get_model(model.name)
            run_id = model.tags.get(AUDIT_RUN_TAG)
        if not run_id:
            run_id = self.store.create_run(self.experiment, tags={
                "ticker": ticker, "model_name": model.name, "mlflow.runName": f"audit-{ticker}",
                "mlflow.note.content": f"Every alias move of {model.name}, one tag per move."})
            self.store.set_model_tag(model.name, AUDIT_RUN_TAG, run_id)
            past = _events(model.tags)
        else:
            past = self.events(model)
        seq = max((e.seq for e in past), default=0) + 1
        event = AuditEvent(seq=seq, when=_now(), user=_user(), **fields)
        self.store.set_run_tag(run_id, f"{_PREFIX}{seq:06d}", event.to_json())
        return event


def production_history(events: list[AuditEvent], alias: str,
                       current: int | None = None) -> list[int]:
    """The stack of versions ``alias`` actually held: promotions push, a rollback pops back
    to its target, a removal empties the top.

    An alias is moved before its event is written (:mod:`.aliases`), so every event
    records a move that happened; a crash between the two leaves the last move
    unrecorded. ``current`` (the alias as it is now) closes that gap: when the trail
    does not end on it, it is what was served last.
    """
    stack: list[int] = []
    for event in events:
        if event.alias != alias:
            continue
        if event.to_version is None:
            if stack:
                stack.pop()
        elif event.action == "rollback" and event.to_version in stack:
            del stack[stack.index(event.to_version) + 1:]
        elif not stack or stack[-1] != event.to_version:  # re-promoting the same version: no move
            stack.append(event.to_version)
    if current is not None and (not stack or stack[-1] != current):
        stack.append(current)
    return stack


def divergences(events: list[AuditEvent],
                aliases: dict[str, int]) -> dict[str, tuple[int | None, int | None]]:
    """Aliases whose trail does not end where the alias is: ``alias -> (trail says, alias is)``.

    After a crash between an alias move and its audit entry; ``doctor --repair`` records
    the missing move (:meth:`AuditTrail.append` with action ``doctor``).
    """
    last: dict[str, int | None] = {}
    for event in events:
        last[event.alias] = event.to_version
    out = {}
    for alias in set(last) | set(aliases):
        trail, actual = last.get(alias), aliases.get(alias)
        if trail != actual:
            out[alias] = (trail, actual)
    return out


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
