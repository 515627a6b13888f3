"""The registry: ticker models registered, read and moved between aliases.

:class:`TickerRegistry` is :class:`~ticker_registry.versions.VersionCatalog`
(registration and reads) plus the alias moves of :mod:`ticker_registry.aliases`
(gate placement, promote, rollback, removal) and the audit trail they write.
Only :mod:`ticker_registry.store` talks to MLflow.
"""

from __future__ import annotations

import pandas as pd

from . import aliases
from .model import OrderFlowModel
from .records import AuditEvent, PromotionDecision
from .store import ARTIFACT_ROOT, DEFAULT_MODELS_DIR, resolve_tracking_uri
from .versions import VersionCatalog

__all__ = ["ARTIFACT_ROOT", "DEFAULT_MODELS_DIR", "TickerRegistry", "resolve_tracking_uri"]


class TickerRegistry(VersionCatalog):
    """Register, promote, roll back and view ticker models in one MLflow registry.

    Constructed as :class:`~ticker_registry.versions.VersionCatalog` (config,
    ``tracking_uri``, ``models_dir``).
    """

    def apply_gate(self, ticker: str, version: int, candidate: OrderFlowModel,
                   X_valid: pd.DataFrame | None = None,
                   y_valid: pd.DataFrame | None = None) -> PromotionDecision:
        """Champion/challenger: decide (:func:`ticker_registry.gate.decide`) and apply."""
        return aliases.apply_gate(self, ticker, version, candidate, X_valid, y_valid)

    def gate_decision(self, ticker: str, candidate: OrderFlowModel,
                      X_valid: pd.DataFrame | None = None,
                      y_valid: pd.DataFrame | None = None) -> aliases.GateCall:
        """The gate's decision before the version exists (:func:`.aliases.gate_decision`)."""
        return aliases.gate_decision(self, ticker, candidate, X_valid, y_valid)

    def place(self, ticker: str, version: int, call: aliases.GateCall) -> None:
        """Move the alias the gate chose to ``version`` (:func:`.aliases.place`)."""
        aliases.place(self, ticker, version, call)

    def gate_applied(self, ticker: str, version: int) -> bool:
        """True when the gate already placed ``version`` (see :func:`.aliases.gate_applied`)."""
        return aliases.gate_applied(self, ticker, version)

    def promote(self, ticker: str, version: int, *, to: str | None = None, reason: str = "",
                expected: int | None | str = "current", action: str = "promote") -> AuditEvent:
        """Point alias ``to`` (default production) at ``version``, compare-and-set
        (see :func:`.aliases.promote`)."""
        return aliases.promote(self, ticker, version, to=to, reason=reason, expected=expected,
                               action=action)

    def rollback(self, ticker: str, *, to_version: int | None = None, reason: str = "",
                 expected: int | None | str = "current") -> AuditEvent:
        """Move production back to the previous production version (or ``to_version``)."""
        return aliases.rollback(self, ticker, to_version=to_version, reason=reason,
                                expected=expected)

    def remove_alias(self, ticker: str, alias: str, *, reason: str,
                     action: str = "remove") -> AuditEvent | None:
        """Take ``alias`` off ``ticker`` (recorded in the audit trail); None if it was unset."""
        return aliases.remove_alias(self, ticker, alias, reason=reason, action=action)

    def audit_trail(self, ticker: str) -> list[AuditEvent]:
        """Every alias move of ``ticker``, oldest first."""
        return self.audit.events(self.model(ticker))
