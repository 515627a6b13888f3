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
so the file needs no network and no JavaScript to read.
"""

from __future__ import annotations

import base64
import errno
import html
import io
import math
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .evaluation import head_skill
from .evaluation import served_skill_score as skill_score
from .records import AuditEvent, VersionInfo
from .redaction import redact_uri
from .views import status

if TYPE_CHECKING:
    from .registry import TickerRegistry

__all__ = ["ReportData", "TickerSummary", "collect_report", "render_report", "write_report"]

#: (head, its headline metric, the metric's naive baseline, label, True when higher is better)
HEADS = (
    ("flow_type", "flow_type_logloss", "baseline_flow_type_logloss", "flow_type log-loss", False),
    ("impact", "impact_mse", "baseline_impact_mse", "impact MSE", False),
    ("time_to_execution", "time_to_execution_mse", "baseline_time_to_execution_mse",
     "time_to_execution MSE", False),
)
_SKILL_KEYS = ("skill_flow_type", "skill_impact", "skill_time_to_execution")
_SECTIONS = (("tickers", "Tickers"), ("best-worst", "Best and worst"),
             ("history", "Metric history"), ("timeline", "Promotions and rollbacks"))
_FOOTER = ("Written by ticker-registry. Metrics are purged walk-forward (out-of-sample) scores "
           "recorded with each version, beside the head's best naive baseline (class prior for "
           "log-loss, a constant for MSE). Skill score = mean over heads of the skill each "
           "version serves (1 - loss/baseline loss where the model serves, 0 where the baseline "
           "does), the ranking used by best.")
_SKILL_MARK = {True: ' <span class="ok" title="beats the baseline">✓</span>',
               False: ' <span class="bad" title="no skill over the baseline">✗</span>', None: ""}
_CHART_EVENTS = 60  # alias moves drawn in the timeline chart (the table lists all)
_ACTION_STYLE = {"gate": ("o", "#3b75af"), "promote": ("^", "#2e7d32"),
                 "rollback": ("v", "#c62828")}


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
    n_versions = sum(len(t.versions) for t in data.tickers)
    meta = (f"{len(data.tickers)} tickers, {n_versions} versions in namespace "
            f"<code>{_e(data.namespace)}</code> of <code>{_e(data.store)}</code>; generated "
            f"{_e(_when(data.generated_at))}.")
    nav = " · ".join(f'<a href="#{anchor}">{title}</a>' for anchor, title in _SECTIONS)
    if data.tickers:
        body = [_ticker_table(data), _best_worst(data), _history(data), _timeline(data)]
    else:
        body = [(f'<p class="empty">No ticker models in namespace <code>{_e(data.namespace)}'
                 "</code> yet. Train one with <code>ticker-registry train</code> or run "
                 "<code>ticker-registry demo</code>.</p>")]
    parts = [
        "<!doctype html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Ticker model report: {_e(data.namespace)}</title>", f"<style>{_CSS}</style>",
        "</head>", "<body>", "<header>", "<h1>Ticker model report</h1>",
        f'<p class="meta">{meta}</p>', f"<nav>{nav}</nav>", "</header>", "<main>", *body,
        "</main>", f"<footer>{_FOOTER}</footer>", "</body>", "</html>", "",
    ]
    return "\n".join(parts)


def _ticker_table(data: ReportData) -> str:
    head = (f"<tr><th>Ticker</th><th>{_e(data.production_alias)}</th>"
            f"<th>{_e(data.staging_alias)}</th><th>Versions</th>"
            + "".join(f"<th>{_e(label)}<br><span class=\"sub\">model / baseline</span></th>"
                      for *_, label, _ in HEADS)
            + "<th>Skill score</th><th>Samples<br><span class=\"sub\">production / all</span>"
              "</th><th>Last trained<br><span class=\"sub\">UTC</span></th><th>Model age</th></tr>")
    rows = []
    for t in data.tickers:
        metrics = t.shown.metrics if t.shown else {}
        cells = [f"<th scope=\"row\"><a href=\"#history-{_e(t.ticker)}\">{_e(t.ticker)}</a></th>",
                 f"<td>{_version(t.production)}</td>", f"<td>{_version(t.staging)}</td>",
                 f"<td>{len(t.versions)}</td>"]
        skill = head_skill(metrics) if all(k in metrics for k in _SKILL_KEYS) else {}
        for name, metric, base, _, _ in HEADS:
            cells.append(f"<td>{_num(metrics.get(metric))} / {_num(metrics.get(base))}"
                         f"{_SKILL_MARK[skill.get(name)]}</td>")
        samples = t.shown.tags.get("lineage.n_samples") if t.shown else None
        age = None
        if t.shown and t.shown.created_at:
            age = data.generated_at - _parse(t.shown.created_at)
        cells += [f"<td>{_num(t.skill)}</td>",
                  f"<td>{_e(samples or '-')} / {t.total_samples}</td>",
                  f"<td>{_e(_short(t.last_trained, utc=False))}</td>", f"<td>{_e(_age(age))}</td>"]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    shown_note = (f"Metrics are those of the <code>{_e(data.production_alias)}</code> version "
                  "(the newest version where no version is in production).")
    return (f"<section id=\"tickers\"><h2>Tickers</h2><p>{shown_note}</p>"
            f"<div class=\"wide\"><table class=\"tickers\"><thead>{head}</thead><tbody>"
            f"{''.join(rows)}</tbody></table></div></section>")


def _best_worst(data: ReportData) -> str:
    ranked = sorted((t for t in data.tickers if t.skill is not None), key=lambda t: -(t.skill or 0))
    if not ranked:
        return ("<section id=\"best-worst\"><h2>Best and worst</h2><p>No ticker has complete "
                "holdout metrics yet.</p></section>")
    k = max(1, min(3, len(ranked) // 2))
    best, worst = ranked[:k], ranked[::-1][:k]

    def items(group: Sequence[TickerSummary]) -> str:
        out = []
        for t in group:
            m = t.shown.metrics if t.shown else {}
            out.append(f"<li><strong>{_e(t.ticker)}</strong> v{t.shown.version if t.shown else '-'}"
                       f": skill score {_num(t.skill)} (flow_type accuracy "
                       f"{_num(m.get('flow_type_accuracy'))} vs "
                       f"{_num(m.get('baseline_flow_type_accuracy'))})</li>")
        return "".join(out)

    chart = _img(_skill_chart(ranked), "Skill score of each ticker's production version",
                 "skill-chart")
    return ("<section id=\"best-worst\"><h2>Best and worst</h2><div class=\"cols\">"
            f"<div><h3>Best</h3><ol>{items(best)}</ol></div>"
            f"<div><h3>Worst</h3><ol>{items(worst)}</ol></div></div>"
            f"<figure>{chart}<figcaption>Skill score of each ticker's "
            f"{_e(data.production_alias)} version; 0 is the naive baseline.</figcaption></figure>"
            "</section>")


def _history(data: ReportData) -> str:
    figures = []
    for t in data.tickers:
        if not t.versions:
            figures.append(f"<p id=\"history-{_e(t.ticker)}\">{_e(t.ticker)}: no versions.</p>")
            continue
        img = _img(_history_chart(t, data), f"{t.ticker} metric history", "history-chart")
        figures.append(f"<figure id=\"history-{_e(t.ticker)}\">{img}<figcaption>"
                       f"{_e(t.ticker)}: holdout metrics of versions 1–{t.versions[-1].version} "
                       f"(solid) and their baselines (dashed); ★ marks "
                       f"{_e(data.production_alias)}.</figcaption></figure>")
    return f"<section id=\"history\"><h2>Metric history</h2>{''.join(figures)}</section>"


def _timeline(data: ReportData) -> str:
    events = sorted(((t.ticker, e) for t in data.tickers for e in t.events),
                    key=lambda te: (te[1].when, te[0], te[1].seq))
    if not events:
        return ("<section id=\"timeline\"><h2>Promotions and rollbacks</h2><p>No alias has moved "
                "yet.</p></section>")
    rows = "".join(
        f"<tr class=\"{_e(e.action)}\"><td>{_e(_short(e.when, utc=False))}</td><td>{_e(ticker)}</td>"
        f"<td>{_e(e.action)}</td><td>{_e(e.alias)}</td><td>{_version(e.from_version)} → "
        f"{_version(e.to_version)}</td><td>{_e(e.reason)}</td><td>{_e(e.user)}</td></tr>"
        for ticker, e in events)
    counts = {a: sum(1 for _, e in events if e.action == a) for a in ("gate", "promote", "rollback")}
    summary = ", ".join(f"{n} {a}" for a, n in counts.items())
    charted = events[-_CHART_EVENTS:]
    names = [t.ticker for t in data.tickers if any(ticker == t.ticker for ticker, _ in charted)]
    chart = _img(_timeline_chart(charted, names), "Timeline of alias moves", "timeline-chart")
    caption = ("" if len(charted) == len(events) else
               f"<figcaption>The last {len(charted)} moves; the table lists all.</figcaption>")
    return ("<section id=\"timeline\"><h2>Promotions and rollbacks</h2>"
            f"<p>{len(events)} alias moves ({summary}), oldest first. <em>gate</em> is the "
            "automatic champion/challenger decision after training.</p>"
            f"<figure>{chart}{caption}</figure><table class=\"timeline\"><thead><tr><th>When (UTC)</th>"
            "<th>Ticker</th><th>Action</th><th>Alias</th><th>Version</th><th>Reason</th>"
            f"<th>User</th></tr></thead><tbody>{rows}</tbody></table></section>")


# ---------------------------------------------------------------------- charts
def _figure(width: float, height: float) -> Any:
    # A bare Figure draws with Agg and never touches pyplot's global state or a display.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _history_chart(t: TickerSummary, data: ReportData) -> bytes:
    fig = _figure(10, 2.8)
    axes = fig.subplots(1, len(HEADS))
    numbers = [v.version for v in t.versions]
    for ax, (_, metric, base, label, higher) in zip(axes, HEADS, strict=True):
        values = [v.metrics.get(metric, math.nan) for v in t.versions]
        baselines = [v.metrics.get(base, math.nan) for v in t.versions]
        ax.plot(numbers, values, "o-", color="#3b75af", label="model")
        ax.plot(numbers, baselines, "--", color="#888888", label="baseline")
        if t.production in numbers:
            i = numbers.index(t.production)
            ax.plot([t.production], [values[i]], "*", color="#e6a700", markersize=16,
                    markeredgecolor="#6b4f00", label=data.production_alias, zorder=3)
        ax.set_title(f"{label} ({'higher' if higher else 'lower'} is better)", fontsize=9)
        ax.set_xlabel("version", fontsize=8)
        ax.set_xticks(numbers)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(t.ticker, fontsize=11, fontweight="bold")
    return _png(fig)


def _skill_chart(ranked: Sequence[TickerSummary]) -> bytes:
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


def _timeline_chart(events: Sequence[tuple[str, AuditEvent]], tickers: Sequence[str]) -> bytes:
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
    ax.set_xticks(ticks, [_parse(events[i][1].when).strftime("%m-%d %H:%M") for i in ticks],
                  rotation=35, ha="right", fontsize=7)
    ax.set_xlim(-0.7, len(events) - 0.3)
    ax.set_yticks(range(len(tickers)), tickers)
    ax.set_ylim(-0.7, len(tickers) - 0.2)
    ax.set_xlabel("alias moves in order (UTC)", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(fig)


# ---------------------------------------------------------------------- formatting
def _img(png: bytes, alt: str, css_class: str) -> str:
    encoded = base64.b64encode(png).decode("ascii")
    return f'<img class="{css_class}" alt="{_e(alt)}" src="data:image/png;base64,{encoded}">'


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _version(value: int | None) -> str:
    return "-" if value is None else f"v{value}"


def _num(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if abs(value) < 10:
        return f"{value:.3f}"
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"


def _parse(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _short(text: str | None, *, utc: bool = True) -> str:
    if not text:
        return "-"
    try:
        return _when(_parse(text), utc=utc)
    except ValueError:
        return text


def _when(value: datetime, *, utc: bool = True) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M" + (" UTC" if utc else ""))


def _age(delta: timedelta | None) -> str:
    if delta is None:
        return "-"
    seconds = max(int(delta.total_seconds()), 0)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {rest // 60} min"
    return f"{rest // 60} min" if rest >= 60 else f"{rest} s"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f272d;
background:#fff;line-height:1.4}
header,main,footer{max-width:1320px;margin:0 auto;padding:0 20px}
header{padding-top:16px}h1{margin:0 0 4px}h2{margin-top:28px;border-bottom:1px solid #ddd}
.meta,.sub,footer{color:#5f6b73;font-size:.85em}nav{margin:8px 0}code{font-size:.9em}
table{border-collapse:collapse;width:100%;font-size:.88em}
th,td{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
thead th{background:#f3f5f7}tbody tr:nth-child(even){background:#fafbfc}
table.tickers td{white-space:nowrap}.ok{color:#2e7d32}.bad{color:#c62828}
tr.rollback{background:#fdecea !important}tr.promote{background:#edf7ed !important}
.wide{overflow-x:auto}figure{margin:12px 0}img{max-width:100%;height:auto}
.cols{display:flex;gap:40px;flex-wrap:wrap}.cols>div{flex:1 1 320px}.empty{font-size:1.1em}
footer{margin:32px auto 24px;border-top:1px solid #ddd;padding-top:8px}
"""
