"""The static HTML report: content, self-containedness, the CLI command.

A real SQLite store per module: ETHUSDT trained twice (with a hand promotion
and a rollback), BTCUSDT once. The browser check of the report lives in
``tests/test_ui_browser.py``.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from html.parser import HTMLParser

import jinja2
import pytest
from click.testing import CliRunner

from ticker_registry import SyncTickerModelManager, TickerRegistry
from ticker_registry.cli import cli
from ticker_registry.evaluation import HEADS
from ticker_registry.records import AuditEvent, VersionInfo
from ticker_registry.report import (
    ReportData,
    TickerSummary,
    collect_report,
    render_report,
    template_context,
    write_report,
)

from conftest import QUICK, make_trades

_CLEAN_ENV = {"MLFLOW_TRACKING_URI": None, "TICKER_REGISTRY_CONFIG": None,
              "TICKER_REGISTRY_MODELS_DIR": None}
REASON = "<b>try</b> it & see"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    models_dir = root / "store"
    with SyncTickerModelManager(QUICK, models_dir, auto_retrain=False) as manager:
        manager.train("ETHUSDT", trades=make_trades(5000, seed=1))
        manager.train("ETHUSDT", trades=make_trades(5000, seed=2))
        manager.train("BTCUSDT", trades=make_trades(5000, seed=3, ticker="BTCUSDT"))
        registry = manager.registry
        production = registry.production_version("ETHUSDT")
        other = 1 if production == 2 else 2
        manager.promote("ETHUSDT", other, reason=REASON)
        manager.rollback("ETHUSDT", reason="live accuracy dropped")
    registry = TickerRegistry(QUICK, models_dir=models_dir)
    path = write_report(registry, root / "out" / "report.html")
    return {"models_dir": models_dir, "registry": registry, "path": path,
            "html": path.read_text(encoding="utf-8"), "production": production}


class _Page(HTMLParser):
    """Tags, attributes and text of a page, for checks without a browser."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data):
        self.text.append(data)


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def test_report_is_one_self_contained_file(store):
    page = _parse(store["html"])
    tags = [t for t, _ in page.tags]
    assert "script" not in tags and "link" not in tags and "iframe" not in tags
    images = [a for t, a in page.tags if t == "img"]
    # Skill overview + one history chart per ticker + the timeline.
    assert len(images) == 4
    for attrs in images:
        prefix = "data:image/png;base64,"
        assert attrs["src"].startswith(prefix) and attrs["alt"]
        png = base64.b64decode(attrs["src"][len(prefix):], validate=True)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert width >= 300 and height >= 100
    links = [a["href"] for t, a in page.tags if t == "a"]
    assert links and all(href.startswith("#") for href in links)
    assert "http://" not in store["html"] and "https://" not in store["html"]


def test_report_shows_each_ticker_its_history_and_the_timeline(store):
    registry, html = store["registry"], store["html"]
    text = " ".join(" ".join(_parse(html).text).split())
    for ticker in ("ETHUSDT", "BTCUSDT"):
        assert f'id="history-{ticker}"' in html
        assert f'alt="{ticker} metric history"' in html
    rows = [line for line in html.split("<tr>") if 'href="#history-ETHUSDT"' in line]
    assert rows and f"<td>v{registry.production_version('ETHUSDT')}</td>" in rows[0]
    assert "Best and worst" in text and "Promotions and rollbacks" in text
    events = registry.audit_trail("ETHUSDT") + registry.audit_trail("BTCUSDT")
    assert f"{len(events)} alias moves" in text
    assert '<tr class="rollback">' in html and "live accuracy dropped" in text
    # Free text from the audit trail is escaped, never markup.
    assert "&lt;b&gt;try&lt;/b&gt; it &amp; see" in html and REASON not in html


def test_collected_data_matches_the_registry(store):
    registry = store["registry"]
    data = collect_report(registry, now=datetime(2030, 1, 1, tzinfo=UTC))
    assert [t.ticker for t in data.tickers] == ["BTCUSDT", "ETHUSDT"]
    eth = next(t for t in data.tickers if t.ticker == "ETHUSDT")
    assert eth.production == store["production"] == registry.production_version("ETHUSDT")
    assert [v.version for v in eth.versions] == [1, 2]
    assert eth.shown is not None and eth.shown.version == eth.production
    assert [e.action for e in eth.events][-2:] == ["promote", "rollback"]
    assert eth.skill is not None
    html = render_report(data)
    assert "generated 2030-01-01 00:00 UTC" in html
    assert " d " in html  # model age in days on the fixed clock


