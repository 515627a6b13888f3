"""Read-only views over the registry: status, the seed's metadata, compare, best.

Every view is built from one snapshot of the namespace (registered models with
their aliases and tags, their live version counts, and the versions that matter
with their tags: the newest and the aliased ones; one read of MLflow's tables on a
SQL store, else two paged searches), never one round trip per ticker, and its
cost does not grow with a ticker's history; it reads only the tags the views show
(:data:`VIEW_TAGS`). Versions carry no aliases there (``search_model_versions``
returns none, an MLflow bug), so aliases come from the registered models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .evaluation import HEADS, LOSS_METRICS, SKILL_SCORE_METRICS, served_skill_score
from .exceptions import InvalidArgumentError, ModelNotFoundError
from .lineage import SAMPLES_TAG, SESSIONS_TAG, training_totals
from .records import HEADLINE_METRICS, VersionInfo

if TYPE_CHECKING:
    from .registry import TickerRegistry

__all__ = ["LOWER_IS_BETTER", "SKILL_SCORE", "best", "compare", "metadata", "status"]

#: Metrics where a smaller value is better (for ``best`` and ``compare``).
LOWER_IS_BETTER = (*LOSS_METRICS.values(), *(f"{head}_mae" for head in HEADS[1:]))
#: The ranking ``best`` uses by default: the skill a version serves, averaged over heads
#: (:func:`ticker_registry.evaluation.served_skill_score`), comparable across tickers.
SKILL_SCORE = "skill_score"
_BASELINES = ("baseline_flow_type_accuracy", "baseline_impact_mse")
#: The version tags the multi-ticker views show (the snapshot reads no others).
VIEW_TAGS = frozenset({
    "ticker", "model_type", "created_at", "gate.decision", "gate.reason", SESSIONS_TAG,
    SAMPLES_TAG, *(f"serving.{h}" for h in HEADS),
    *(f"metric.{m}" for m in (*HEADLINE_METRICS, *_BASELINES, *SKILL_SCORE_METRICS))})


def _metric(info: VersionInfo, metric: str) -> float | None:
    if metric == SKILL_SCORE:
        return served_skill_score(info.metrics)
    return info.metrics.get(metric)


def _serving(info: VersionInfo | None) -> str | None:
    if info is None:
        return None
    return ", ".join(f"{h}={info.tags.get(f'serving.{h}', 'model')}" for h in HEADS)


def _snapshot(registry: TickerRegistry, metric: str | None = None,
              every_tag: bool = False) -> list[dict[str, Any]]:
    keys = None if every_tag else VIEW_TAGS | ({f"metric.{metric}"} if metric else set())
    snap = registry.snapshot(keys)
    by_name: dict[str, list[VersionInfo]] = {}
    for info in snap.versions:
        by_name.setdefault(info.name, []).append(info)
    out = []
    for state in sorted(snap.models, key=lambda s: s.name):
        out.append({"state": state, "count": snap.counts.get(state.name, 0),
                    "versions": sorted(by_name.get(state.name, []), key=lambda v: v.version)})
    return out


def status(registry: TickerRegistry) -> list[dict[str, Any]]:
    """One row per ticker: aliases, headline metrics of production, training counters."""
    cfg = registry.config
    rows = []
    for item in _snapshot(registry):
        state, versions = item["state"], item["versions"]
        by_number = {v.version: v for v in versions}
        prod = state.aliases.get(cfg.production_alias)
        staging = state.aliases.get(cfg.staging_alias)
        newest = versions[-1] if versions else None
        shown = by_number.get(prod) if prod is not None else newest
        metrics = shown.metrics if shown else {}
        rows.append({
            "ticker": state.tags.get("ticker") or registry.ticker_of(state.name),
            "model_name": state.name,
            "production": prod,
            "staging": staging,
            "latest": newest.version if newest else None,
            "versions": item["count"],
            "model_type": shown.tags.get("model_type") if shown else None,
            **{m: metrics.get(m) for m in HEADLINE_METRICS},
            **{m: metrics.get(m) for m in _BASELINES},
            SKILL_SCORE: served_skill_score(metrics) if shown else None,
            "serving": _serving(shown),
            # where the gate put the newest version, and why (visible when it does not serve)
            "decision": newest.tags.get("gate.decision") if newest else None,
            "decision_reason": newest.tags.get("gate.reason") if newest else None,
            **dict(zip(("training_sessions", "total_samples"),
                       training_totals(newest, state.tags), strict=True)),
            "last_trained": (newest.tags.get("created_at") or newest.created_at if newest
                             else state.tags.get("last_trained")) or None,
            "created_at": state.tags.get("created_at") or None,
        })
    return rows


def metadata(registry: TickerRegistry) -> dict[str, dict[str, Any]]:
    """The seed's ``model_metadata.json``: one entry per ticker, exactly its schema."""
    out = {}
    for row in status(registry):
        out[row["ticker"]] = {
            "created_at": row["created_at"],
            "training_sessions": row["training_sessions"],
            "total_samples": row["total_samples"],
            "last_trained": row["last_trained"],
            "performance_metrics": {m: row[m] for m in HEADLINE_METRICS},
            "model_version": row["production"] if row["production"] is not None else row["latest"],
        }
    return out


