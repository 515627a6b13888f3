"""The registry, the manager and the CLI against a real mlflow server backed by PostgreSQL.

The server comes from ``tests/server_fixtures.py`` (``scripts/test.sh`` starts one; a
developer's ``pytest -m server`` starts a private one). Every test works in its own
namespace. Tests that kill mlflow use a private server of their own (``crashable_server``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from ticker_registry import (
    ModelNotFoundError,
    PromotionConflictError,
    RegistryError,
    RegistryUnavailableError,
    RollbackError,
    SyncTickerModelManager,
    build_training_set,
    views,
)
from ticker_registry.locking import LOCK_PREFIX, STALE_AFTER, TickerLock
from ticker_registry.registry import TickerRegistry
from ticker_registry.store.retry import TransientRegistryError, with_retries

from conftest import make_trades, register_training, registry_snapshot

pytestmark = pytest.mark.server

#: The CLI's documented deadline against an unreachable server (README, "Running for a team").
CLI_DEADLINE_S = 10.0
#: Interpreter and import start-up of a CLI subprocess on a busy 2-core CI machine.
STARTUP_SLACK_S = 6.0


register = register_training


def lock_models(registry) -> list[str]:
    found = registry.store.client.search_registered_models(
        f"name LIKE '{LOCK_PREFIX}{registry.config.namespace}.%'")
    return [rm.name for rm in found]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- registration
def test_register_on_the_server_is_idempotent_and_lands_in_postgresql(
        server_registry, tracking_server, trained):
    info, created, decision = register(server_registry, trained[0])
    assert created and info.version == 1 and decision.promoted
    assert info.source.startswith("mlflow-artifacts:/")
    again, created_again, _ = register(server_registry, trained[0])
    assert not created_again and again.version == info.version
    versions = server_registry.list_versions("ETHUSDT")
    assert [v.version for v in versions] == [1] and versions[0].aliases == ("production",)

    # the rows are in PostgreSQL and the artifacts in the server's artifact folder
    import sqlalchemy

    engine = sqlalchemy.create_engine(tracking_server.env["TR_PG_URI"])
    try:
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.text(
                "SELECT version FROM model_versions WHERE name = :n"),
                {"n": info.name}).fetchall()
    finally:
        engine.dispose()
    assert [r[0] for r in rows] == [1]
    artifacts = Path(tracking_server.env["TR_ARTIFACTS_DIR"])
    model_id = info.tags["model_id"]  # the version's files are its LoggedModel's artifacts
    assert list(artifacts.glob(f"*/models/{model_id}/artifacts/MLmodel"))
    logged = server_registry.store.client.get_logged_model(model_id)
    assert logged.source_run_id == info.run_id and info.source == logged.artifact_location
    assert json.loads(logged.tags["mlflow.modelVersions"]) == [{"name": info.name, "version": 1}]
    assert info.tags["totals.training_sessions"] == "1"
    assert lock_models(server_registry) == []


def test_concurrent_registrations_of_one_ticker_serialise(tracking_server, server_config,
                                                          tmp_path, trained):
    """Two writers (own clients) register at once: two versions, counters add up, no lock left."""
    barrier = threading.Barrier(2)
    results: dict[int, object] = {}

    def work(i: int) -> None:
        reg = TickerRegistry(server_config, tracking_uri=tracking_server.uri,
                             models_dir=tmp_path / f"w{i}")
        reg.experiment_id  # noqa: B018  (warm up outside the race)
        barrier.wait()
        try:
            results[i] = register(reg, trained[i + 1], gate=False)[0].version
        except Exception as exc:  # reported below
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(results.values()) == [1, 2], results
    reg = TickerRegistry(server_config, tracking_uri=tracking_server.uri,
                         models_dir=tmp_path / "check")
    newest = reg.list_versions("ETHUSDT")[0]
    assert newest.tags["totals.training_sessions"] == "2"
    assert newest.tags["totals.total_samples"] == str(trained[1].lineage.n_samples
                                                      + trained[2].lineage.n_samples)
    assert lock_models(reg) == []


# --------------------------------------------------------------------------- aliases
def test_promote_is_compare_and_set_with_audit(server_registry, trained):
    for result in trained:
        register(server_registry, result)
    prod = server_registry.production_version("ETHUSDT")
    other = next(v for v in (1, 2, 3) if v != prod)
    with pytest.raises(PromotionConflictError, match="moved to version"):
        server_registry.promote("ETHUSDT", other, expected=None)
    event = server_registry.promote("ETHUSDT", other, expected=prod, reason="by hand")
    assert (event.from_version, event.to_version, event.action) == (prod, other, "promote")
    assert server_registry.production_version("ETHUSDT") == other
    trail = server_registry.audit_trail("ETHUSDT")
    assert trail[-1].reason == "by hand" and [e.seq for e in trail] == list(
        range(1, len(trail) + 1))
    with pytest.raises(ModelNotFoundError):
        server_registry.promote("ETHUSDT", 99)
    assert lock_models(server_registry) == []


def test_concurrent_promotions_one_wins_one_conflicts(tracking_server, server_config, tmp_path,
                                                      trained):
    """Two writers promote different versions from the same expected one, several rounds."""
    setup = TickerRegistry(server_config, tracking_uri=tracking_server.uri,
                           models_dir=tmp_path / "setup")
    for result in trained:
        register(setup, result, gate=False)
    setup.promote("ETHUSDT", 1, expected=None)
    registries = [TickerRegistry(server_config, tracking_uri=tracking_server.uri,
                                 models_dir=tmp_path / f"writer{i}") for i in range(2)]
    for reg in registries:
        reg.production_version("ETHUSDT")  # warm the clients up outside the race
    successes = [(None, 1)]
    for _ in range(4):
        current = setup.production_version("ETHUSDT")
        targets = [v for v in (1, 2, 3) if v != current]
        barrier = threading.Barrier(2)
        outcome: dict[int, object] = {}

        def work(i: int, current=current, targets=targets, barrier=barrier,
                 outcome=outcome) -> None:
            barrier.wait()
            try:
                outcome[i] = registries[i].promote("ETHUSDT", targets[i], expected=current,
                                                   reason=f"writer {i}")
            except Exception as exc:
                outcome[i] = exc

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        won = [o for o in outcome.values() if not isinstance(o, Exception)]
        lost = [o for o in outcome.values() if isinstance(o, Exception)]
        assert len(won) == 1 and len(lost) == 1, outcome
        assert isinstance(lost[0], PromotionConflictError), lost[0]
        assert setup.production_version("ETHUSDT") == won[0].to_version
        successes.append((current, won[0].to_version))
    trail = [(e.from_version, e.to_version) for e in setup.audit_trail("ETHUSDT")
             if e.alias == "production"]
    assert trail == successes
    assert lock_models(setup) == []


def test_rollback_and_its_refusals(server_registry, trained):
    register(server_registry, trained[0])
    before = registry_snapshot(server_registry)
    with pytest.raises(RollbackError, match="no earlier production version"):
        server_registry.rollback("ETHUSDT")
    assert registry_snapshot(server_registry) == before
    register(server_registry, trained[1], gate=False)
    register(server_registry, trained[2], gate=False)
    server_registry.promote("ETHUSDT", 2)
    server_registry.promote("ETHUSDT", 3)
    event = server_registry.rollback("ETHUSDT", reason="bad fills")
    assert (event.action, event.from_version, event.to_version) == ("rollback", 3, 2)
    assert server_registry.rollback("ETHUSDT").to_version == 1
    with pytest.raises(RollbackError, match="already production"):
        server_registry.rollback("ETHUSDT", to_version=1)
    with pytest.raises(RollbackError, match="does not exist"):
        server_registry.rollback("ETHUSDT", to_version=42)
    assert server_registry.production_version("ETHUSDT") == 1
    assert lock_models(server_registry) == []


# --------------------------------------------------------------------------- views
def test_status_metadata_compare_and_best_views(server_registry, trained):
    assert views.status(server_registry) == []
    for result in trained:
        register(server_registry, result)
    register(server_registry, trained[0], ticker="BTCUSDT")
    rows = {r["ticker"]: r for r in views.status(server_registry)}
    assert set(rows) == {"ETHUSDT", "BTCUSDT"}
    eth = rows["ETHUSDT"]
    assert eth["versions"] == 3 and eth["latest"] == 3 and eth["training_sessions"] == 3
    assert eth["production"] == server_registry.production_version("ETHUSDT")
    assert eth["flow_type_accuracy"] == pytest.approx(
        server_registry.resolve("ETHUSDT").metrics["flow_type_accuracy"])
    meta = views.metadata(server_registry)
    assert set(meta["BTCUSDT"]) == {"created_at", "training_sessions", "total_samples",
                                    "last_trained", "performance_metrics", "model_version"}
    assert meta["BTCUSDT"]["model_version"] == 1
    ranked = views.best(server_registry, "flow_type_accuracy", 5)
    assert [r["rank"] for r in ranked] == [1, 2]
    assert ranked[0]["value"] >= ranked[1]["value"]
    diff = {r["metric"]: r for r in views.compare(server_registry, "ETHUSDT", 1, 2)}
    assert diff["impact_mse"]["difference"] == pytest.approx(
        diff["impact_mse"]["v2"] - diff["impact_mse"]["v1"])


def test_plain_mlflow_loads_production_from_the_server(server_registry, tracking_server,
                                                      trained, monkeypatch):
    register(server_registry, trained[0])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.uri)
    name = server_registry.model_name("ETHUSDT")
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}@production")
    X = trained[0].X_valid.iloc[:20].reset_index(drop=True)
    out = pyfunc.predict(X)
    expected = trained[0].model.predict(X).reset_index(drop=True)
    pd.testing.assert_frame_equal(out, expected, check_dtype=False)


# --------------------------------------------------------------------------- bundles, cleanup
@pytest.mark.skipif(importlib.util.find_spec("ticker_registry.bundle") is None,
                    reason="ticker_registry.bundle is not there yet")
def test_bundle_round_trip_between_the_server_and_a_local_store(server_registry, tmp_path,
                                                               quick_config, trained):
    from ticker_registry.bundle import export_bundle, import_bundle

    register(server_registry, trained[0])
    local = TickerRegistry(quick_config, models_dir=tmp_path / "local")
    bundle = tmp_path / "eth.bundle"
    export_bundle(server_registry, "ETHUSDT", bundle)
    imported = import_bundle(local, bundle, promote=True)
    assert imported.created and local.production_version("ETHUSDT") == imported.version.version
    X = trained[0].X_valid.iloc[:50]
    pd.testing.assert_frame_equal(local.load_model("ETHUSDT").predict(X),
                                  server_registry.load_model("ETHUSDT").predict(X))
    assert not import_bundle(local, bundle).created  # same file again: found, not duplicated

    # and back: a local version into the server under another ticker
    back = tmp_path / "back.bundle"
    export_bundle(local, "ETHUSDT", back)
    result = import_bundle(server_registry, back, as_ticker="BTCUSDT", promote=True)
    assert result.created and result.version.name == server_registry.model_name("BTCUSDT")
    pd.testing.assert_frame_equal(server_registry.load_model("BTCUSDT").predict(X),
                                  trained[0].model.predict(X))
    assert lock_models(server_registry) == []


@pytest.mark.skipif(importlib.util.find_spec("ticker_registry.maintenance") is None,
                    reason="ticker_registry.maintenance is not there yet")
def test_cleanup_on_the_server(server_registry, trained):
    from ticker_registry.maintenance import cleanup

    for i in range(4):
        result = trained[i % 3]
        server_registry.register("ETHUSDT", result.model, lineage=result.lineage,
                                 idempotency_key=f"cleanup-{i}")
    server_registry.promote("ETHUSDT", 1)
    run_ids = {v.version: v.run_id for v in server_registry.list_versions("ETHUSDT")}
    later = datetime.now(UTC) + timedelta(days=40)
    plan = cleanup(server_registry, keep_last=1, now=later, dry_run=True)
    assert sorted(r["version"] for r in plan.deleted) == [2, 3]
    assert [v.version for v in server_registry.list_versions("ETHUSDT")] == [4, 3, 2, 1]
    report = cleanup(server_registry, keep_last=1, now=later)
    assert report.deleted == plan.deleted
    assert [v.version for v in server_registry.list_versions("ETHUSDT")] == [4, 1]
    client = MlflowClient(server_registry.tracking_uri)
    assert client.get_run(run_ids[2]).info.lifecycle_stage == "deleted"
    assert client.get_run(run_ids[1]).info.lifecycle_stage == "active"
    assert server_registry.production_version("ETHUSDT") == 1
    assert lock_models(server_registry) == []


# --------------------------------------------------------------------------- manager
def test_manager_follows_a_promotion_made_by_another_manager(make_server_manager, trained):
    serving = make_server_manager(refresh_interval=0.2)
    operator = make_server_manager()
    register(serving.registry, trained[0])
    register(serving.registry, trained[1], gate=False)
    assert serving.get_or_create_model("ETHUSDT").version == 1
    operator.promote("ETHUSDT", 2, reason="operator")
    promoted_at = time.monotonic()
    while serving.cache.peek("ETHUSDT").version != 2:
        assert time.monotonic() - promoted_at < 0.2 + 5.0, "the manager did not follow"
        time.sleep(0.02)
    followed_after = time.monotonic() - promoted_at
    entry = serving.get_or_create_model("ETHUSDT")
    assert entry.version == 2 and entry.model is not None
    X = trained[1].X_valid.iloc[:10]
    pd.testing.assert_frame_equal(entry.model.predict(X), trained[1].model.predict(X))
    assert followed_after < 0.2 + 5.0


def test_manager_trains_and_serves_through_the_server(server_manager):
    outcome = server_manager.train("ETHUSDT", trades=make_trades(6000, seed=3))
    assert outcome.created and outcome.decision.promoted
    assert server_manager.train("ETHUSDT", trades=make_trades(6000, seed=3)).created is False
    status = {r["ticker"]: r for r in server_manager.status()}
    assert status["ETHUSDT"]["production"] == 1 and status["ETHUSDT"]["training_sessions"] == 1
    assert server_manager.get_or_create_model("ETHUSDT").model is not None


# --------------------------------------------------------------------------- locks
def test_the_server_lock_excludes_concurrent_writers(tracking_server, server_config,
                                                    server_registry, tmp_path):
    """Four writers increment a tag read-modify-write under the lock: no update is lost."""
    name = server_registry.model_name("ETHUSDT")
    server_registry.store.client.create_registered_model(name, tags={"counter": "0"})
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work(i: int) -> None:
        reg = TickerRegistry(server_config, tracking_uri=tracking_server.uri,
                             models_dir=tmp_path / f"w{i}")
        reg.store.client.get_registered_model(name)
        barrier.wait()
        try:
            for _ in range(8):
                with TickerLock(reg.store, name):
                    value = int(reg.store.client.get_registered_model(name).tags["counter"])
                    time.sleep(0.005)
                    reg.store.client.set_registered_model_tag(name, "counter", str(value + 1))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert errors == []
    assert server_registry.store.client.get_registered_model(name).tags["counter"] == "32"
    assert lock_models(server_registry) == []


def test_a_lock_left_by_this_process_is_broken_at_once(server_registry, trained):
    """A release lost to an unreachable server leaves the lock model; we take it back at once."""
    register(server_registry, trained[0])
    name = server_registry.model_name("ETHUSDT")
    lock = TickerLock(server_registry.store, name)
    lock.__enter__()
    from ticker_registry import locking

    locking._HELD.discard(lock._token)  # forget it without releasing: what a failed release
    lock._token = None                  # (server unreachable) leaves behind
    assert lock_models(server_registry) == [f"{LOCK_PREFIX}{name}"]
    start = time.monotonic()
    register(server_registry, trained[1])
    assert time.monotonic() - start < 10
    assert lock_models(server_registry) == []


def test_a_live_foreign_lock_is_waited_for_and_a_stale_one_broken(server_registry, trained):
    register(server_registry, trained[0])
    name = server_registry.model_name("ETHUSDT")
    client = server_registry.store.client
    client.create_registered_model(f"{LOCK_PREFIX}{name}", tags={
        "acquired_at": repr(time.time()), "owner": "elsewhere/boot/pid_[1]:4242:1:abc"})
    with pytest.raises(RegistryError, match=f"delete the registered model '{LOCK_PREFIX}"), \
            TickerLock(server_registry.store, name, timeout=1.0):
        pass
    client.set_registered_model_tag(f"{LOCK_PREFIX}{name}", "acquired_at",
                                    repr(time.time() - STALE_AFTER - 1))
    with TickerLock(server_registry.store, name, timeout=5.0):
        assert lock_models(server_registry) == [f"{LOCK_PREFIX}{name}"]
    assert lock_models(server_registry) == []


# --------------------------------------------------------------------------- errors, deadlines
class _StatusServer:
    """A tiny HTTP server answering every request with one status code."""

    def __init__(self, status: int, body: bytes = b"unavailable") -> None:
        import http.server

        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(owner.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self.status = status
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_http_5xx_and_429_are_transient_and_retried(status, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    server = _StatusServer(status)
    calls = []

    def search():
        calls.append(1)
        return MlflowClient(server.uri).search_registered_models()

    try:
        with pytest.raises(TransientRegistryError, match=rf"{server.uri} \(HTTP {status}\)"):
            with_retries(search, uri=server.uri, attempts=3, deadline=5)
    finally:
        server.close()
    assert len(calls) == 3


def test_refused_connection_is_transient_and_404_is_not(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    uri = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(RegistryUnavailableError, match=r"\(connection refused\)"):
        with_retries(MlflowClient(uri).search_registered_models, uri=uri, attempts=2, deadline=2)
    server = _StatusServer(404)
    try:
        with pytest.raises(RegistryError) as info:
            with_retries(MlflowClient(server.uri).search_registered_models, uri=server.uri,
                         attempts=3, deadline=5)
    finally:
        server.close()
    assert not isinstance(info.value, TransientRegistryError)


def _cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "TICKER_REGISTRY_"))}
    env["PYTHONWARNINGS"] = "ignore"
    return env


def _run_cli(tmp_path: Path, uri: str) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "ticker_registry", "--tracking-uri", uri,
                           "--models-dir", str(tmp_path / "models"), "status"],
                          env=_cli_env(), cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    return proc, time.monotonic() - start


def _assert_one_line_error(proc: subprocess.CompletedProcess, uri: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: ") and uri in lines[0], lines[0]


def test_cli_fails_within_the_deadline_when_the_port_is_closed(tmp_path):
    uri = f"http://127.0.0.1:{closed_port()}"
    proc, elapsed = _run_cli(tmp_path, uri)
    _assert_one_line_error(proc, uri)
    assert "connection refused" in proc.stderr
    assert elapsed < CLI_DEADLINE_S + STARTUP_SLACK_S


def test_cli_fails_within_the_deadline_when_the_server_hangs(tmp_path):
    """A server that accepts connections and never answers: the worst case of the deadline."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(64)
        uri = f"http://127.0.0.1:{hung.getsockname()[1]}"
        proc, elapsed = _run_cli(tmp_path, uri)
    _assert_one_line_error(proc, uri)
    assert "no answer within the timeout" in proc.stderr
    assert elapsed < CLI_DEADLINE_S + STARTUP_SLACK_S


