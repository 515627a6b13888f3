"""B7: registering 50 versions against the local PostgreSQL-backed server.

The server is started for this benchmark only, with its whole state in the
benchmark's temporary folder (``scripts/start_tracking_server.sh STATE_DIR 0``:
PostgreSQL backend, ``mlflow server --workers 2`` (one per core) serving artifacts), and
stopped at the end. Without PostgreSQL the benchmark reports itself skipped.

Ours: a ``ThreadPoolExecutor`` of 8 threads calling ``TickerRegistry.register``
for 50 different tickers (one shared registry, bounded concurrency); each
registration takes the ticker's remote lock, logs the run and the pyfunc
artifacts through the server, and creates the version.
Baseline: plain ``mlflow.xgboost.log_model(..., registered_model_name=...)``
with MLflow's defaults, one after another, inside ``mlflow.start_run`` (the
global tracking URI is set in this process only). At about 2 s per call it
runs 3 versions per repetition (1 in quick mode), reported as versions/s.

Target: at least 10 versions/s with bounded concurrency (the issue's figure).
"""

from __future__ import annotations

import glob
import itertools
import math
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .fixtures import config, train
from .harness import Context, Row, interleaved, median

REPO = Path(__file__).resolve().parent.parent
THREADS = 8
#: uvicorn workers of the server: one per core, as a deployment would run it
SERVER_WORKERS = 2


def _postgres_missing() -> str | None:
    if glob.glob("/usr/lib/postgresql/*/bin/initdb") or shutil.which("pg_config"):
        return None
    return "PostgreSQL server binaries not found (scripts/install_system_deps.sh installs them)"


def _start(state: Path, workers: int = 1) -> dict[str, str]:
    proc = subprocess.run(["bash", str(REPO / "scripts/start_tracking_server.sh"), str(state), "0"],
                          capture_output=True, text=True, timeout=180, check=False,
                          env={**os.environ, "TR_MLFLOW_WORKERS": str(workers)})
    if proc.returncode != 0:
        raise RuntimeError(f"start_tracking_server.sh failed: {proc.stderr.strip()[-300:]}")
    env = {}
    for line in (state / "env").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            env[key.strip()] = value.strip()
    return env


def _stop(state: Path) -> None:
    subprocess.run(["bash", str(REPO / "scripts/stop_tracking_server.sh"), str(state)],
                   capture_output=True, text=True, timeout=120, check=False)


def run(ctx: Context) -> list[Row]:
    missing = _postgres_missing()
    what = "50 registrations on the PostgreSQL server, 8 threads"
    if missing:
        return [Row("B7", what, math.nan, "versions/s", "-", None, ">= 10 versions/s", None,
                    note=f"skipped: {missing}")]
    state = ctx.folder("server")
    try:
        env = _start(state, workers=SERVER_WORKERS)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        _stop(state)
        return [Row("B7", what, math.nan, "versions/s", "-", None, ">= 10 versions/s", None,
                    note=f"skipped: {exc}"[:300])]
    try:
        return _measure(ctx, env["MLFLOW_TRACKING_URI"])
    finally:
        _stop(state)


def _measure(ctx: Context, uri: str) -> list[Row]:
    import mlflow
    import mlflow.xgboost

    from ticker_registry.registry import TickerRegistry

    cfg = config(ctx.quick)
    result = train(cfg, ctx.pick(6_000, 20_000))
    model = result.model
    n_versions = ctx.pick(8, 50)
    n_plain = ctx.pick(1, 3)

    registry = TickerRegistry(cfg, tracking_uri=uri, models_dir=ctx.folder("client"))
    batches = itertools.count()

    def ours(count: int = n_versions) -> None:
        b = next(batches)
        tickers = [f"S{b:02d}X{i:03d}USDT" for i in range(count)]

        def one(ticker: str) -> None:
            registry.register(ticker, model, lineage=result.lineage,
                              idempotency_key=f"b7-{ticker}")

        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            list(pool.map(one, tickers))

    mlflow.set_tracking_uri(uri)  # this benchmark process only; log_model needs it
    experiment = mlflow.set_experiment("b7-plain-log-model").experiment_id
    booster = model.heads_["flow_type"].booster
    plain_names = itertools.count()

    def plain() -> None:
        for _ in range(n_plain):
            with mlflow.start_run(experiment_id=experiment):
                mlflow.xgboost.log_model(booster, name="model",
                                         registered_model_name=f"plain.P{next(plain_names):04d}")

    ours(THREADS)  # warm-up: experiment, connections, imports on every thread
    with mlflow.start_run(experiment_id=experiment):
        mlflow.xgboost.log_model(booster, name="model", registered_model_name="plain.warm-up")
    times = interleaved({"ours": ours, "plain": plain}, rounds=ctx.pick(1, 3), warmup=0)
    import requests

    ctx.breakdown_calls(
        f"B7 one batch of {n_versions} registrations: HTTP requests and client calls (all "
        "threads; per batch)", ours, 1,
        [(requests.Session, ("request",)),
         (registry.store.client, ("create_run", "log_batch", "log_artifacts", "create_model_version",
                            "set_terminated", "set_registered_model_tag", "search_model_versions",
                            "get_registered_model", "create_registered_model",
                            "delete_registered_model"))])
    t_ours, t_plain = median(times["ours"]), median(times["plain"])
    rate_ours, rate_plain = n_versions / t_ours, n_plain / t_plain
    return [Row("B7", f"{n_versions} registrations on the PostgreSQL server, {THREADS} threads",
                rate_ours, "versions/s", f"plain log_model one after another ({n_plain}/rep)",
                rate_plain, ">= 10 versions/s", rate_ours >= 10, higher_is_better=True,
                repeats=len(times["ours"]),
                note=f"{t_ours:.2f} s per batch of {n_versions}; "
                     f"{t_ours / n_versions * THREADS * 1e3:.0f} ms per registration per thread")]

