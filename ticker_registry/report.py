"""A static HTML report of every ticker model: one self-contained file.

``write_report(registry, path)`` reads the registry (the status rows' two paged
searches, one paged search of every version's metrics, and each ticker's audit
trail) and writes one HTML file with

* a table per ticker: production and staging versions, headline metrics
  against their naive baselines, samples, last training and model age;
* the best and worst tickers by the promotion gate's skill score;
* each ticker's metric history across its versions, as charts;
* a timeline of alias moves (gate decisions, promotions, rollbacks).

Charts are drawn with matplotlib's Agg renderer and embedded as base64 PNG,
so the file needs no network and no JavaScript to read. The markup is in the
(autoescaped) Jinja2 templates ``templates/report.html.j2`` and its partials.
"""

from __future__ import annotations

import base64
import errno
import functools
import io
import math
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from .evaluation import HEADS, head_skill
from .evaluation import served_skill_score as skill_score
from .records import AuditEvent, VersionInfo
from .redaction import redact_uri
from .views import status

if TYPE_CHECKING:
    from .registry import TickerRegistry

__all__ = ["ReportData", "TickerSummary", "collect_report", "render_report", "template_context",
           "write_report"]


_LOSS_NAMES = {"flow_type": ("logloss", "log-loss")}  # every other head: ("mse", "MSE")
#: (head, its headline loss as each version records it, that loss's naive baseline, label);
#: names as evaluation_rows gives them; lower is better for every one.
_HEAD_METRICS = tuple((h, f"{h}_{short}", f"baseline_{h}_{short}", f"{h} {label}")
                      for h in HEADS for short, label in [_LOSS_NAMES.get(h, ("mse", "MSE"))])
_SKILL_KEYS = tuple(f"skill_{head}" for head in HEADS)
_CHART_EVENTS = 60  # alias moves drawn in the timeline chart (the table lists all)
_ACTION_STYLE = {"gate": ("o", "#3b75af"), "promote": ("^", "#2e7d32"), "rollback": ("v", "#c62828")}


