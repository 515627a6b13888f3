"""Moving a ticker's aliases: the gate's placement, promote, rollback and removal.

The production alias is the single record of what serves. Every move is a
compare-and-set under the ticker's write lock (MLflow has no CAS of its own),
is appended to the audit trail (:mod:`.audit`), and re-derives what mirrors
the alias: the registered model's description and, with ``mirror_stages``,
the deprecated stage of the version.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .audit import production_history
from .descriptions import model_description
from .exceptions import (
    InvalidArgumentError,
    ModelNotFoundError,
    PromotionConflictError,
    RegistryError,
    RollbackError,
)
from .gate import decide, decision_tags
from .model import OrderFlowModel
from .records import AuditEvent, ModelRecord, PromotionDecision
from .tickers import normalize_ticker
from .versions import VersionCatalog

__all__ = ["GateCall", "apply_gate", "gate_applied", "gate_decision", "place", "promote",
           "remove_alias", "rollback"]


def _conflict(alias: str, ticker: str, current: int | None, expected: object) -> PromotionConflictError:
    return PromotionConflictError(f"{alias} of {ticker} moved to version {current} while you "
                                  f"expected {expected}; read the status again and retry")


@dataclass(frozen=True)
class GateCall:
    """The gate's decision on a candidate, made before its version exists.

    ``tags`` are the ``gate.*`` version tags to register the version with;
    ``seen`` the aliases the decision was made against (the compare-and-set of
    :func:`place`).
    """

    decision: PromotionDecision
    tags: dict[str, str]
    seen: dict[str, int]


def gate_decision(registry: VersionCatalog, ticker: str, candidate: OrderFlowModel,
                  X_valid: pd.DataFrame | None = None,
                  y_valid: pd.DataFrame | None = None) -> GateCall:
    """Champion/challenger (:func:`ticker_registry.gate.decide`) against today's production.

    ``X_valid``/``y_valid`` are the candidate's last walk-forward test block
    (``TrainingResult.X_valid``); production is loaded and scored on the rows
    of it that lie after its own training data.
    """
    cfg = registry.config
    ticker = normalize_ticker(ticker)
    try:
        seen = dict(registry.model(ticker).aliases)
    except ModelNotFoundError:  # the ticker's first version: nothing serves yet
        seen = {}
    champion_version = seen.get(cfg.production_alias)
    champion = last_event = None
    if champion_version is not None:
        champion = registry.load_model(ticker, champion_version)
        last_event = registry.get_version(ticker, champion_version).tags.get("lineage.last_trade")
    decision, comparisons = decide(candidate, champion=champion,
                                   champion_version=champion_version,
                                   champion_last_event=last_event, X_holdout=X_valid,
                                   y_holdout=y_valid, cfg=cfg)
    return GateCall(decision, decision_tags(decision, comparisons), seen)


def place(registry: VersionCatalog, ticker: str, version: int, call: GateCall) -> None:
    """Move the alias the gate chose to ``version`` (compare-and-set against ``call.seen``)."""
    decision = call.decision
    promote(registry, ticker, version, to=decision.alias,
            reason=f"gate: {decision.reason}"[:1000], expected=call.seen.get(decision.alias),
            action="gate")


def apply_gate(registry: VersionCatalog, ticker: str, version: int, candidate: OrderFlowModel,
               X_valid: pd.DataFrame | None = None,
               y_valid: pd.DataFrame | None = None) -> PromotionDecision:
    """Champion/challenger on an existing ``version``: decide, tag the version, place it.

    A training decides before it registers (:func:`gate_decision`) and writes the
    tags with the version; this is for versions that exist already (imports, a
    retried training whose gate never ran).
    """
    call = gate_decision(registry, ticker, candidate, X_valid, y_valid)
    for key, value in call.tags.items():
        registry.set_version_tag(ticker, version, key, value)
    place(registry, ticker, version, call)
    return call.decision


def gate_applied(registry: VersionCatalog, ticker: str, version: int) -> bool:
    """True when the gate already placed ``version``: an alias holds it or the audit trail
    records the gate's move (the ``gate.*`` tags are written before the move, so they
    alone do not prove it happened)."""
    state = registry.model(ticker)
    if int(version) in state.aliases.values():
        return True
    return any(e.action == "gate" and e.to_version == int(version)
               for e in registry.audit.events(state))


def promote(registry: VersionCatalog, ticker: str, version: int, *, to: str | None = None,
            reason: str = "", expected: int | None | str = "current",
            action: str = "promote") -> AuditEvent:
    """Point alias ``to`` (default production) at ``version``, compare-and-set.

    ``expected`` is the version the caller last saw on the alias (None: the
    alias was unset). With the default ``"current"`` the alias is read at call
    time, so only a move that lands between that read and the write is
    reported. A lost race raises :class:`PromotionConflictError`.
    """
    cfg = registry.config
    ticker = normalize_ticker(ticker)
    alias = to or cfg.production_alias
    if alias not in (cfg.production_alias, cfg.staging_alias):
        raise InvalidArgumentError(f"unknown alias {alias!r}; use {cfg.production_alias!r} "
                            f"or {cfg.staging_alias!r}")
    target = registry.get_version(ticker, int(version))
    if target.status != "READY":
        raise RegistryError(f"{target.name} version {version} is {target.status}, not READY")
    if expected == "current":
        expected = registry.model(ticker).aliases.get(alias)
    with registry.lock(ticker):
        state = registry.model(ticker)
        current = state.aliases.get(alias)
        if current != expected:
            raise _conflict(alias, ticker, current, expected)
        registry.store.set_alias(state.name, alias, int(version))
        event = registry.audit.append(state, ticker, action=action, alias=alias,
                                      from_version=current, to_version=int(version),
                                      reason=reason)
        if alias == cfg.production_alias and action != "gate" \
                and state.aliases.get(cfg.staging_alias) == int(version):
            registry.store.delete_alias(state.name, cfg.staging_alias)
            registry.audit.append(state, ticker, action=action, alias=cfg.staging_alias,
                                  from_version=int(version), to_version=None,
                                  reason=f"v{version} is now {alias}")
        if cfg.mirror_stages:
            stage = "Production" if alias == cfg.production_alias else "Staging"
            registry.store.mirror_stage(state.name, int(version), stage)
        _refresh_description(registry, ticker)
    return event


def remove_alias(registry: VersionCatalog, ticker: str, alias: str, *, reason: str,
                 action: str = "remove") -> AuditEvent | None:
    """Take ``alias`` off ``ticker`` under its lock, recorded in the audit trail."""
    ticker = normalize_ticker(ticker)
    with registry.lock(ticker):
        state = registry.model(ticker)
        current = state.aliases.get(alias)
        if current is None:
            return None
        registry.store.delete_alias(state.name, alias)
        event = registry.audit.append(state, ticker, action=action, alias=alias,
                                      from_version=current, to_version=None, reason=reason)
        _refresh_description(registry, ticker)
    return event


def rollback(registry: VersionCatalog, ticker: str, *, to_version: int | None = None,
             reason: str = "", expected: int | None | str = "current") -> AuditEvent:
    """Move production back to the previous production version (or ``to_version``).

    Raises
    ------
    RollbackError
        No earlier production version, or the target is deleted / not READY.
    """
    ticker = normalize_ticker(ticker)
    alias = registry.config.production_alias
    state = registry.model(ticker)
    current = state.aliases.get(alias)
    if expected != "current" and expected != current:
        raise _conflict(alias, ticker, current, expected)
    if to_version is None:
        history = production_history(registry.audit.events(state), alias, current)
        if len(history) < 2:
            raise RollbackError(f"{ticker} has no earlier production version to roll back to; "
                                "name one with --to-version")
        to_version = history[-2]
    try:
        target = registry.get_version(ticker, int(to_version))
    except ModelNotFoundError:
        raise RollbackError(f"cannot roll {ticker} back to version {to_version}: it does not "
                            f"exist (deleted?); see `ticker-registry versions {ticker}`") from None
    if target.status != "READY":
        raise RollbackError(f"cannot roll {ticker} back to version {to_version}: "
                            f"it is {target.status}")
    if target.version == current:
        raise RollbackError(f"version {to_version} of {ticker} is already {alias}")
    return promote(registry, ticker, target.version, to=alias, expected=current,
                   action="rollback", reason=reason or f"rollback from v{current}")


def _refresh_description(registry: VersionCatalog, ticker: str) -> None:
    state: ModelRecord = registry.model(ticker)
    prod = state.aliases.get(registry.config.production_alias)
    text = model_description(ticker, registry.get_version(ticker, prod) if prod is not None else None)
    if text != state.description:
        registry.store.set_model_description(state.name, text)
