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
cores), what one worker does. At 200 tickers it trains the first 50 and is
scaled by 4 (a sequential run is a sum of per-ticker times, and registration
cost stays flat as the store grows: 0.14 s per version from the 40th to the
200th): its 200 would take ~15 min alone on an idle machine. Each round also
times a reference, not a target, on all its tickers: ``manager.train`` of each
ticker with ``n_jobs = 1`` (no ``train_many``).
On this 2-vCPU VM, ``n_jobs = 2`` under ``OMP_WAIT_POLICY=PASSIVE`` is ~3.5x
slower than ``n_jobs = 1`` while the other vCPU idles (waking it costs more than
the work: 4.4 s against 1.2 s a model at load 0.7) and only ~1.2x slower when it
is busy, so the baseline, and with it the speedup, depends on the load; the
reference shows the gain over the best single process.

Full mode first warms up each variant on 2 tickers, untimed (imports, the page
cache, the workers' template: the first pool of a process starts it, about 3 s
idle; the note gives these times), then runs one round per size, the variants one
after another (both rows of a size share the baseline). The harness stops a
benchmark after ``TIMEOUT`` s, so a size whose round would not fit what is left
(estimated from the round before, or from the warm-up) is reported skipped;
``TR_B5_TICKERS=200`` runs only that size. The whole benchmark has ``TIMEOUT``
seconds (both sizes take about 30 minutes at load 1).

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

#: (tickers, samples per ticker, tickers the baseline trains, target speedup) of each size; one
#: round each (see the docstring).
FULL = ((20, 10_000, 20, 1.7), (200, 10_000, 50, 1.9))
QUICK = ((2, 1_000, 2, 1.7),)
#: Environment variable choosing the full run's sizes, e.g. ``200`` (default: all of ``FULL``).
SIZES_ENV = "TR_B5_TICKERS"
#: Seconds the harness gives this benchmark in full mode (both sizes with their references).
TIMEOUT = 3000.0
#: Seconds this benchmark plans its rounds in (some left for the report).
BUDGET_S = TIMEOUT - 60.0


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


def _sizes(quick: bool) -> tuple[tuple[int, int, int, float], ...]:
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
    baseline = "1 worker"
    reference = "1 worker, n_jobs = 1"

    counter = itertools.count()
    managers: dict[str, Any] = {}

    def fresh_store(variant: str) -> None:
        """A new store with its schema and experiment created (untimed, like a deployed one)."""
        n_jobs = threads_per_worker(1) if variant == baseline else cfg.n_jobs
        folder = store(ctx, f"store-{next(counter)}")
        manager = SyncTickerModelManager(cfg.replace(n_jobs=n_jobs), models_dir=folder,
                                         auto_retrain=False)
        assert manager.registry.experiment_id
        managers[variant] = manager

    def train(variant: str, jobs: list, workers: int, executor: str = "local") -> None:
        with managers.pop(variant) as manager:
            results = train_many(manager, jobs, workers=workers, executor=executor)
        assert len(results) == len(jobs) and all(r["created"] for r in results), results

    def one_thread(jobs: list) -> None:
        """The reference: what one process does with one thread per model (no train_many)."""
        with managers.pop(reference) as manager:
            for ticker, files in jobs:
                assert manager.train(ticker, files=files, n_jobs=1).created

    def variants(jobs: list, baseline_jobs: list, with_reference: bool) -> dict[str, Any]:
        out = {f"2 workers, {ex}": partial(train, f"2 workers, {ex}", jobs, 2, ex)
               for ex in executors}
        out[baseline] = partial(train, baseline, baseline_jobs, 1)
        if with_reference:
            out[reference] = partial(one_thread, jobs)
        return out

    warm: dict[str, float] = {}
    if not ctx.quick:
        # warm-up, untimed: imports and the trade files in the page cache (1 worker), the
        # workers' template process (the first pool of a process starts it) and Dask's imports
        for name, fn in variants(all_jobs[:2], all_jobs[:2], True).items():
            fresh_store(name)
            start = time.perf_counter()
            fn()
            warm[name] = time.perf_counter() - start
    rows: list[Row] = []
    # seconds per ticker of each variant, from the last round (before one: the warm-up's
    # 1 worker, and half of it for the parallel variants, the targets' 2x)
    per_ticker = ({baseline: warm[baseline] / 2, "2 workers": warm[baseline] / 4} if warm
                  else {baseline: 0.0, "2 workers": 0.0})
    for i, (n_tickers, _samples, n_baseline, target) in enumerate(sizes):
        jobs, baseline_jobs = all_jobs[:n_tickers], all_jobs[:n_baseline]
        with_reference = not ctx.quick
        base_name = "1 worker (n_jobs = 2)" + (
            "" if n_baseline == n_tickers else
            f", {n_baseline} of the {n_tickers} tickers x {n_tickers / n_baseline:g}")
        what = [(ex, f"train_many {n_tickers} tickers x {samples:,} samples, 2 workers "
                     f"({'local processes' if ex == 'local' else 'Dask LocalCluster'})")
                for ex in ("local", "dask")]
        left = BUDGET_S - (time.perf_counter() - began)
        guess = (per_ticker[baseline] * n_baseline
                 + per_ticker["2 workers"] * n_tickers * (len(executors) + 2 * with_reference))
        if not ctx.quick and guess > left:
            note = (f"skipped: its round would take about {guess:.0f} s and {left:.0f} s of this "
                    f"benchmark's budget are left; run it alone: {SIZES_ENV}={n_tickers} "
                    "python -m benchmarks --only B5")
            rows += [Row("B5", w, math.nan, "s", base_name, None, f">= {target}x", None,
                         note=note) for _ex, w in what]
            continue
        times = interleaved(variants(jobs, baseline_jobs, with_reference), rounds=1, warmup=0,
                            setup=fresh_store)
        t1 = median(times[baseline]) * n_tickers / n_baseline
        per_ticker = {baseline: t1 / n_tickers, "2 workers": max(
            median(times[f"2 workers, {ex}"]) for ex in executors) / n_tickers}
        for ex, w in what:
            if ex not in executors:
                rows.append(Row("B5", w, math.nan, "s", base_name, t1, f">= {target}x", None,
                                note="skipped: distributed is not installed "
                                     "(pip install 'ticker-registry[dask]')"))
                continue
            t2 = median(times[f"2 workers, {ex}"])
            note = (f"{t1 / n_tickers:.2f} s per ticker with 1 worker, {t2 / n_tickers:.2f} s "
                    f"with 2; load {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
            if with_reference:
                tr = median(times[reference])
                note += (f"; reference, 1 process and n_jobs = 1: {tr:.2f} s ({tr / t2:.2f}x "
                         "of it)")
            if warm and i == 0 and ex == "local":
                note += ("; untimed warm-up on 2 tickers (the first pool starts the template): "
                         + ", ".join(f"{k} {v:.1f} s" for k, v in warm.items()))
            rows.append(Row("B5", w, t2, "s", base_name, t1, f">= {target}x", t1 / t2 >= target,
                            repeats=len(times[f"2 workers, {ex}"]), note=note))
    return rows
