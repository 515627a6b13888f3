"""Training many tickers at once: local worker processes or a Dask cluster.

Design (the Performance issue, item 3):

- **Workers start once and train many tickers.** One pool per call, at most one
  process per job; every job is submitted up front (largest trade files first, so
  the run does not end on one worker training a big ticker alone) and each
  process takes the next ticker as it finishes one. The processes are forks of a
  template process that imported the package and the model libraries once per
  driver process (``forkserver``, :func:`_pool_context`): only the first pool of a
  process waits for those imports (about 3 s), later pools start in milliseconds,
  and nothing of the driver's threads, store or connections is copied.
- **Workers train, the driver registers.** A worker reads the trades, builds the
  features, trains and evaluates, and returns plain data (the model's native
  files as bytes, the walk-forward figures, the holdout rows, the lineage:
  :class:`~ticker_registry.training_worker.TrainedTicker`); it never imports
  MLflow nor opens a store. The driver is the store's one writer: it registers
  each result as it completes, through the manager's own registration (the same
  run, tags, lineage, gate and aliases as a sequential ``train``, so both paths
  give the same versions), while the workers go on training. No worker waits on
  SQLite's single writer or pays MLflow's import.
- **Cores are not oversubscribed.** Each worker's initializer
  (:func:`~ticker_registry.training_worker.prepare_worker`) sets
  ``OMP_NUM_THREADS`` (and the BLAS counts) and caps the pools already loaded to
  ``cores // processes`` threads, the ``n_jobs`` of every head it trains. The
  version records the ``n_jobs`` a sequential training would (see
  :func:`~ticker_registry.training_worker.to_training_result`).
- **Dask** runs the same task: on a ``distributed.LocalCluster`` of ``workers``
  single-threaded processes, forked from the same template
  (``n_jobs = cores // workers``), or on the scheduler at ``scheduler``
  (``n_jobs = 1``: start one single-threaded worker per core,
  ``dask worker --nthreads 1``). Results come back to the driver, which registers
  them: remote workers need ``ticker_registry`` and the trade files at the same
  paths (a shared file system), not the tracking URI.
- **Errors are per ticker.** A ticker that fails (in its worker or at its
  registration) does not stop the others: every other ticker is trained and
  registered, then the error of the earliest failed job is raised (each failure
  is also logged with its ticker). An interrupt cancels the jobs not started.

``workers=1`` (or one job) trains in this process with ``manager.train`` and
``n_jobs = cores``: the sequential path.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import partial
from typing import Any

from .config import Config
from .tickers import normalize_ticker
from .training_worker import TrainedTicker, prepare_worker, to_training_result, worker_task

__all__ = ["TEMPLATE_MODULES", "threads_per_worker", "train_many"]

log = logging.getLogger(__name__)

Job = tuple[str, Sequence[str]]

#: What the local workers' template process imports once (see :func:`_pool_context`): the
#: parent's main module (as ``spawn`` would in each worker), the worker's code, the model
#: libraries (after it, so that OpenMP reads the package's ``OMP_WAIT_POLICY``) and, when
#: installed, ``distributed`` for Dask's local workers (a missing module is skipped).
TEMPLATE_MODULES = ("__main__", "ticker_registry.training_worker", "xgboost", "lightgbm",
                    "sklearn.ensemble", "distributed")


def threads_per_worker(workers: int) -> int:
    """Threads per model head so that ``workers`` processes share the cores without oversubscribing."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


class _Driver:
    """The driver's side: register each returned training, keep rows in job order and failures."""

    def __init__(self, manager: Any, jobs: Sequence[Job],
                 on_done: Callable[[dict[str, Any]], None] | None, bar: Any) -> None:
        self.manager = manager
        self.jobs = jobs
        self.on_done = on_done
        self.bar = bar if bar is not None and hasattr(bar, "update") else None
        self.rows: dict[int, dict[str, Any]] = {}
        self.configs: dict[int, Config] = {}  # job -> its ticker's config (see config())
        self.errors: dict[int, Exception] = {}

    def collect(self, i: int, outcome: Callable[[], Any]) -> None:
        """Run ``outcome()`` (a training or a registration) for job ``i`` and keep what it gives."""
        try:
            row = outcome().to_dict()
        except Exception as exc:  # reported once every other ticker is done
            log.warning("training %s failed: %s", self.jobs[i][0], exc)
            self.errors[i] = exc
        else:
            self.rows[i] = row
            if self.on_done is not None:
                self.on_done(row)
        if self.bar is not None:
            self.bar.update(1)

    def config(self, i: int, n_jobs: int) -> Config:
        """Job ``i``'s config: the manager's, with the ticker's tuned set (as ``train``), read
        from the registry once per job (its worker and its registration both need it)."""
        if i not in self.configs:
            self.configs[i] = self.manager._ticker_config(normalize_ticker(self.jobs[i][0]))
        return self.configs[i].replace(n_jobs=n_jobs)

    def register(self, i: int, result: Callable[[], TrainedTicker]) -> Callable[[], Any]:
        """The registration of job ``i`` once its worker's ``result()`` is in."""
        def outcome() -> Any:
            # what a sequential training records (see training_worker.to_training_result)
            training = to_training_result(result(), self.config(i, threads_per_worker(1)))
            # the registration manager.train ends with: same tags, lineage, gate and aliases
            return self.manager._register(normalize_ticker(self.jobs[i][0]), training)
        return outcome

    def largest_first(self) -> list[int]:
        """Job indices, most trade bytes first: the last trainings to finish are short ones, so
        no worker idles long at the end while another trains a big ticker."""
        def size(i: int) -> int:
            return sum(os.path.getsize(f) if os.path.isfile(f) else 0 for f in self.jobs[i][1])
        return sorted(range(len(self.jobs)), key=lambda i: -size(i))

    def results(self) -> list[dict[str, Any]]:
        if self.errors:
            raise self.errors[min(self.errors)]
        return [self.rows[i] for i in sorted(self.rows)]


