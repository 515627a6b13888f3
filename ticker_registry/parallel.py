"""Training many tickers at once: local worker processes or a Dask cluster.

Each worker trains *and registers* its ticker; the driver only collects plain
result dicts. We register from the workers rather than shipping models back to
the driver because every worker can reach the registry (the SQLite file with
its per-ticker file locks on one machine, or the shared tracking server on a
cluster), registration is idempotent per training, and nothing but JSON-like
data then crosses process or machine boundaries. On a Dask cluster the trade
files must be readable by the workers (a shared file system or object store
path) and the tracking URI must be a server or database they can reach.

Per-model threads are ``cores // workers`` locally so N workers do not
oversubscribe the cores; on Dask each model uses one thread (start workers
with ``--nthreads 1`` per core).
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
               executor: str = "local", scheduler: str | None = None,
               on_done: Callable[[dict[str, Any]], None] | None = None,
               bar: Any = None) -> list[dict[str, Any]]:
    """Train ``(ticker, files)`` jobs; results in job order. Errors propagate after all finish.

    ``executor="dask"`` runs the jobs on the Dask scheduler at ``scheduler``
    (``tcp://HOST:PORT``), or on a ``distributed.LocalCluster`` of ``workers``
    processes when no scheduler is given.
    """
    if executor == "dask":
        return _train_dask(manager, jobs, workers=workers, scheduler=scheduler, bar=bar)
    if executor != "local":
        raise ValueError(f"unknown executor {executor!r}; use 'local' or 'dask'")
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
            done(i, manager.train(ticker, files=files,
                                  n_jobs=threads_per_worker(1)).to_dict())
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


def _train_dask(manager: Any, jobs: Sequence[tuple[str, list[str]]], *, workers: int,
                scheduler: str | None, bar: Any) -> list[dict[str, Any]]:
    try:
        from distributed import Client, LocalCluster
        from distributed import as_completed as dask_completed
    except ImportError as exc:
        raise ImportError("the dask executor needs the `dask` extra: "
                          "pip install 'ticker-registry[dask]'") from exc
    config = manager.config.replace(n_jobs=1).to_dict()
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                               dashboard_address=None)
    client = Client(cluster if cluster is not None else scheduler)
    try:
        futures = [client.submit(_train_job, config, str(manager.models_dir), manager.tracking_uri,
                                 ticker, list(files), pure=False, key=f"train-{ticker}-{i}")
                   for i, (ticker, files) in enumerate(jobs)]
        if bar is not None and hasattr(bar, "update"):
            for _ in dask_completed(futures):
                bar.update(1)
        return client.gather(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
