"""B8: one-row request latency through ``mlflow models serve``, features and raw trades.

Ours: the production version of one ticker (three XGBoost heads; the pyfunc with the
serving code it carries) served by ``mlflow models serve --env-manager local``. One
request is one ``dataframe_split`` body of either

- one feature row (the ``FEATURE_NAMES`` columns), or
- a raw-trades window: the last ``sequence_length`` trades (epoch ms, ``buy``/``sell``,
  a quote), from which the version computes the features of the newest trade.

Baseline: a plain ``mlflow.xgboost`` model (the version's ``flow_type`` booster, with a
signature inferred from the same features) served the same way, sent the same feature
row. One head against three is the point: what our wrapper, validation and the two
other heads cost over the plainest MLflow model.

Both servers run at once on loopback, each reached through one keep-alive HTTP
connection; calls interleave (ours-features, ours-trades, baseline) so load hits all
three alike. Reported: p50 latency of a repetition, median over repetitions, and the
ratio baseline / ours (below 1: ours is slower); p99 goes in the note.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from .fixtures import config, store, train
from .harness import Context, Row, median, percentile

TICKER = "ETHUSDT"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(model_uri: str, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, int]:
    """Start ``mlflow models serve`` and return once ``/ping`` answers (bounded poll)."""
    port = _free_port()
    with open(log, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
                                 "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
                                env=env, stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as resp:
                if resp.status == 200:
                    return proc, port
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            raise RuntimeError(f"mlflow models serve did not start: {log.read_text()[-2000:]}")
        try:
            proc.wait(timeout=0.25)
        except subprocess.TimeoutExpired:
            pass


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


class _Client:
    """One keep-alive connection to a scoring server; ``post`` returns the parsed answer."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, body: bytes) -> Any:
        self.conn.request("POST", "/invocations", body, {"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {data[:500]!r}")
        return json.loads(data)


def _body(frame: Any) -> bytes:
    split = {"columns": list(frame.columns), "data": frame.to_numpy(dtype=object).tolist()}
    return json.dumps({"dataframe_split": split}).encode()


def run(ctx: Context) -> list[Row]:
    import mlflow.xgboost
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature

    from ticker_registry import compute_live_features, generate_trades
    from ticker_registry.model import package_versions
    from ticker_registry.registry import TickerRegistry

    cfg = config(ctx.quick)
    result = train(cfg, ctx.pick(6_000, 20_000))
    registry = TickerRegistry(cfg, models_dir=store(ctx, "store"))
    info, _ = registry.register(TICKER, result.model, lineage=result.lineage, idempotency_key="b8")
    registry.promote(TICKER, info.version)
    spec = result.model.spec_

    X = result.X_valid.iloc[:64].reset_index(drop=True)
    booster = result.model.heads_["flow_type"].booster  # type: ignore[attr-defined]
    plain_dir = ctx.folder("plain") / "model"
    mlflow.xgboost.save_model(booster, str(plain_dir),
                              signature=infer_signature(X, booster.inplace_predict(X.to_numpy())),
                              pip_requirements=[f"xgboost=={package_versions()['xgboost']}"])

    n = spec.sequence_length
    trades = generate_trades(TICKER, n + 64, seed=7)
    windows = []
    for i in range(64):
        w = trades.iloc[i:i + n]
        windows.append(pd.DataFrame({
            "timestamp": w["timestamp"].astype("int64") // 1_000_000, "price": w["price"],
            "quantity": w["quantity"], "side": np.where(w["side"] > 0, "buy", "sell"),
            "bid": w["price"] * 0.9999, "ask": w["price"] * 1.0001, "bid_size": 3.0,
            "ask_size": 2.0}))
    feature_bodies = [_body(X.iloc[[i]]) for i in range(len(X))]
    trade_bodies = [_body(w) for w in windows]

    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # uvicorn
    ours_env = {**env, "MLFLOW_TRACKING_URI": registry.tracking_uri}
    procs = []
    try:
        ours_proc, ours_port = _serve(f"models:/{info.name}@production", ours_env,
                                      ctx.workdir / "serve-ours.log")
        procs.append(ours_proc)
        base_proc, base_port = _serve(str(plain_dir), env, ctx.workdir / "serve-plain.log")
        procs.append(base_proc)
        ours, base = _Client(ours_port), _Client(base_port)

        # a benchmark of wrong answers proves nothing: check one of each against the library
        got = ours.post(feature_bodies[0])["predictions"][0]
        want = result.model.predict(X.iloc[[0]]).iloc[0]
        assert abs(got["impact"] - want["impact"]) < 1e-9, (got, want)
        w = windows[0].iloc[-n:]
        events = w[["timestamp", "price", "quantity", "side"]].to_dict("records")
        quote = w.iloc[-1][["bid", "ask", "bid_size", "ask_size"]].to_dict()
        live = result.model.predict(pd.DataFrame([compute_live_features(events, quote, spec)]))
        got = ours.post(trade_bodies[0])["predictions"][0]
        assert abs(got["impact"] - float(live["impact"].iloc[0])) < 1e-9, (got, live)
        plain = base.post(feature_bodies[0])["predictions"]
        assert np.allclose(np.asarray(plain).ravel(),
                           booster.inplace_predict(X.iloc[[0]].to_numpy()).ravel())

        variants = {"features": (ours, feature_bodies), "trades": (ours, trade_bodies),
                    "plain": (base, feature_bodies)}
        calls = ctx.pick(60, 600)
        reps = ctx.pick(2, 5)
        clock = time.perf_counter_ns
        for client, bodies in variants.values():  # warm-up
            for i in range(min(calls, 50)):
                client.post(bodies[i % len(bodies)])
        stats: dict[str, dict[str, list[float]]] = {k: {"p50": [], "p99": []} for k in variants}
        for _ in range(reps):
            lat: dict[str, list[float]] = {k: [] for k in variants}
            for i in range(calls):
                for name, (client, bodies) in variants.items():
                    start = clock()
                    client.post(bodies[i % len(bodies)])
                    lat[name].append((clock() - start) / 1e9)
            for name, xs in lat.items():
                stats[name]["p50"].append(percentile(xs, 50))
                stats[name]["p99"].append(percentile(xs, 99))
    finally:
        for proc in procs:
            _stop(proc)

    t_plain = median(stats["plain"]["p50"])
    rows = []
    for name, what in (("features", "serve one feature row"),
                       ("trades", f"serve one raw-trades window ({n} trades)")):
        t = median(stats[name]["p50"])
        rows.append(Row("B8", f"{what}, p50 (mlflow models serve)", t, "s",
                        "plain mlflow.xgboost model (1 head), same feature row", t_plain,
                        "report", None, repeats=reps,
                        note=f"p99 {median(stats[name]['p99']) * 1e3:.2f} ms vs "
                             f"{median(stats['plain']['p99']) * 1e3:.2f} ms; {calls} calls "
                             "per repetition, one keep-alive connection per server"))
    return rows
