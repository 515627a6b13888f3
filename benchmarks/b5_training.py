"""B5: training many tickers x 10k samples, 1 worker vs 2 workers (local processes, Dask).

Each ticker gets a Parquet file of synthetic trades cut so that
``build_training_set`` yields 10,000 samples (rows) with the default config
(100 trees per head, 5-minute horizon); synthetic tickers whose labels miss
a flow class (a one-sided profile) are skipped for the next name. The files are
made once per run (the 20-ticker rows use the first 20 of the 200). ``train_many``
reads, trains, registers and gates every ticker into a fresh SQLite store per call.

Ours: ``train_many(manager, jobs, workers=2)`` on local processes and on a Dask
``LocalCluster`` of 2 processes (made and closed inside the timed call): 2
workers, forked from the template process ``ticker_registry.parallel`` keeps per
process, each train ``n_jobs = cores // 2`` threads per model and return the
model's bytes; this process registers each as it comes back.
Baseline: ``train_many(manager, jobs, workers=1)``, i.e. ``manager.train`` of
each ticker in the calling process with ``n_jobs = threads_per_worker(1)`` (all
cores), what one worker does.

Full mode first warms up each variant on 2 tickers, untimed (imports, the page
cache, the workers' template: the first pool of a process starts it, about 3 s
idle; the note gives these times), then runs one round per size, the three
variants one after another (both rows of a size share the baseline): the 200-ticker
round alone takes about 10 minutes on an idle machine. The harness stops a benchmark
after 900 s, so a size whose round would not fit what is left (estimated from the
round before, or from the warm-up's 1-worker time with both parallel variants at
half of it) is reported skipped; ``TR_B5_TICKERS=200`` runs only that size.

Targets, on 2 cores: at least 1.7x at 20 tickers, at least 1.9x at 200 (full mode
only). Quick mode trains 2 tickers x 1,000 samples with small models, template
start included: a smoke run. Without ``distributed`` (the ``dask`` extra) the Dask
rows say skipped.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from functools import partial
from pathlib import Path
from typing import Any

from .fixtures import config, store
from .harness import Context, Row, interleaved, median

#: (tickers, samples per ticker, target speedup) of each size; one round each (see the docstring).
FULL = ((20, 10_000, 1.7), (200, 10_000, 1.9))
QUICK = ((2, 1_000, 1.7),)
#: Environment variable choosing the full run's sizes, e.g. ``200`` (default: all of ``FULL``).
SIZES_ENV = "TR_B5_TICKERS"
#: Seconds this benchmark may take: the harness stops a full-mode benchmark after 900 s.
BUDGET_S = 870.0


def _trade_file(folder: Path, ticker: str, samples: int, cfg: Any) -> Path:
    """A Parquet file of the shortest trade prefix giving at least ``samples`` training rows."""
    import numpy as np

    from ticker_registry import generate_trades
    from ticker_registry.features import FeatureSpec

    spec = FeatureSpec.from_config(cfg)
    n_trades = samples * 2 + 1000
    while True:
        trades = generate_trades(ticker, n_trades, seed=5)
        ts = trades["timestamp"].astype("int64").to_numpy()
        # events of a prefix of length L: last trade with a full horizon, minus the window
        events = (np.searchsorted(ts, ts - spec.horizon_ns, side="right")
                  - spec.sequence_length + 1)
        hits = np.flatnonzero(events >= samples)
        if len(hits):
            break
        n_trades *= 2
    path = folder / f"{ticker}.parquet"
    trades.iloc[: hits[0] + 1].to_parquet(path, index=False)
    return path


def _jobs(folder: Path, n_tickers: int, samples: int, cfg: Any) -> list[tuple[str, list[str]]]:
    """``n_tickers`` (ticker, [file]) jobs of ``samples`` rows each, every flow class present."""
    from ticker_registry import read_trades
    from ticker_registry.features import build_training_set

    jobs: list[tuple[str, list[str]]] = []
    for i in itertools.count():
        if len(jobs) == n_tickers:
            return jobs
        ticker = f"T{i:03d}USDT"
        path = _trade_file(folder, ticker, samples, cfg)
        X, y = build_training_set(read_trades(path), cfg)
        assert samples <= len(X) <= samples * 1.01, len(X)  # trades sharing a millisecond
        if y["flow_type"].nunique() == len(y["flow_type"].cat.categories):
            jobs.append((ticker, [str(path)]))  # some synthetic profiles are one-sided: skip them
    raise AssertionError("unreachable")


def _has_dask() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def _sizes(quick: bool) -> tuple[tuple[int, int, float], ...]:
    if quick:
        return QUICK
    chosen = {int(v) for v in os.environ.get(SIZES_ENV, "").replace(",", " ").split()}
    sizes = tuple(size for size in FULL if not chosen or size[0] in chosen)
    if not sizes:
        raise SystemExit(f"{SIZES_ENV}={os.environ[SIZES_ENV]!r}: use some of "
                         f"{', '.join(str(n) for n, *_ in FULL)}")
    return sizes


def run(ctx: Context) -> list[Row]:
    from ticker_registry import SyncTickerModelManager
    from ticker_registry.parallel import threads_per_worker, train_many

    began = time.perf_counter()
    sizes = _sizes(ctx.quick)
    cfg = config(ctx.quick)
    samples = sizes[0][1]
    all_jobs = _jobs(ctx.folder("trades"), max(n for n, *_ in sizes), samples, cfg)
    executors = ["local", "dask"] if _has_dask() else ["local"]

    counter = itertools.count()
    managers: dict[str, Any] = {}

    def fresh_store(variant: str) -> None:
        """A new store with its schema and experiment created (untimed, like a deployed one)."""
        n_jobs = threads_per_worker(1) if variant == "1 worker" else cfg.n_jobs
        folder = store(ctx, f"store-{variant.replace(' ', '-').replace(',', '')}-{next(counter)}")
        manager = SyncTickerModelManager(cfg.replace(n_jobs=n_jobs), models_dir=folder,
                                         auto_retrain=False)
        assert manager.registry.experiment_id
        managers[variant] = manager

    def train(variant: str, jobs: list, workers: int, executor: str = "local") -> None:
        with managers.pop(variant) as manager:
            results = train_many(manager, jobs, workers=workers, executor=executor)
        assert len(results) == len(jobs) and all(r["created"] for r in results), results

    def variants(jobs: list) -> dict[str, Any]:
        out = {f"2 workers, {ex}": partial(train, f"2 workers, {ex}", jobs, 2, ex)
               for ex in executors}
        out["1 worker"] = partial(train, "1 worker", jobs, 1)
        return out

    warm: dict[str, float] = {}
    if not ctx.quick:
        # warm-up, untimed: imports and the trade files in the page cache (1 worker), the
        # workers' template process (the first pool of a process starts it) and Dask's imports
        for name, fn in variants(all_jobs[:2]).items():
            fresh_store(name)
            start = time.perf_counter()
            fn()
            warm[name] = time.perf_counter() - start
    rows: list[Row] = []
    # tickers and seconds of a round: until one is measured, the warm-up's 1 worker plus two
    # variants at half its time each (the targets' 2x)
    last = (2, 2 * warm["1 worker"]) if warm else (1, 0.0)
    for n_tickers, _samples, target in sizes:
        jobs = all_jobs[:n_tickers]
        what = [(ex, f"train_many {n_tickers} tickers x {samples:,} samples, 2 workers "
                     f"({'local processes' if ex == 'local' else 'Dask LocalCluster'})")
                for ex in ("local", "dask")]
        left = BUDGET_S - (time.perf_counter() - began)
        guess = last[1] * n_tickers / last[0]
        if not ctx.quick and guess > left:
            note = (f"skipped: one round would take about {guess:.0f} s ({n_tickers / last[0]:.0f}x "
                    f"a {last[0]}-ticker round), {left:.0f} s of this benchmark's budget are "
                    f"left; run it alone: {SIZES_ENV}={n_tickers} python -m benchmarks --only B5")
            rows += [Row("B5", w, math.nan, "s", "1 worker (n_jobs = 2)", None, f">= {target}x",
                         None, note=note) for _ex, w in what]
            continue
        start = time.perf_counter()
        times = interleaved(variants(jobs), rounds=1, warmup=0, setup=fresh_store)
        last = (n_tickers, time.perf_counter() - start)
        t1 = median(times["1 worker"])
        for ex, w in what:
            if ex not in executors:
                rows.append(Row("B5", w, math.nan, "s", "1 worker (n_jobs = 2)", t1,
                                f">= {target}x", None,
                                note="skipped: distributed is not installed "
                                     "(pip install 'ticker-registry[dask]')"))
                continue
            t2 = median(times[f"2 workers, {ex}"])
            note = (f"{t1 / n_tickers:.2f} s per ticker with 1 worker, {t2 / n_tickers:.2f} s "
                    f"with 2; load {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
            if warm and n_tickers == sizes[0][0] and ex == "local":
                note += ("; untimed warm-up on 2 tickers (the first pool starts the template): "
                         + ", ".join(f"{k} {v:.1f} s" for k, v in warm.items()))
            rows.append(Row("B5", w, t2, "s", "1 worker (n_jobs = 2)", t1, f">= {target}x",
                            t1 / t2 >= target, repeats=len(times[f"2 workers, {ex}"]), note=note))
    return rows
