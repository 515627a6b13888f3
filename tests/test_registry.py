"""The registry against a real SQLite MLflow store: nothing of MLflow is mocked."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from ticker_registry import (
    Config,
    InvalidArgumentError,
    ModelNotFoundError,
    PromotionConflictError,
    RegistryError,
    RollbackError,
    build_training_set,
    views,
)
from ticker_registry.evaluation import HEADS
from ticker_registry.model import package_versions
from ticker_registry.registry import TickerRegistry, resolve_tracking_uri
from ticker_registry.training import train_model

from conftest import QUICK, make_trades, register_training, registry_snapshot


def register(registry, result, ticker="ETHUSDT", gate=True):
    info, _, decision = register_training(registry, result, ticker, gate)
    return info, decision


def test_store_lives_in_models_dir_and_global_uri_is_untouched(tmp_path, quick_config, trained):
    before = mlflow.get_tracking_uri()
    reg = TickerRegistry(quick_config, models_dir=tmp_path / "custom" / "models" / "path")
    info, _ = register(reg, trained[0])
    assert reg.tracking_uri == f"sqlite:///{tmp_path}/custom/models/path/mlflow.db"
    assert (tmp_path / "custom/models/path/mlflow.db").is_file()
    assert info.source.startswith((tmp_path / "custom/models/path/mlartifacts/models").as_uri())
    assert mlflow.get_tracking_uri() == before


def test_uri_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    assert resolve_tracking_uri("sqlite:///x.db", tmp_path) == "sqlite:///x.db"
    assert resolve_tracking_uri(None, tmp_path) == "http://127.0.0.1:1"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert resolve_tracking_uri(None, tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"


def test_registration_records_run_version_tags_and_lineage(registry, trained):
    result = trained[0]
    info, decision = register(registry, result)
    client = MlflowClient(registry.tracking_uri)
    name = "order_flow.ETHUSDT"
    rm = client.get_registered_model(name)
    assert rm.aliases == {"production": info.version}
    assert rm.tags["ticker"] == "ETHUSDT" and rm.tags["kind"] == "order_flow_model"
    # the running totals are written once, on the version; the model's tags stay a handful
    assert "training_sessions" not in rm.tags and not any(k.startswith("audit.") for k in rm.tags)
    assert "Production: version 1" in rm.description
    mv = client.get_model_version(name, "1")
    assert mv.tags["totals.training_sessions"] == "1"
    assert mv.tags["totals.total_samples"] == str(result.lineage.n_samples)
    assert float(mv.tags["metric.flow_type_accuracy"]) == pytest.approx(
        result.model.metrics_["flow_type_accuracy"])
    assert mv.tags["idempotency_key"] == result.idempotency_key
    assert mv.tags["lineage.fingerprint"] and mv.tags["lineage.first_trade"]
    assert mv.tags["gate.decision"] == "production"
    run = client.get_run(mv.run_id)
    assert run.data.metrics["impact_mse"] == pytest.approx(result.model.metrics_["impact_mse"])
    assert run.data.params["model_type"] == "xgboost"
    assert run.data.tags["package.mlflow"] == mlflow.__version__
    assert run.info.status == "FINISHED"
    assert decision.promoted and decision.reason.startswith("first version of this ticker; serves")
    for head, source in result.model.serving_.items():
        assert mv.tags[f"serving.{head}"] == source
        assert mv.tags[f"skill.{head}"] == str(result.model.evaluation_[head].has_skill).lower()


def test_no_pickle_anywhere_in_the_version(registry, trained):
    info, _ = register(registry, trained[0])
    root = Path(info.source.removeprefix("file://"))
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert "artifacts/order_flow_model/flow_type.ubj" in files
    assert "pyfunc_model.py" in files and "MLmodel" in files
    for path in root.rglob("*"):
        if path.is_file():
            assert path.suffix not in (".pkl", ".pickle", ".joblib")
            assert not path.read_bytes().startswith(b"\x80"), path  # pickle protocol header
    mlmodel = (root / "MLmodel").read_text()
    assert "loader_module: mlflow.pyfunc.loaders.code_model" in mlmodel
    assert "python_model.pkl" not in mlmodel
    assert (root / "requirements.txt").read_text().split() == [
        f"{p}=={v}" for p, v in (("mlflow", mlflow.__version__), ("xgboost", package_versions()["xgboost"]),
                                 ("numpy", np.__version__), ("pandas", pd.__version__))]


def test_same_training_registers_once(registry, trained):
    first, _ = register(registry, trained[0])
    again, created = registry.register("ethusdt", trained[0].model, lineage=trained[0].lineage,
                                       idempotency_key=trained[0].idempotency_key)
    assert not created and again.version == first.version
    assert len(registry.list_versions("ETHUSDT")) == 1


def test_plain_mlflow_loads_production(registry, trained, monkeypatch):
    register(registry, trained[0])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)
    pyfunc = mlflow.pyfunc.load_model("models:/order_flow.ETHUSDT@production")
    X = trained[0].X_valid.iloc[:20]
    out = pyfunc.predict(X.reset_index(drop=True))
    expected = trained[0].model.predict(X).reset_index(drop=True)
    assert list(out.columns) == ["flow_type", "p_sell_pressure", "p_balanced", "p_buy_pressure",
                                 "impact", "time_to_execution", "flow_type_source", "impact_source",
                                 "time_to_execution_source"]
    pd.testing.assert_frame_equal(out, expected, check_dtype=False)
    for head, source in trained[0].model.serving_.items():  # per-head serving, said per row
        assert set(out[f"{head}_source"]) == {source}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_mlflow_models_serve_answers_invocations(registry, trained, tmp_path):
    register(registry, trained[0])
    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": registry.tracking_uri,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m",
                             "models:/order_flow.ETHUSDT@production", "--env-manager", "local",
                             "-h", "127.0.0.1", "-p", str(port)], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        X = trained[0].X_valid.iloc[:5].reset_index(drop=True)
        body = json.dumps({"dataframe_split": X.to_dict(orient="split")}).encode()
        deadline = time.monotonic() + 90
        while True:
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=5) as resp:
                    payload = json.loads(resp.read())
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.5)
        served = pd.DataFrame(payload["predictions"])
        expected = trained[0].model.predict(X)
        assert list(served["flow_type"]) == list(expected["flow_type"])
        np.testing.assert_allclose(served["impact"], expected["impact"], rtol=1e-6)
        np.testing.assert_allclose(served["time_to_execution"], expected["time_to_execution"],
                                   rtol=1e-6)
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        log.close()


def test_promote_is_compare_and_set_with_audit(registry, trained):
    register(registry, trained[0])
    v2, _ = register(registry, trained[1], gate=False)
    event = registry.promote("ETHUSDT", v2.version, expected=1, reason="manual")
    assert event.from_version == 1 and event.to_version == v2.version
    before = registry_snapshot(registry)
    with pytest.raises(PromotionConflictError, match="moved to version 2 while you expected 1"):
        registry.promote("ETHUSDT", 1, expected=1)
    assert registry_snapshot(registry) == before
    trail = registry.audit_trail("ETHUSDT")
    assert [(e.action, e.from_version, e.to_version) for e in trail] == [
        ("gate", None, 1), ("promote", 1, 2)]
    assert trail[-1].reason == "manual" and trail[-1].user


def test_promote_refuses_unknown_versions_and_aliases(registry, trained):
    register(registry, trained[0])
    before = registry_snapshot(registry)
    with pytest.raises(ModelNotFoundError, match="no version 7"):
        registry.promote("ETHUSDT", 7)
    with pytest.raises(InvalidArgumentError, match="unknown alias 'canary'"):
        registry.promote("ETHUSDT", 1, to="canary")
    with pytest.raises(ModelNotFoundError):
        registry.promote("BTCUSDT", 1)
    assert registry_snapshot(registry) == before


def test_rollback_follows_the_audit_trail(registry, trained):
    register(registry, trained[0])
    for result in trained[1:]:
        info, _ = register(registry, result, gate=False)
        registry.promote("ETHUSDT", info.version)
    assert registry.production_version("ETHUSDT") == 3
    event = registry.rollback("ETHUSDT")
    assert (event.from_version, event.to_version, event.action) == (3, 2, "rollback")
    assert registry.rollback("ETHUSDT").to_version == 1
    with pytest.raises(RollbackError, match="no earlier production version"):
        registry.rollback("ETHUSDT")
    assert registry.rollback("ETHUSDT", to_version=3).to_version == 3


def test_rollback_refusals_change_nothing(registry, trained, tmp_path, quick_config):
    register(registry, trained[0])
    before = registry_snapshot(registry)
    with pytest.raises(RollbackError, match="no earlier production version"):
        registry.rollback("ETHUSDT")
    with pytest.raises(RollbackError, match="does not exist"):
        registry.rollback("ETHUSDT", to_version=9)
    register(registry, trained[1], ticker="BTCUSDT")
    register(registry, trained[2], ticker="BTCUSDT", gate=False)
    with pytest.raises(RollbackError, match="version 2: it does not exist"):
        registry.rollback("ETHUSDT", to_version=2)  # version 2 belongs to BTCUSDT only
    info, _ = register(registry, trained[2], gate=False)
    registry.delete_version("ETHUSDT", info.version)
    before = registry_snapshot(registry)
    with pytest.raises(RollbackError, match="does not exist"):
        registry.rollback("ETHUSDT", to_version=info.version)
    assert registry_snapshot(registry) == before


def test_gate_compares_on_common_out_of_sample_rows(registry, trained):
    _, first = register(registry, trained[0])
    assert first.promoted
    info, decision = register(registry, trained[1])
    assert decision.champion_version == 1
    assert set(decision.candidate_scores) == {f"{h}_loss" for h in HEADS}
    tags = registry.get_version("ETHUSDT", info.version).tags
    assert tags["gate.reason"] == decision.reason
    assert "common out-of-sample rows" in decision.reason
    for head in HEADS:  # the reason names every head with its score
        assert head in decision.reason
        assert tags[f"gate.{head}.verdict"] in ("better", "worse", "same")
    prod = registry.production_version("ETHUSDT")
    if decision.promoted:
        assert prod == info.version and "better" in decision.reason
    else:
        assert prod == 1
        assert registry.resolve("ETHUSDT", "staging").version == info.version
    # compare reports the gate's own verdict: they cannot disagree
    rows = {r["metric"]: r for r in views.compare(registry, "ETHUSDT", 1, info.version)}
    assert rows["gate: decision"]["better"] == (info.version if decision.promoted else 1)
    for head in HEADS:
        verdict = tags[f"gate.{head}.verdict"]
        expected = {"better": info.version, "worse": 1, "same": None}[verdict]
        assert rows[f"gate: {head} loss on common out-of-sample rows"]["better"] == expected
    # walk-forward scores are each version's own: shown, never ranked against each other
    assert all(r["better"] is None for m, r in rows.items() if not m.startswith("gate"))


def test_gate_never_promotes_a_candidate_trained_on_shuffled_labels(registry, trained):
    register(registry, trained[0])
    cfg = Config.from_dict(QUICK)
    X, y = build_training_set(make_trades(12_000, seed=1).iloc[3000:9000].reset_index(drop=True), cfg)
    shuffled = y.iloc[np.random.default_rng(5).permutation(len(y))].set_axis(y.index)
    result = train_model(X, shuffled, cfg)
    assert all(source == "baseline" for source in result.model.serving_.values())
    info, _ = registry.register("ETHUSDT", result.model, lineage=result.lineage,
                                idempotency_key=result.idempotency_key)
    # judged on what really happened (the true labels of its out-of-sample rows)
    decision = registry.apply_gate("ETHUSDT", info.version, result.model, result.X_valid,
                                   y.iloc[result.model.gate_holdout_.positions])
    assert not decision.promoted
    assert registry.production_version("ETHUSDT") == 1
    assert registry.get_version("ETHUSDT", info.version).tags["gate.decision"] == "staging"


def test_gate_keeps_staging_without_common_out_of_sample_rows(registry, trained):
    register(registry, trained[1])
    info, decision = register(registry, trained[0])  # older data: all inside production's
    assert not decision.promoted and "lie after production v1's training data" in decision.reason


def test_views_status_metadata_compare_best(registry, trained):
    register(registry, trained[0], ticker="ETHUSDT")
    register(registry, trained[1], ticker="ETHUSDT", gate=False)
    register(registry, trained[2], ticker="ADAUSDT")
    rows = views.status(registry)
    assert [r["ticker"] for r in rows] == ["ADAUSDT", "ETHUSDT"]
    eth = rows[1]
    assert eth["production"] == 1 and eth["versions"] == 2 and eth["latest"] == 2
    assert eth["flow_type_accuracy"] == pytest.approx(
        trained[0].model.metrics_["flow_type_accuracy"])
    meta = views.metadata(registry)
    assert set(meta["ETHUSDT"]) == {"created_at", "training_sessions", "total_samples",
                                    "last_trained", "performance_metrics", "model_version"}
    assert set(meta["ETHUSDT"]["performance_metrics"]) == {
        "flow_type_accuracy", "impact_mse", "time_to_execution_mse"}
    assert meta["ETHUSDT"]["training_sessions"] == 2 and meta["ETHUSDT"]["model_version"] == 1
    diff = {r["metric"]: r for r in views.compare(registry, "ETHUSDT", 1, 2)}
    assert diff["impact_mse"]["difference"] == pytest.approx(
        trained[1].model.metrics_["impact_mse"] - trained[0].model.metrics_["impact_mse"])
    top = views.best(registry, "impact_mse", 1)
    assert len(top) == 1 and top[0]["rank"] == 1
    values = {r["ticker"]: r["value"] for r in views.best(registry, "impact_mse", 5)}
    assert top[0]["value"] == min(values.values())
    with pytest.raises(ModelNotFoundError, match="no version has metric 'sharpe'"):
        views.best(registry, "sharpe")
    history = views.version_rows(registry.list_versions("ETHUSDT"), registry.audit_trail("ETHUSDT"))
    assert [h["version"] for h in history] == [2, 1] and history[1]["aliases"] == ["production"]


def test_status_of_an_empty_store(registry):
    assert views.status(registry) == [] and views.metadata(registry) == {}


def test_plots_are_logged_when_asked(tmp_path, quick_config, trained):
    reg = TickerRegistry(quick_config.replace(log_plots=True), models_dir=tmp_path / "s")
    result = trained[0]
    info, _ = reg.register("ETHUSDT", result.model, lineage=result.lineage,
                           idempotency_key=result.idempotency_key,
                           holdout=(result.X_valid, result.y_valid))
    names = {a.path for a in MlflowClient(reg.tracking_uri).list_artifacts(info.run_id, "plots")}
    assert {"plots/feature_importance_flow_type.png", "plots/confusion_matrix.png"} <= names


def test_unreachable_server_is_a_clear_error(quick_config):
    reg = TickerRegistry(quick_config, tracking_uri="http://127.0.0.1:9")
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    try:
        with pytest.raises(RegistryError, match=r"127\.0\.0\.1:9"):
            views.status(reg)
    finally:
        del os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]


def test_per_fold_figures_are_stepped_run_metrics(registry, trained):
    info, _ = register(registry, trained[0])
    client = MlflowClient(registry.tracking_uri)
    history = client.get_metric_history(info.run_id, "fold_time_to_execution_loss")
    folds = trained[0].model.folds_
    assert [m.step for m in history] == [int(f["fold"]) for f in folds]
    assert [m.value for m in history] == pytest.approx([f["time_to_execution_loss"] for f in folds])
    assert client.get_run(info.run_id).data.params["cv_folds"] == "5"


def test_views_survive_tags_set_by_hand(registry, trained):
    info, _ = register(registry, trained[0])
    client = MlflowClient(registry.tracking_uri)
    for key, value in (("metric.note", "see notebook"), ("metric.bad", "nan"), ("note", "x" * 500)):
        client.set_model_version_tag("order_flow.ETHUSDT", str(info.version), key, value)
    rows = views.status(registry)
    assert rows[0]["ticker"] == "ETHUSDT"
    assert "note" not in registry.get_version("ETHUSDT", info.version).metrics
    assert views.best(registry)[0]["ticker"] == "ETHUSDT"
