"""Frozen records exchanged between the registry, the manager and the CLI.

They are plain data: built from MLflow entities by the registry adapter
(:mod:`ticker_registry.store`), so no MLflow type travels above it, and turned
into JSON by ``to_dict`` for the CLI's stable ``--format json``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["AuditEvent", "ModelRecord", "PreloadResult", "PromotionDecision", "RunRecord", "Snapshot",
           "TrainOutcome", "TrainingLineage", "VersionInfo", "metric_tags"]

#: Metric names copied to model-version tags (prefix ``metric.``).
HEADLINE_METRICS = ("flow_type_accuracy", "impact_mse", "time_to_execution_mse")


def metric_tags(tags: dict[str, str]) -> dict[str, float]:
    """The finite numeric ``metric.*`` tags; a tag set by hand in the UI (``metric.note=see
    notebook``) is kept as a tag but never breaks a view."""
    out = {}
    for key, value in tags.items():
        if key.startswith("metric."):
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if math.isfinite(number):
                out[key[7:]] = number
    return out


@dataclass(frozen=True)
class ModelRecord:
    """A registered model: its aliases (alias -> version), tags and description."""

    name: str
    aliases: dict[str, int]
    tags: dict[str, str]
    description: str = ""


@dataclass(frozen=True)
class Snapshot:
    """Registered models, their live version counts, and their head versions.

    ``versions`` holds, per model, the newest live version and every version an
    alias points to (full tags, no aliases: those are on the models);
    ``counts`` maps a model name to its number of live versions.
    """

    models: list[ModelRecord]
    versions: list[VersionInfo]
    counts: dict[str, int]


@dataclass(frozen=True)
class RunRecord:
    """An MLflow run as the package reads it."""

    run_id: str
    status: str
    start_time_ms: int
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]


@dataclass(frozen=True)
class TrainingLineage:
    """Where a version's training data came from."""

    n_samples: int
    first_trade: str | None = None
    last_trade: str | None = None
    fingerprint: str = ""
    source: str = "trades"
    extra: dict[str, str] = field(default_factory=dict)

    def tags(self) -> dict[str, str]:
        out = {
            "lineage.n_samples": str(self.n_samples),
            "lineage.first_trade": self.first_trade or "",
            "lineage.last_trade": self.last_trade or "",
            "lineage.fingerprint": self.fingerprint,
            "lineage.source": self.source,
        }
        out.update({f"lineage.{k}": str(v) for k, v in self.extra.items()})
        return out


@dataclass(frozen=True)
class VersionInfo:
    """One model version of a ticker, as the registry reports it."""

    ticker: str
    name: str
    version: int
    run_id: str | None
    created_at: str
    aliases: tuple[str, ...]
    metrics: dict[str, float]
    tags: dict[str, str]
    source: str
    status: str = "READY"
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["aliases"] = list(self.aliases)
        return data


@dataclass(frozen=True)
class AuditEvent:
    """One move of an alias: who moved it, from which version to which, and why."""

    seq: int
    when: str
    action: str
    alias: str
    from_version: int | None
    to_version: int | None
    reason: str
    user: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AuditEvent:
        return cls(**json.loads(text))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PromotionDecision:
    """The outcome of the champion/challenger gate for one candidate version."""

    promoted: bool
    alias: str
    reason: str
    candidate_scores: dict[str, float]
    champion_scores: dict[str, float]
    champion_version: int | None
    skill: dict[str, bool]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainOutcome:
    """A training's registered version and where the gate put it."""

    ticker: str
    version: VersionInfo
    created: bool
    decision: PromotionDecision | None

    def to_dict(self) -> dict[str, Any]:
        return {"ticker": self.ticker, "version": self.version.version, "created": self.created,
                "alias": self.decision.alias if self.decision else None,
                "promoted": self.decision.promoted if self.decision else None,
                "reason": self.decision.reason if self.decision else "already registered",
                "metrics": self.version.metrics}


@dataclass(frozen=True)
class PreloadResult:
    """How loading one ticker's production model into the cache went."""

    ticker: str
    ok: bool
    version: int | None
    seconds: float
    size_bytes: int
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)
