"""The worker's side of parallel training: one ticker's training as plain data.

A worker (a process of :func:`ticker_registry.parallel.train_many`'s local pool,
or a Dask worker) reads a ticker's trade files, builds its training set, trains
and evaluates the model (purged walk-forward, baselines: the same
:func:`~ticker_registry.training.train_on_trades` a sequential training runs)
and returns a :class:`TrainedTicker`. It opens no store and never imports
MLflow: registering is the driver's job, so no worker ever waits on the SQLite
writer, and a Dask worker needs the trade files but not the tracking URI.

A :class:`TrainedTicker` holds the model's files as :meth:`OrderFlowModel.save
<ticker_registry.model.OrderFlowModel.save>` writes them (native head formats
and ``model.json``), the two things a training knows that the files do not
(the per-fold walk-forward figures the run logs, and the gate's holdout
predictions), the holdout rows, the lineage and the idempotency key. The driver
turns it back into a :class:`~ticker_registry.training.TrainingResult` with
:func:`to_training_result`: the files go through :meth:`OrderFlowModel.load`,
which verifies every tree, so what comes back from a worker is read as data.
"""

from __future__ import annotations

import functools
import importlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .config import Config, load_config
from .data import read_trade_files
from .exceptions import ModelFormatError
from .model import OrderFlowModel
from .records import TrainingLineage
from .training import TrainingResult, train_on_trades
from .walk_forward import GateHoldout

__all__ = ["MODEL_LIBRARIES", "THREAD_VARIABLES", "TrainedTicker", "prepare_worker",
           "to_training_result", "train_ticker", "worker_task"]

#: Thread-pool sizes a worker sets before its model library loads (OpenMP reads them once).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: The module each model type trains with.
MODEL_LIBRARIES = {"xgboost": "xgboost", "lightgbm": "lightgbm", "random_forest": "sklearn.ensemble"}


@dataclass(frozen=True)
class TrainedTicker:
    """One ticker trained in a worker, ready for the driver to register."""

    files: dict[str, bytes]  # file name -> bytes, as OrderFlowModel.save writes them
    folds: list[dict[str, float]]  # the walk-forward figures per fold (the run's stepped metrics)
    holdout: GateHoldout | None  # the gate's out-of-sample predictions
    X_valid: pd.DataFrame
    y_valid: pd.DataFrame
    lineage: TrainingLineage
    idempotency_key: str

    @classmethod
    def from_result(cls, result: TrainingResult) -> TrainedTicker:
        """Pack a training: the model's files in memory plus what they do not hold."""
        model = result.model
        with tempfile.TemporaryDirectory(prefix="ticker-registry-trained-") as tmp:
            folder = model.save(Path(tmp) / "model")
            files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
        return cls(files, list(getattr(model, "folds_", [])), getattr(model, "gate_holdout_", None),
                   result.X_valid, result.y_valid, result.lineage, result.idempotency_key)


@functools.cache
def prepare_worker(threads: int, model_type: str = "xgboost") -> None:
    """Size the worker's thread pools to ``threads`` and import the model library; once per process.

    The local pool's initializer; :func:`worker_task` calls it too, so a Dask worker
    prepares on its first task (later calls are no-ops). ``OMP_NUM_THREADS`` and its
    BLAS cousins are read when a library loads, so they are set before the import for
    libraries loaded from now on; ``threadpoolctl`` caps the pools of those already
    loaded (a worker forked from the template of :mod:`ticker_registry.parallel` has
    them preloaded). Each head also trains with ``n_jobs = threads``.
    """
    from threadpoolctl import threadpool_limits

    threads = max(1, int(threads))
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(threads)
    importlib.import_module(MODEL_LIBRARIES.get(model_type, "xgboost"))
    threadpool_limits(limits=threads)


def train_ticker(config: Mapping[str, Any], files: Sequence[str], threads: int) -> TrainedTicker:
    """Read ``files``, train and evaluate with ``config`` on ``threads`` threads per head.

    What :meth:`SyncTickerModelManager.train
    <ticker_registry.manager.SyncTickerModelManager.train>` does with trade files,
    short of registering. Errors are the training's own (:class:`TradeDataError`,
    :class:`TrainingDataError`, ...); they travel back to the driver as raised.
    """
    cfg = load_config(dict(config)).replace(n_jobs=max(1, int(threads)))
    paths = [str(p) for p in files]
    trades = read_trade_files(paths)
    result = train_on_trades(trades, cfg, files=[Path(p).name for p in paths])
    return TrainedTicker.from_result(result)


def worker_task(config: Mapping[str, Any], files: Sequence[str], threads: int) -> TrainedTicker:
    """The task a worker process runs: :func:`prepare_worker` (once), then :func:`train_ticker`."""
    prepare_worker(max(1, int(threads)), str(config.get("model_type", "xgboost")))
    return train_ticker(config, files, threads)


def to_training_result(trained: TrainedTicker, config: Config) -> TrainingResult:
    """The driver's side: the :class:`TrainingResult` a training in this process would give.

    ``config`` replaces the config recorded in the files: they differ only in
    ``n_jobs``, a resource setting that is not part of the recipe (the fingerprint
    leaves it out), so a version's files do not depend on which path trained it.

    Raises
    ------
    ModelFormatError
        A file name is not a plain name, or the files are not a model (the
        loader's checks).
    """
    with tempfile.TemporaryDirectory(prefix="ticker-registry-trained-") as tmp:
        folder = Path(tmp)
        for name, data in trained.files.items():
            if not name or name in (".", "..") or Path(name).name != name or "\\" in name:
                raise ModelFormatError(f"a trained model's file is named {name!r}; expected "
                                       "the plain names OrderFlowModel.save writes")
            (folder / name).write_bytes(data)
        model = OrderFlowModel.load(folder, n_jobs=config.n_jobs)
    model.config = config
    model.folds_ = list(trained.folds)
    model.gate_holdout_ = trained.holdout
    return TrainingResult(model, trained.X_valid, trained.y_valid, trained.lineage,
                          trained.idempotency_key)