def train_many(manager: Any, jobs: Sequence[Job], *, workers: int = 1,
               executor: str = "local", scheduler: str | None = None,
               on_done: Callable[[dict[str, Any]], None] | None = None,
               bar: Any = None) -> list[dict[str, Any]]:
    """Train and register ``(ticker, files)`` jobs; one result row per job, in job order.

    Parameters
    ----------
    manager
        The :class:`~ticker_registry.manager.SyncTickerModelManager` whose store
        receives the versions (registered from this process only).
    jobs
        ``(ticker, trade files)`` pairs.
    workers
        Worker processes (local or of a ``LocalCluster``); 1 trains here.
    executor
        ``"local"`` or ``"dask"``: the scheduler at ``scheduler``
        (``tcp://HOST:PORT``), or a ``distributed.LocalCluster`` of ``workers``
        processes when none is given.
    on_done, bar
        Called with each registered row; ``bar.update(1)`` after each job.

    Raises
    ------
    Exception
        The error of the earliest failed job, once every other job is done.
    """
    if executor not in ("local", "dask"):
        raise ValueError(f"unknown executor {executor!r}; use 'local' or 'dask'")
    driver = _Driver(manager, jobs, on_done, bar)
    if executor == "dask":
        _train_dask(driver, workers=workers, scheduler=scheduler)
    elif workers <= 1 or len(jobs) <= 1:
        for i, (ticker, files) in enumerate(jobs):
            driver.collect(i, partial(manager.train, ticker, files=files,
                                      n_jobs=threads_per_worker(1)))
    else:
        _train_local(driver, workers)
    return driver.results()


def _pool_context() -> Any:
    """Where local workers come from: forked from a template process (``forkserver``).

    The template starts with the first pool of this process and imports
    :data:`TEMPLATE_MODULES` once (the package and the model libraries, about 3 s of
    imports); every worker of every later pool is a fork of it, ready in
    milliseconds. It holds no threads, store or connection of the driver, which a
    plain fork would copy. Where ``forkserver`` is missing (Windows), ``spawn``.
    """
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(TEMPLATE_MODULES))  # no effect once it runs
    return context


def _train_local(driver: _Driver, workers: int) -> None:
    processes = min(workers, len(driver.jobs))
    threads = threads_per_worker(processes)
    with ProcessPoolExecutor(max_workers=processes, mp_context=_pool_context(),
                             initializer=prepare_worker,
                             initargs=(threads, driver.manager.config.model_type)) as pool:
        futures = {pool.submit(worker_task, driver.config(i, threads).to_dict(),
                               list(driver.jobs[i][1]), threads): i
                   for i in driver.largest_first()}
        try:
            for future in as_completed(futures):
                i = futures.pop(future)
                driver.collect(i, driver.register(i, future.result))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _train_dask(driver: _Driver, *, workers: int, scheduler: str | None) -> None:
    try:
        from distributed import Client, LocalCluster
        from distributed import as_completed as dask_completed
    except ImportError as exc:
        raise ImportError("the dask executor needs the `dask` extra: "
                          "pip install 'ticker-registry[dask]'") from exc
    if not driver.jobs:
        return
    cluster = None
    threads = 1
    if scheduler is None:
        processes = max(1, min(workers, len(driver.jobs)))
        threads = threads_per_worker(processes)
        cluster = _local_cluster(LocalCluster, processes)
    client = Client(cluster if cluster is not None else scheduler)
    try:
        # a key unique to this call: tasks of the same key on a shared scheduler are one task
        token = uuid.uuid4().hex[:12]
        futures = {client.submit(worker_task, driver.config(i, threads).to_dict(),
                                 list(driver.jobs[i][1]), threads,
                                 pure=False, key=f"train-{driver.jobs[i][0]}-{i}-{token}"): i
                   for i in driver.largest_first()}
        try:
            for future in dask_completed(list(futures)):
                i = futures.pop(future)
                driver.collect(i, driver.register(i, future.result))
                future.release()
        except BaseException:
            client.cancel(list(futures))
            raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _local_cluster(cluster_class: Any, processes: int) -> Any:
    """A ``LocalCluster`` of ``processes`` single-threaded workers forked from the template.

    Dask spawns its workers by default (each then imports ``distributed``, the package
    and the model libraries: seconds per call); started after the template, with the
    ``forkserver`` method, they are forks of it like the local pool's.
    """
    import dask

    method = _pool_context().get_start_method()
    if method == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()  # with TEMPLATE_MODULES, before Dask sets a preload of its own
    # no dashboard, so neither the workers' stack sampling (every 10 ms) nor the 20 ms
    # event-loop tick: ~2% of the workers' CPU and ~2% of the driver's, where it registers
    settings = {"distributed.worker.multiprocessing-method": method,
                "distributed.worker.profile.enabled": False,
                "distributed.admin.tick.interval": "1s"}
    with dask.config.set(settings):
        return cluster_class(n_workers=processes, threads_per_worker=1, processes=True,
                             dashboard_address=None)