def test_empty_namespace_gives_a_report_that_says_so():
    html = render_report(ReportData(generated_at=datetime(2030, 1, 1, tzinfo=UTC),
                                    store="sqlite:///x.db", namespace="order_flow", tickers=()))
    assert "No ticker models in namespace" in html and "<img" not in html


def _hostile_report() -> ReportData:
    """One ticker whose name, tags, reason, user and aliases all carry markup."""
    bad = "<script>alert('x')</script>"
    metrics = {"flow_type_accuracy": 0.5, "baseline_flow_type_accuracy": 0.4}
    for head in HEADS:
        loss = f"{head}_logloss" if head == "flow_type" else f"{head}_mse"
        metrics.update({loss: 0.9, f"baseline_{loss}": 1.0, f"skill_{head}": 0.1,
                        f"has_skill_{head}": 1.0})
    version = VersionInfo(ticker=f"T{bad}", name=f"order_flow.T{bad}", version=1, run_id=None,
                          created_at="2030-01-01T00:00:00+00:00", aliases=(f"prod{bad}",),
                          metrics=metrics, tags={"lineage.n_samples": f"12{bad}"}, source="x")
    event = AuditEvent(seq=1, when="2030-01-01T00:00:00+00:00", action=f"promote{bad}",
                       alias=f"prod{bad}", from_version=None, to_version=1, reason=f"why{bad}",
                       user=f"me{bad}")
    ticker = TickerSummary(ticker=f"T{bad}", production=1, staging=None, shown=version,
                           versions=(version,), total_samples=12, last_trained=f"later{bad}",
                           events=(event,))
    return ReportData(generated_at=datetime(2030, 1, 2, tzinfo=UTC), store=f"sqlite:///{bad}",
                      namespace=f"ns{bad}", tickers=(ticker,), production_alias=f"prod{bad}",
                      staging_alias=f"stage{bad}")


def test_every_value_from_the_registry_is_escaped():
    html = render_report(_hostile_report())
    assert "<script" not in html.lower()
    assert "script" not in [tag for tag, _ in _parse(html).tags]
    escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"
    # ticker (row, link, history, timeline), tag, reason, user, text fallback of a timestamp
    for value in ("T", "12", "why", "me", "later", "promote", "prod", "stage", "ns", "sqlite:///"):
        assert f"{value}{escaped}" in html, value
    assert f'href="#history-T{escaped}"' in html and f'id="history-T{escaped}"' in html


def test_templates_escape_and_refuse_missing_values():
    from ticker_registry.report import _environment

    env = _environment()
    names = env.list_templates()
    assert "report.html.j2" in names and all(env.autoescape(name) for name in names)
    assert env.undefined is jinja2.StrictUndefined
    template = env.get_template("report.html.j2")
    context = template_context(_hostile_report())
    del context["staging_alias"]
    with pytest.raises(jinja2.UndefinedError, match="staging_alias"):
        template.render(context)


def test_write_report_replaces_the_file_and_leaves_no_temporary(store, tmp_path):
    target = tmp_path / "report.html"
    target.write_text("old")
    assert write_report(store["registry"], target) == target
    assert target.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_cli_report_writes_report_html_by_default(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["--models-dir", str(store["models_dir"]), "report"],
                                env=_CLEAN_ENV)
    assert result.exit_code == 0, result.output
    assert "wrote report.html" in result.output
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "ETHUSDT" in html and "BTCUSDT" in html


def test_cli_report_error_is_one_line(store, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    result = CliRunner().invoke(cli, ["--models-dir", str(store["models_dir"]), "report",
                                      "--out", str(blocker / "report.html")], env=_CLEAN_ENV)
    assert result.exit_code == 1
    assert result.output.startswith("Error: not a folder") and str(blocker) in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_store_password_is_not_written():
    from ticker_registry.redaction import redact_uri as _redact

    assert _redact("postgresql+psycopg2://bob:s3cret@db:5432/mlflow") == \
        "postgresql+psycopg2://bob:***@db:5432/mlflow"
    assert _redact("sqlite:////tmp/x/mlflow.db") == "sqlite:////tmp/x/mlflow.db"
