"""B2: warm ``predict_for_ticker`` for one window, p50 and p99 latency.

The manager serves the production version of one ticker from its cache
(loaded once before timing). Each call gets one window of
``sequence_length`` order events as a list of dicts (``timestamp`` in ms,
``price``, ``quantity``, ``side`` as ``"buy"``/``"sell"``) plus a quote dict,
cycling through 64 different windows.

Baselines, on the same windows and the same version:

- the floor: ``compute_live_features`` + the three heads' native
  ``Booster.inplace_predict`` called directly;
- ``mlflow.pyfunc``: the version's pyfunc loaded once with
  ``mlflow.pyfunc.load_model``; each call builds the one-row feature frame
  with ``compute_live_features`` and calls ``predict``.

Each repetition times every call of a block; p50 and p99 are taken per
repetition and the median over repetitions is reported.
Targets: at most 1.3x the floor; at least 5x faster than pyfunc.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .fixtures import config, store, train
from .harness import Context, Row, median, percentile

TICKER = "ETHUSDT"


def _windows(n_windows: int, length: int) -> tuple[list[list[dict[str, Any]]], list[dict[str, float]]]:
    from ticker_registry import generate_trades

    trades = generate_trades(TICKER, n_windows + length, seed=7)
    ms = (trades["timestamp"].astype("int64") // 1_000_000).tolist()
    rows = [{"timestamp": t, "price": p, "quantity": q, "side": "buy" if s > 0 else "sell"}
            for t, p, q, s in zip(ms, trades["price"], trades["quantity"], trades["side"],
                                  strict=True)]
    windows = [rows[i:i + length] for i in range(n_windows)]
    quotes = [{"bid": w[-1]["price"] * 0.9999, "ask": w[-1]["price"] * 1.0001,
               "bid_size": 3.0, "ask_size": 2.0} for w in windows]
    return windows, quotes


def _latencies(fn: Callable[[list[dict[str, Any]], dict[str, float]], Any],
               windows: list, quotes: list, calls: int) -> list[float]:
    out = []
    k = len(windows)
    clock = time.perf_counter_ns
    for i in range(calls):
        w, q = windows[i % k], quotes[i % k]
        start = clock()
        fn(w, q)
        out.append((clock() - start) / 1e9)
    return out


def run(ctx: Context) -> list[Row]:
    import gc

    import mlflow.artifacts
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd

    from ticker_registry import SyncTickerModelManager, compute_live_features
    from ticker_registry.model import HEADS

    cfg = config(ctx.quick)
    result = train(cfg, ctx.pick(6_000, 20_000))
    manager = SyncTickerModelManager(cfg, models_dir=store(ctx, "store"), auto_retrain=False)
    info, _ = manager.registry.register(TICKER, result.model, lineage=result.lineage,
                                        idempotency_key="b2")
    manager.registry.promote(TICKER, info.version)
    served = manager.get_or_create_model(TICKER).model
    assert served is not None
    spec = served.spec_
    boosters = [served.heads_[h].booster for h in HEADS]  # type: ignore[attr-defined]  # XGBoost heads

    pyfunc_dir = ctx.folder("pyfunc")  # the version's model directory (its LoggedModel's files)
    local = mlflow.artifacts.download_artifacts(artifact_uri=info.source, dst_path=str(pyfunc_dir),
                                                tracking_uri=manager.registry.tracking_uri)
    pyfunc = mlflow.pyfunc.load_model(local)

    def ours(window: list, quote: dict) -> Any:
        return manager.predict_for_ticker(TICKER, window, quote)

    def floor(window: list, quote: dict) -> Any:
        features = compute_live_features(window, quote, spec)
        x = np.fromiter(features.values(), dtype=np.float64, count=len(features)).reshape(1, -1)
        return [b.inplace_predict(x) for b in boosters]

    def via_pyfunc(window: list, quote: dict) -> Any:
        return pyfunc.predict(pd.DataFrame([compute_live_features(window, quote, spec)]))

    windows, quotes = _windows(64, spec.sequence_length)
    # same answer on both native paths (a benchmark of wrong code proves nothing)
    got = ours(windows[0], quotes[0])
    ref = floor(windows[0], quotes[0])
    assert abs(got["impact"] - float(ref[1][0])) < 1e-9, (got, ref)

    calls = ctx.pick(200, 2000)
    variants = {"ours": (ours, calls), "floor": (floor, calls),
                "pyfunc": (via_pyfunc, ctx.pick(50, 400))}
    for fn, n in variants.values():  # warm-up
        _latencies(fn, windows, quotes, min(n, 200))
    stats: dict[str, dict[str, list[float]]] = {k: {"p50": [], "p99": []} for k in variants}
    reps = ctx.pick(2, 5)
    for _ in range(reps):
        for name, (fn, n) in variants.items():
            gc.collect()
            lat = _latencies(fn, windows, quotes, n)
            stats[name]["p50"].append(percentile(lat, 50))
            stats[name]["p99"].append(percentile(lat, 99))
    ctx.profile_calls("B2 predict_for_ticker", lambda: ours(windows[1], quotes[1]),
                      ctx.pick(500, 5000))

    rows = []
    for q in ("p50", "p99"):
        t_ours = median(stats["ours"][q])
        t_floor = median(stats["floor"][q])
        t_py = median(stats["pyfunc"][q])
        rows.append(Row("B2", f"warm predict_for_ticker {q}", t_ours, "s",
                        "floor: compute_live_features + 3 inplace_predict", t_floor,
                        ">= 0.77x (at most 1.3x the floor)", t_floor / t_ours >= 1 / 1.3,
                        repeats=reps, note=f"{calls} calls per repetition" if q == "p50" else ""))
        rows.append(Row("B2", f"warm predict_for_ticker {q}", t_ours, "s",
                        "mlflow.pyfunc predict (same version)", t_py, ">= 5x",
                        t_py / t_ours >= 5, repeats=reps))
    return rows