def compare(registry: TickerRegistry, ticker: str, v1: int, v2: int) -> list[dict[str, Any]]:
    """Two versions side by side: their recorded scores, and the gate's verdict between them.

    Each version's walk-forward scores were measured on its own training data, so
    they are shown but never called better or worse against each other. Where the
    gate compared the two (one was the production version when the other was
    gated), its per-head verdicts on their common out-of-sample rows and its
    decision are the rows ``gate: ...``: ``compare`` and the gate cannot disagree,
    because ``compare`` reports the gate's own figures.
    """
    a = registry.get_version(ticker, v1)
    b = registry.get_version(ticker, v2)
    rows = []
    for metric in sorted(set(a.metrics) | set(b.metrics)):
        x, y = a.metrics.get(metric), b.metrics.get(metric)
        diff = None if x is None or y is None else y - x
        rows.append({"metric": metric, f"v{v1}": x, f"v{v2}": y, "difference": diff,
                     "better": None, "note": "own walk-forward data"})
    gated = _gated_pair(a, b)
    if gated is None:
        rows.append({"metric": "gate", f"v{v1}": None, f"v{v2}": None, "difference": None,
                     "better": None, "note": f"the gate never compared v{v1} with v{v2}"})
        return rows
    cand, champ = gated
    for head in HEADS:
        verdict = cand.tags.get(f"gate.{head}.verdict")
        if verdict is None:
            continue
        losses = {cand.version: _float(cand.tags.get(f"gate.{head}.candidate_loss")),
                  champ.version: _float(cand.tags.get(f"gate.{head}.production_loss"))}
        better = cand.version if verdict == "better" else champ.version if verdict == "worse" else None
        x, y = losses[a.version], losses[b.version]
        rows.append({"metric": f"gate: {head} loss on common out-of-sample rows",
                     f"v{v1}": x, f"v{v2}": y,
                     "difference": None if x is None or y is None else y - x,
                     "better": better, "note": f"{verdict}, z={cand.tags.get(f'gate.{head}.z')}"})
    promoted = cand.tags.get("gate.decision") == "production"
    rows.append({"metric": "gate: decision", f"v{v1}": None, f"v{v2}": None, "difference": None,
                 "better": cand.version if promoted else champ.version,
                 "note": cand.tags.get("gate.reason", "")})
    return rows


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _gated_pair(a: VersionInfo, b: VersionInfo) -> tuple[VersionInfo, VersionInfo] | None:
    """(candidate, champion) when the gate compared these two versions, else None."""
    for cand, champ in ((b, a), (a, b)):
        if cand.tags.get("gate.champion_version") == str(champ.version):
            return cand, champ
    return None


def best(registry: TickerRegistry, metric: str = SKILL_SCORE,
         n: int = 10) -> list[dict[str, Any]]:
    """The ``n`` tickers whose production version is best on ``metric``.

    The default, ``skill_score``, ranks by the skill each version serves over its
    own naive baselines: raw scores such as accuracy are not comparable across
    tickers (each has its own class balance and baseline).
    """
    if n < 1:
        raise InvalidArgumentError(f"n must be at least 1, got {n}")
    rows = [r for r in _metric_rows(registry, metric) if r["value"] is not None]
    known = _known_metrics(registry)
    if not rows and known and metric not in known and metric != SKILL_SCORE:
        raise ModelNotFoundError(f"no version has metric {metric!r}; known metrics: "
                                 f"{', '.join(sorted(known))}")
    reverse = metric not in LOWER_IS_BETTER
    rows.sort(key=lambda r: r["value"], reverse=reverse)
    for rank, row in enumerate(rows[:n], 1):
        row["rank"] = rank
    return rows[:n]


def _metric_rows(registry: TickerRegistry, metric: str) -> list[dict[str, Any]]:
    out = []
    cfg = registry.config
    for item in _snapshot(registry, metric):
        state, versions = item["state"], item["versions"]
        prod = state.aliases.get(cfg.production_alias)
        chosen = next((v for v in versions if v.version == prod), None)
        if chosen is None:
            continue
        value = _metric(chosen, metric)
        if value is not None and not math.isfinite(value):
            value = None
        out.append({"ticker": chosen.ticker, "version": chosen.version, "metric": metric,
                    "value": value})
    return out


def _known_metrics(registry: TickerRegistry) -> set[str]:
    names: set[str] = set()
    for item in _snapshot(registry, every_tag=True):
        for v in item["versions"]:
            names.update(v.metrics)
    return names


def version_rows(versions: Sequence[VersionInfo], audit: Sequence[Any]) -> list[dict[str, Any]]:
    """History of a ticker for the ``versions`` view: metrics, aliases, lineage, moves."""
    moves: dict[int, list[str]] = {}
    for event in audit:
        if event.to_version is not None:
            moves.setdefault(event.to_version, []).append(
                f"{event.when} {event.action} -> {event.alias}")
    rows = []
    for v in versions:
        rows.append({
            "version": v.version,
            "aliases": list(v.aliases),
            "created_at": v.created_at,
            "model_type": v.tags.get("model_type"),
            **{m: v.metrics.get(m) for m in HEADLINE_METRICS},
            SKILL_SCORE: served_skill_score(v.metrics),
            "serving": _serving(v),
            "samples": int(v.tags.get("lineage.n_samples", "0") or 0),
            "first_trade": v.tags.get("lineage.first_trade") or None,
            "last_trade": v.tags.get("lineage.last_trade") or None,
            "source": v.tags.get("lineage.source"),
            "gate": v.tags.get("gate.reason"),
            "moves": moves.get(v.version, []),
        })
    return rows