@dataclass(frozen=True)
class TickerSummary:
    """One ticker's row of the report, with its version history."""

    ticker: str
    production: int | None
    staging: int | None
    shown: VersionInfo | None  # production, else the newest version
    versions: tuple[VersionInfo, ...]  # oldest first
    total_samples: int
    last_trained: str | None
    events: tuple[AuditEvent, ...]

    @property
    def skill(self) -> float | None:
        """The gate's skill score of the shown version (None without complete metrics)."""
        if self.shown is None or not all(k in self.shown.metrics for k in _SKILL_KEYS):
            return None
        value = skill_score(self.shown.metrics)
        return value if math.isfinite(value) else None


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows, read from the registry at ``generated_at``."""

    generated_at: datetime
    store: str
    namespace: str
    tickers: tuple[TickerSummary, ...]
    production_alias: str = "production"
    staging_alias: str = "staging"


def collect_report(registry: TickerRegistry, *, now: datetime | None = None) -> ReportData:
    """Read what the report needs from ``registry`` (read-only)."""
    cfg = registry.config
    rows = status(registry)
    by_name: dict[str, list[VersionInfo]] = {}
    if rows:
        for info in registry.search_versions(f"name LIKE '{cfg.namespace}.%'"):
            by_name.setdefault(info.name, []).append(info)
    tickers = []
    for row in rows:
        versions = tuple(sorted(by_name.get(row["model_name"], []), key=lambda v: v.version))
        numbers = {v.version: v for v in versions}
        shown = numbers.get(row["production"]) if row["production"] is not None else None
        tickers.append(TickerSummary(
            ticker=row["ticker"], production=row["production"], staging=row["staging"],
            shown=shown or (versions[-1] if versions else None), versions=versions,
            total_samples=row["total_samples"], last_trained=row["last_trained"],
            events=tuple(registry.audit_trail(row["ticker"]))))
    return ReportData(generated_at=now or datetime.now(UTC), store=redact_uri(registry.tracking_uri),
                      namespace=cfg.namespace, tickers=tuple(tickers),
                      production_alias=cfg.production_alias, staging_alias=cfg.staging_alias)


def write_report(registry: TickerRegistry, path: str | os.PathLike[str]) -> Path:
    """Write the HTML report of ``registry`` to ``path`` (atomically); return the path.

    Raises
    ------
    RegistryError
        The registry cannot be read.
    OSError
        ``path`` cannot be written.
    """
    target = Path(path)
    try:  # fail before reading the registry
        target.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise NotADirectoryError(errno.ENOTDIR, "not a folder, so it cannot hold the report",
                                 str(target.parent)) from None
    text = render_report(collect_report(registry))
    # A unique sibling opened with "x" keeps the umask's permissions (mkstemp would give 0600).
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, f"cannot write the report ({exc.strerror})",
                      str(target)) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


# ---------------------------------------------------------------------- rendering
def render_report(data: ReportData) -> str:
    """The report as one HTML document (inline CSS, base64 PNG charts, no scripts)."""
    return _environment().get_template("report.html.j2").render(template_context(data))


@functools.cache
def _environment() -> jinja2.Environment:
    # Autoescape every template (they all write HTML): tickers, tags and reasons are user text.
    return jinja2.Environment(
        loader=jinja2.PackageLoader("ticker_registry", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=True),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True)


def template_context(data: ReportData) -> dict[str, Any]:
    """What ``report.html.j2`` shows, as plain data: numbers (None when missing), version
    numbers, UTC datetimes, ages in seconds, charts as base64 PNG.

    Markup and display formatting live in the templates; nothing here is HTML.
    """
    rows = {t.ticker: _ticker_row(t, data.generated_at) for t in data.tickers}
    context: dict[str, Any] = {
        "namespace": data.namespace, "store": data.store,
        "generated": data.generated_at.astimezone(UTC),
        "n_versions": sum(len(t.versions) for t in data.tickers),
        "production_alias": data.production_alias, "staging_alias": data.staging_alias,
        "head_labels": [label for *_, label in _HEAD_METRICS],
        "tickers": [rows[t.ticker] for t in data.tickers],
        "best_worst": None, "timeline": None,
        "history": [{"ticker": t.ticker, "last_version": t.versions[-1].version if t.versions else None,
                     "chart": _history_chart(t, data) if t.versions else None} for t in data.tickers]}
    ranked = sorted((t for t in data.tickers if t.skill is not None), key=lambda t: -(t.skill or 0))
    if ranked:
        k = max(1, min(3, len(ranked) // 2))
        context["best_worst"] = {"best": [rows[t.ticker] for t in ranked[:k]],
                                 "worst": [rows[t.ticker] for t in ranked[::-1][:k]],
                                 "chart": _skill_chart(ranked)}
    events = sorted(((t.ticker, e) for t in data.tickers for e in t.events),
                    key=lambda te: (te[1].when, te[0], te[1].seq))
    if events:
        charted = events[-_CHART_EVENTS:]
        names = [t.ticker for t in data.tickers if any(ticker == t.ticker for ticker, _ in charted)]
        context["timeline"] = {
            "events": [{**e.to_dict(), "ticker": ticker, "when": _instant(e.when)} for ticker, e in events],
            "summary": ", ".join(f"{sum(e.action == a for _, e in events)} {a}"
                                 for a in ("gate", "promote", "rollback")),
            "charted": len(charted), "chart": _timeline_chart(charted, names)}
    return context


def _ticker_row(t: TickerSummary, now: datetime) -> dict[str, Any]:
    metrics = t.shown.metrics if t.shown else {}
    skilled = head_skill(metrics) if all(k in metrics for k in _SKILL_KEYS) else {}
    created = _instant(t.shown.created_at) if t.shown else None
    return {"ticker": t.ticker, "production": t.production, "staging": t.staging, "skill": t.skill,
            "shown": t.shown.version if t.shown else None, "n_versions": len(t.versions),
            "accuracy": metrics.get("flow_type_accuracy"),
            "baseline_accuracy": metrics.get("baseline_flow_type_accuracy"),
            "heads": [{"model": metrics.get(metric), "baseline": metrics.get(base),
                       "skilled": skilled.get(head)} for head, metric, base, _ in _HEAD_METRICS],
            "samples": t.shown.tags.get("lineage.n_samples") if t.shown else None,
            "total_samples": t.total_samples,
            "last_trained": _instant(t.last_trained),
            "age": max((now - created).total_seconds(), 0) if isinstance(created, datetime) else None}


# ---------------------------------------------------------------------- charts (base64 PNG)
def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure  # draws with Agg, never touches pyplot's state or a display

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(fig: Any) -> str:
    fig.savefig(buffer := io.BytesIO(), format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _history_chart(t: TickerSummary, data: ReportData) -> str:
    fig = _figure(10, 2.8)
    axes = fig.subplots(1, len(_HEAD_METRICS))
    numbers = [v.version for v in t.versions]
    for ax, (_, metric, base, label) in zip(axes, _HEAD_METRICS, strict=True):
        values = [v.metrics.get(metric, math.nan) for v in t.versions]
        baselines = [v.metrics.get(base, math.nan) for v in t.versions]
        ax.plot(numbers, values, "o-", color="#3b75af", label="model")
        ax.plot(numbers, baselines, "--", color="#888888", label="baseline")
        if t.production in numbers:
            i = numbers.index(t.production)
            ax.plot([t.production], [values[i]], "*", color="#e6a700", markersize=16,
                    markeredgecolor="#6b4f00", label=data.production_alias, zorder=3)
        ax.set_title(f"{label} (lower is better)", fontsize=9)
        ax.set_xlabel("version", fontsize=8)
        ax.set_xticks(numbers)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(t.ticker, fontsize=11, fontweight="bold")
    return _png(fig)


def _skill_chart(ranked: Sequence[TickerSummary]) -> str:
    fig = _figure(7, min(0.9 + 0.32 * len(ranked), 40))
    ax = fig.subplots()
    names = [t.ticker for t in reversed(ranked)]
    values = [t.skill or 0.0 for t in reversed(ranked)]
    ax.barh(names, values, color=["#2e7d32" if v > 0 else "#c62828" for v in values])
    ax.axvline(0, color="#333333", linewidth=0.8)
    ax.set_xlabel("skill score over the naive baselines")
    ax.tick_params(labelsize=8)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def _timeline_chart(events: Sequence[tuple[str, AuditEvent]], tickers: Sequence[str]) -> str:
    # One column per move, in order: moves seconds apart and months apart stay readable.
    fig = _figure(10, min(1.6 + 0.35 * len(tickers), 40))
    ax = fig.subplots()
    row = {name: i for i, name in enumerate(tickers)}
    for action in sorted({e.action for _, e in events}):
        marker, color = _ACTION_STYLE.get(action, ("s", "#555555"))
        picked = [(i, row[ticker]) for i, (ticker, e) in enumerate(events) if e.action == action]
        ax.scatter([p[0] for p in picked], [p[1] for p in picked], marker=marker, s=70,
                   color=color, label=action, zorder=3)
    for i, (ticker, e) in enumerate(events):
        ax.annotate(f"{e.alias[:4]} v{e.to_version}", (i, row[ticker]),
                    textcoords="offset points", xytext=(0, 8), ha="center", fontsize=7)
    step = max(1, math.ceil(len(events) / 20))
    ticks = list(range(0, len(events), step))
    when = [_instant(events[i][1].when) for i in ticks]
    ax.set_xticks(ticks, [w.strftime("%m-%d %H:%M") if isinstance(w, datetime) else str(w) for w in when],
                  rotation=35, ha="right", fontsize=7)
    ax.set_yticks(range(len(tickers)), tickers)
    ax.set(xlim=(-0.7, len(events) - 0.3), ylim=(-0.7, len(tickers) - 0.2))
    ax.set_xlabel("alias moves in order (UTC)", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(fig)


# ---------------------------------------------------------------------- timestamps
def _instant(text: str | None) -> datetime | str | None:
    # A recorded timestamp in UTC (a naive one is UTC); text that is not ISO 8601 stays as it is.
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return text
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