def test_cli_trains_and_reads_through_the_server(tracking_server, server_registry,
                                                 server_namespace, tmp_path):
    config = tmp_path / "team.yaml"
    config.write_text(f"namespace: {server_namespace}\n")
    trades = tmp_path / "ETHUSDT-trades.csv"
    make_trades(5000, seed=7).to_csv(trades, index=False)
    base = [sys.executable, "-m", "ticker_registry", "--tracking-uri", tracking_server.uri,
            "--config", str(config), "--models-dir", str(tmp_path / "cli")]

    def run(*args: str) -> str:
        proc = subprocess.run([*base, *args], env=_cli_env(), cwd=tmp_path,
                              capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    trained = json.loads(run("train", "--ticker", "ETHUSDT", "--trades", str(trades),
                             "--format", "json"))  # stdout is JSON only (no "View run" line)
    assert json.dumps(trained) and server_registry.production_version("ETHUSDT") == 1
    status = json.loads(run("status", "--format", "json"))  # one row per ticker
    assert [(r["ticker"], r["production"]) for r in status] == [("ETHUSDT", 1)]
    assert lock_models(server_registry) == []


# --------------------------------------------------------------------------- crashes
class CrashingProxy:
    """A TCP proxy in front of mlflow that SIGKILLs the server as it answers one request.

    The first request whose bytes contain ``trigger`` is forwarded; the moment the server's
    response starts to arrive (so the request was executed and committed), the mlflow
    process group is killed and the client's connection is dropped without the response:
    a lost response, made deterministic. Later connections are forwarded to the same port
    (refused while mlflow is down, served again once it is restarted).
    """

    def __init__(self, upstream_port: int, trigger: bytes, kill) -> None:
        self.upstream_port = upstream_port
        self.trigger = trigger
        self.kill = kill
        self.fired = threading.Event()
        self._fire_lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self.uri = f"http://127.0.0.1:{self.port}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            upstream.settimeout(None)
        except OSError:
            client.close()
            return
        armed = threading.Event()
        threading.Thread(target=self._pump_up, args=(client, upstream, armed),
                         daemon=True).start()
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                if armed.is_set():
                    with self._fire_lock:
                        if not self.fired.is_set():
                            self.kill()
                            self.fired.set()
                            break  # drop the response
                client.sendall(data)
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def _pump_up(self, client: socket.socket, upstream: socket.socket,
                 armed: threading.Event) -> None:
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                if not self.fired.is_set() and self.trigger in data:
                    armed.set()
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            try:
                upstream.shutdown(socket.SHUT_WR)
            except OSError:
                pass


RUN_CREATE = b" /api/2.0/mlflow/runs/create "
VERSION_CREATE = b" /api/2.0/mlflow/model-versions/create "


@pytest.mark.parametrize(("trigger", "client_retries"), [
    (RUN_CREATE, False),        # killed once the run exists; the registration gives up
    (VERSION_CREATE, False),    # the version is committed, its response lost; gives up
    (VERSION_CREATE, True),     # same, but MLflow's HTTP retries re-send the POST after restart
], ids=["after-create-run", "lost-create-version", "create-version-resent"])
def test_registration_survives_a_server_crash(crashable_server, server_config, tmp_path,
                                              trained, monkeypatch, caplog, trigger,
                                              client_retries):
    caplog.set_level("WARNING", logger="ticker_registry")
    crashable_server.reload()
    proxy = CrashingProxy(int(crashable_server.env["TR_MLFLOW_PORT"]), trigger,
                          crashable_server.kill_mlflow)
    result = trained[0]
    reg = TickerRegistry(server_config, tracking_uri=proxy.uri, models_dir=tmp_path / "reg")
    key = result.idempotency_key
    try:
        if client_retries:
            # MLflow's own retries (6, backoff 0, 2, 4, 8, 16, 32 s) outlast the restart
            monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "6")
            monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
            box: dict[str, object] = {}

            def work() -> None:
                try:
                    box["result"] = reg.register("ETHUSDT", result.model, lineage=result.lineage,
                                                 idempotency_key=key)
                except Exception as exc:
                    box["error"] = exc

            worker = threading.Thread(target=work)
            worker.start()
            assert proxy.fired.wait(120), "the registration never reached the trigger"
            crashable_server.restart_mlflow()
            worker.join(180)
            assert "error" not in box, box.get("error")
            info, created = box["result"]
            assert created
            # the re-sent POST did create a second version, and it was dropped again
            assert f"a duplicate of version {info.version}" in caplog.text
        else:
            monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
            monkeypatch.setenv("TICKER_REGISTRY_RETRY_DEADLINE", "2")
            with pytest.raises(RegistryUnavailableError, match=proxy.uri):
                reg.register("ETHUSDT", result.model, lineage=result.lineage,
                             idempotency_key=key)
            assert proxy.fired.is_set()
            assert not crashable_server.healthy()
            crashable_server.restart_mlflow()
            # the same registration again (same idempotency key)
            info, created = reg.register("ETHUSDT", result.model, lineage=result.lineage,
                                         idempotency_key=key)
            assert created == (trigger == RUN_CREATE)
    finally:
        proxy.close()
    direct = TickerRegistry(server_config, tracking_uri=crashable_server.uri,
                            models_dir=tmp_path / "direct")
    versions = direct.list_versions("ETHUSDT")
    assert [(v.version, v.status) for v in versions] == [(info.version, "READY")]
    found = MlflowClient(crashable_server.uri).search_model_versions(
        f"name='{info.name}' and tags.idempotency_key='{key}'")
    assert len(found) == 1
    if trigger == RUN_CREATE:  # the first attempt's run is left behind, never registered
        runs = MlflowClient(crashable_server.uri).search_runs(
            [direct.experiment_id], f"tags.idempotency_key = '{key}'")
        assert len(runs) == 2 and info.run_id in {r.info.run_id for r in runs}
    # the version is usable, and the ticker's lock is free again (a leftover is taken back)
    direct.promote("ETHUSDT", info.version, expected=None)
    assert direct.load_model("ETHUSDT").metrics_ == pytest.approx(result.model.metrics_)
    assert lock_models(direct) == []


def test_manager_retrain_after_a_crash_gates_the_recovered_version(crashable_server, server_config,
                                                                   tmp_path, monkeypatch):
    """The version whose response was lost is found by its key, then gated and served."""
    crashable_server.reload()
    proxy = CrashingProxy(int(crashable_server.env["TR_MLFLOW_PORT"]), VERSION_CREATE,
                          crashable_server.kill_mlflow)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("TICKER_REGISTRY_RETRY_DEADLINE", "2")
    X, y = build_training_set(make_trades(6000, seed=4), server_config)
    manager = SyncTickerModelManager(server_config, tmp_path / "m", proxy.uri, auto_retrain=False)
    try:
        with pytest.raises(RegistryUnavailableError):
            manager.train("ETHUSDT", X=X, y=y)
        crashable_server.restart_mlflow()
        outcome = manager.train("ETHUSDT", X=X, y=y)
        assert not outcome.created and outcome.decision is not None
        assert outcome.decision.promoted
        assert manager.registry.production_version("ETHUSDT") == outcome.version.version
        assert manager.get_or_create_model("ETHUSDT").model is not None
        assert len(manager.registry.list_versions("ETHUSDT")) == 1
    finally:
        manager.close()
        proxy.close()
