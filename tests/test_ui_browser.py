"""Seeing it: the MLflow UI and the HTML report, checked in Debian's headless Chromium.

One store per module, populated by ``ticker-registry demo`` (three tickers
trained twice with ``log_plots`` on) plus a manual promotion and a rollback of
ETHUSDT. ``ticker-registry ui`` serves it on a loopback port; the MLflow UI is
a React single-page app, so every check waits for rendered text, never a sleep.

Routes of MLflow 3's UI used here (hash routes):
``#/models``, ``#/models/<name>``, ``#/models/<name>/versions/<n>``,
``#/experiments/<id>/runs/<run_id>`` and
``#/experiments/<id>/runs/<run_id>/artifacts/<path>``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from ticker_registry import TickerRegistry
from ticker_registry.cli import cli

from browser import (
    chromium,
    free_port,
    loaded_images,
    png_size,
    require_chromium,
    save_screenshot,
    stop_process,
    wait_for,
    wait_for_text,
    wait_http,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TICKERS = ("ETHUSDT", "BTCUSDT", "ADAUSDT")
PLOTS = ("feature_importance_flow_type.png", "feature_importance_impact.png",
         "feature_importance_time_to_execution.png", "confusion_matrix.png")
#: Keep the caller's store choice out of the test (the CLI reads these variables).
_CLEAN_ENV = {"MLFLOW_TRACKING_URI": None, "TICKER_REGISTRY_CONFIG": None,
              "TICKER_REGISTRY_MODELS_DIR": None}
#: localStorage of MLflow's UI: no promo dialog, no assistant panel over the page.
_UI_SETTINGS = {"_mlflow_model_registry_promo_modal_dismissed_v1": "true",
                "mlflow.assistant.panelOpen_v1": "false",
                "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true"}


@pytest.fixture(scope="module", autouse=True)
def _needs_chromium():
    require_chromium()  # before the store is built: skip (or fail on CI) fast


def _run(*args: str) -> str:
    result = CliRunner().invoke(cli, ["-q", *args], env=_CLEAN_ENV, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    """An empty store with its tables and experiment created (the UI server then only reads)."""
    root = tmp_path_factory.mktemp("demo")
    registry = TickerRegistry({"log_plots": True}, models_dir=root / "mlruns")
    return {"root": root, "models_dir": root / "mlruns", "registry": registry,
            "experiment_id": registry.experiment_id}


@pytest.fixture(scope="module")
def ui_process(store_dir):
    """``ticker-registry ui`` on a free loopback port, booting while the demo trains."""
    root, port = store_dir["root"], free_port()
    env = {k: v for k, v in os.environ.items() if k not in _CLEAN_ENV}
    env.update(MLFLOW_WORKERS="1", MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    log = root / "mlflow-ui.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ticker_registry", "--models-dir", str(store_dir["models_dir"]),
             "ui", "--host", "127.0.0.1", "--port", str(port)],
            cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield {"process": process, "log": log, "base": f"http://127.0.0.1:{port}"}
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def demo_store(store_dir, ui_process):
    """The demo's store, plus a hand promotion of ETHUSDT's other version and a rollback."""
    registry, models_dir = store_dir["registry"], str(store_dir["models_dir"])
    _run("--models-dir", models_dir, "demo", "--dir", str(store_dir["root"]), "--trades", "6000")
    # Whichever version the gate chose, try the other one in production, then roll back.
    other = next(v.version for v in registry.list_versions("ETHUSDT")
                 if "production" not in v.aliases)
    _run("--models-dir", models_dir, "promote", "ETHUSDT", str(other), "--reason", "try it live")
    _run("--models-dir", models_dir, "rollback", "ETHUSDT", "--reason", "live accuracy dropped")
    return {**store_dir, "versions": {t: registry.list_versions(t) for t in TICKERS}}


@pytest.fixture(scope="module")
def mlflow_ui(demo_store, ui_process):
    """The base URL of the MLflow UI, once it answers."""
    wait_http(f"{ui_process['base']}/health", process=ui_process["process"],
              log=ui_process["log"], timeout=90)
    return ui_process["base"]


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


def _words(text: str) -> str:
    """``text`` with every run of white space (the UI uses no-break spaces) as one space."""
    return " ".join(text.replace("\u00a0", " ").split())


def _open(driver, url: str, *texts: str) -> str:
    driver.get(url)
    return wait_for_text(driver, *texts, timeout=60)


def test_mlflow_ui_shows_models_aliases_metrics_and_plots(demo_store, mlflow_ui, browser,
                                                          tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    registry, versions = demo_store["registry"], demo_store["versions"]
    production = {t: next(v.version for v in versions[t] if "production" in v.aliases)
                  for t in TICKERS}
    names = {t: registry.model_name(t) for t in TICKERS}
    browser.set_window_size(1500, 900)
    browser.get(f"{mlflow_ui}/health")  # same origin: settings before the app starts
    for key, value in _UI_SETTINGS.items():
        browser.execute_script("localStorage.setItem(arguments[0], arguments[1])", key, value)

    # Registered models: every ticker, with its tags and its aliases.
    text = _open(browser, f"{mlflow_ui}/#/models", "Registered Models", *names.values())
    for ticker in TICKERS:
        assert f"ticker: {ticker}" in text.replace("\n", "")
    assert text.count("kind: order_flow_model") == len(TICKERS)
    shot = save_screenshot(browser, tmp_path / "mlflow-models.png", docs_name="mlflow-models.png")
    assert png_size(shot)[0] >= 1000
    for ticker in TICKERS:
        row = f"//div[@role='row'][.//a[normalize-space(.)='{names[ticker]}']]"
        cell = browser.find_element("xpath", row).text
        if "production" not in cell:  # the table shows one alias, the others behind "+N"
            browser.find_element("xpath", f"{row}//button[starts-with(normalize-space(.), '+')]"
                                 ).click()
            cell = wait_for(browser, "document.querySelector('[role=menu]')"
                                     " && document.querySelector('[role=menu]').innerText",
                            what=f"the alias menu of {ticker}")
            ActionChains(browser).send_keys(Keys.ESCAPE).perform()
            wait_for(browser, "!document.querySelector('[role=menu]')", what="menu closed")
        assert f"@ production : Version {production[ticker]}" in _words(cell), (ticker, cell)

    # One ticker's model page: description, registered-model tags, both versions.
    name = names["ETHUSDT"]
    text = _open(browser, f"{mlflow_ui}/#/models/{name}", "Order-flow model of ETHUSDT",
                 "audit_run", "Version 1", "Version 2")
    assert "@ production" in _words(text)
    save_screenshot(browser, tmp_path / "mlflow-model.png")

    # A version page: the production alias and the holdout metrics (as version tags).
    prod = next(v for v in versions["ETHUSDT"] if v.version == production["ETHUSDT"])
    text = _open(browser, f"{mlflow_ui}/#/models/{name}/versions/{prod.version}",
                 f"Version {prod.version}", "metric.flow_type_accuracy", "metric.impact_mse",
                 repr(prod.metrics["flow_type_accuracy"]))
    assert "@ production" in _words(text)
    save_screenshot(browser, tmp_path / "mlflow-version.png")

    # Its run: the logged metrics, then the feature-importance plot among the artifacts.
    run = f"{mlflow_ui}/#/experiments/{demo_store['experiment_id']}/runs/{prod.run_id}"
    text = _open(browser, run, "Metrics (", "flow_type_accuracy", "baseline_impact_mse",
                 "time_to_execution_mse")
    assert repr(prod.metrics["impact_mse"]) in text or f"{prod.metrics['impact_mse']:.2f}" in text
    _open(browser, f"{run}/artifacts/plots/feature_importance_flow_type.png", *PLOTS)
    plot = wait_for(browser, "Array.from(document.images).find(i => i.alt === "
                             "'plots/feature_importance_flow_type.png' && i.complete "
                             "&& i.naturalWidth > 0)", what="the feature-importance image")
    assert plot
    image = next(i for i in loaded_images(browser) if i["alt"].endswith("flow_type.png"))
    assert image["width"] >= 200 and image["height"] >= 200, image
    save_screenshot(browser, tmp_path / "mlflow-run-artifacts.png",
                    docs_name="mlflow-run-artifacts.png")


def test_report_in_browser(demo_store, browser, tmp_path):
    result = CliRunner().invoke(cli, ["--models-dir", str(demo_store["models_dir"]), "report",
                                      "--out", str(tmp_path / "report.html")], env=_CLEAN_ENV)
    assert result.exit_code == 0, result.output
    report = tmp_path / "report.html"
    browser.set_window_size(1280, 1500)
    browser.get(report.as_uri())
    text = wait_for_text(browser, "Ticker model report", "Promotions and rollbacks", *TICKERS)
    for ticker in TICKERS:
        assert text.count(ticker) >= 3, ticker  # table, history, timeline
    assert "rollback" in text and "live accuracy dropped" in text
    images = loaded_images(browser)
    # Overview + one history chart per ticker + the timeline.
    assert len(images) == len(TICKERS) + 2, images
    for image in images:
        assert image["complete"] and image["width"] > 100 and image["height"] > 100, image
        assert image["src"].startswith("data:image/png;base64,"), image
    alts = {i["alt"] for i in images}
    assert {f"{t} metric history" for t in TICKERS} <= alts
    # Everything came from the file itself: no request left it.
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".filter(n => !n.startsWith('data:'))")
    assert fetched == [], fetched
    shot = save_screenshot(browser, tmp_path / "report.png", docs_name="report.png")
    assert png_size(shot)[0] >= 1000
    save_screenshot(browser, tmp_path / "report-full.png", full_page=True)
