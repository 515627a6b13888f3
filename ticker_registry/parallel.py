"""Training many tickers at once, in local worker processes.

Each worker trains *and registers* its ticker (the store is reachable from
every worker: the SQLite file with its per-ticker file locks, or a tracking
server), so only plain result dicts cross process boundaries. Each model uses
``cores // workers`` threads so N workers do not oversubscribe the machine.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

__all__ = ["threads_per_worker", "train_many"]


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def _train_job(config: dict[str, Any], models_dir: str, tracking_uri: str, ticker: str,
               files: list[str]) -> dict[str, Any]:
    from .manager import SyncTickerModelManager

    with SyncTickerModelManager(config, models_dir, tracking_uri, auto_retrain=False) as manager:
        return manager.train(ticker, files=files).to_dict()


def train_many(manager: Any, jobs: Sequence[tuple[str, list[str]]], *, workers: int = 1,
               on_done: Callable[[dict[str, Any]], None] | None = None,
               bar: Any = None) -> list[dict[str, Any]]:
    """Train ``(ticker, files)`` jobs; results in job order. Errors propagate after all finish."""
    config = manager.config.replace(n_jobs=threads_per_worker(workers)).to_dict()
    results: dict[int, dict[str, Any]] = {}
    errors: list[BaseException] = []

    def done(i: int, result: dict[str, Any]) -> None:
        results[i] = result
        if on_done:
            on_done(result)
        if bar is not None and hasattr(bar, "update"):
            bar.update(1)

    if workers <= 1 or len(jobs) <= 1:
        for i, (ticker, files) in enumerate(jobs):
            done(i, manager.train(ticker, files=files).to_dict())
    else:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = {pool.submit(_train_job, config, str(manager.models_dir),
                                   manager.tracking_uri, t, f): i
                       for i, (t, f) in enumerate(jobs)}
            for future in as_completed(futures):
                try:
                    done(futures[future], future.result())
                except BaseException as exc:  # report after the others finish
                    errors.append(exc)
    if errors:
        raise errors[0]
    return [results[i] for i in sorted(results)]
