"""Many tickers at once: local worker processes and a real Dask LocalCluster.

Workers train and return plain data; the driver registers. These tests check that
what the driver registers is what a sequential training registers (versions, tags,
run figures, gate decisions, aliases), that a failing ticker is reported without
stopping the others, and that the worker's code imports no MLflow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ticker_registry import SyncTickerModelManager, TradeDataError, TrainingDataError
from ticker_registry.parallel import threads_per_worker, train_many
from ticker_registry.training_worker import TrainedTicker, to_training_result, train_ticker

from conftest import QUICK, make_trades

TICKERS = [f"SYN{i:02d}USDT" for i in range(12)]
#: The tickers trained twice (two rounds) by each path in the sequential == parallel test.
PAIR = [f"PAR{i}USDT" for i in range(3)]
#: Version tags that name a run, a LoggedModel or a moment: they differ between any two stores.
_UNIQUE_TAGS = ("created_at", "model_id")


@pytest.fixture(scope="module")
def trade_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trades")
    jobs = []
    for i, ticker in enumerate(TICKERS):
        path = folder / f"{ticker}-trades.csv"
        make_trades(2500, seed=i, ticker=ticker).to_csv(path, index=False)
        jobs.append((ticker, [str(path)]))
    return jobs


@pytest.fixture(scope="module")
def two_rounds(tmp_path_factory):
    """Per ticker, a first training and a second on trades that run on past the first's: the
    second meets a production version, so the gate compares them on its holdout rows."""
    folder = tmp_path_factory.mktemp("rounds")
    rounds: list[list[tuple[str, list[str]]]] = [[], []]
    for i, ticker in enumerate(PAIR):
        trades = make_trades(6000, seed=20 + i, ticker=ticker)
        for r, part in enumerate((trades.iloc[:3000], trades.iloc[1500:])):
            path = folder / f"{ticker}-round{r}.csv"
            part.to_csv(path, index=False)
            rounds[r].append((ticker, [str(path)]))
    return rounds


def _metrics(models_dir):
    manager = SyncTickerModelManager(QUICK, models_dir, auto_retrain=False)
    try:
        out = {}
        for ticker in TICKERS:
            versions = manager.registry.list_versions(ticker)
            assert len(versions) == 1
            out[ticker] = versions[0].metrics
        return out
    finally:
        manager.close()


def _recorded(models_dir, tickers):
    """What the store holds of each ticker, less the ids and times unique to any store."""
    manager = SyncTickerModelManager(QUICK, models_dir, auto_retrain=False)
    try:
        out = {}
        for ticker in tickers:
            versions = []
            for v in sorted(manager.registry.list_versions(ticker), key=lambda v: v.version):
                run = manager.registry.store.get_run(v.run_id)
                tags = {k: t for k, t in v.tags.items() if k not in _UNIQUE_TAGS}
                versions.append((v.version, sorted(v.aliases), v.metrics, tags, v.description,
                                 run.params, run.metrics))
            moves = [(e.action, e.alias, e.from_version, e.to_version, e.reason)
                     for e in manager.history(ticker)]
            out[ticker] = (versions, moves)
        return out
    finally:
        manager.close()


def test_threads_per_worker_never_oversubscribes():
    cores = os.cpu_count() or 1
    assert threads_per_worker(1) == cores
    assert threads_per_worker(cores) == 1
    assert threads_per_worker(cores * 4) == 1


def test_a_worker_result_becomes_the_training_the_driver_would_have_made(trade_files):
    """train_ticker + to_training_result in one process: the model the manager's path fits."""
    from ticker_registry import Config, read_trades
    from ticker_registry.training import train_on_trades

    ticker, files = trade_files[0]
    cfg = Config.from_dict(QUICK)
    trained = train_ticker(cfg.to_dict(), files, 1)
    assert isinstance(trained, TrainedTicker) and trained.files
    result = to_training_result(trained, cfg)
    expected = train_on_trades(read_trades(files[0]), cfg, files=[os.path.basename(files[0])])
    assert result.idempotency_key == expected.idempotency_key
    assert result.lineage == expected.lineage
    assert result.model.config == cfg
    assert result.model.metrics_ == expected.model.metrics_
    assert result.model.folds_ == expected.model.folds_
    assert (result.model.gate_holdout_.served == expected.model.gate_holdout_.served).all()
    assert result.X_valid.equals(expected.X_valid) and result.y_valid.equals(expected.y_valid)


def test_a_file_name_from_a_worker_must_be_a_plain_name(trade_files):
    from ticker_registry import Config, ModelFormatError

    cfg = Config.from_dict(QUICK)
    trained = train_ticker(cfg.to_dict(), trade_files[0][1], 1)
    bad = TrainedTicker({"../model.json": b"{}"}, [], None, trained.X_valid, trained.y_valid,
                        trained.lineage, trained.idempotency_key)
    with pytest.raises(ModelFormatError, match="plain names"):
        to_training_result(bad, cfg)


def test_the_worker_imports_no_mlflow_and_uses_its_threads_only(trade_files):
    """Workers train without MLflow (its import and the store stay in the driver), on the
    threads they are given."""
    code = ("import sys, json\n"
            "from ticker_registry import Config\n"
            "from ticker_registry.training_worker import worker_task\n"
            f"cfg = Config.from_dict(json.loads({json.dumps(QUICK)!r}))\n"
            f"worker_task(cfg.to_dict(), {trade_files[0][1]!r}, 1)\n"
            "assert not [m for m in sys.modules if m.split('.')[0] == 'mlflow'], 'mlflow'\n"
            "import os; print(os.environ['OMP_NUM_THREADS'])\n"
            "from threadpoolctl import threadpool_info\n"
            "print(sorted({pool['num_threads'] for pool in threadpool_info()}))\n")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # set before the model library loaded, and every thread pool loaded is capped to it
    assert proc.stdout.split() == ["1", "[1]"]


@pytest.mark.slow
def test_parallel_training_registers_what_sequential_training_does(two_rounds, tmp_path):
    """Same versions, tags (metrics, skill, serving, lineage, totals, gate, native sha256), run
    params and fold metrics, aliases and audit moves, in two rounds (the second gated against
    the first). The sequential path trains with n_jobs = cores, the workers with cores // 2:
    XGBoost's hist trees do not depend on the thread count, and n_jobs is not recorded apart."""
    seen = {}
    for workers in (1, 2):
        manager = SyncTickerModelManager(QUICK, tmp_path / f"w{workers}", auto_retrain=False)
        try:
            rows = [train_many(manager, jobs, workers=workers) for jobs in two_rounds]
        finally:
            manager.close()
        seen[workers] = (rows, _recorded(tmp_path / f"w{workers}", PAIR))
    assert seen[2] == seen[1]
    rows = seen[2][0]
    assert [[(r["ticker"], r["version"]) for r in one] for one in rows] == \
        [[(t, 1) for t in PAIR], [(t, 2) for t in PAIR]]
    # the second round met production v1: the gate judged it on the holdout rows
    assert all("production v1" in r["reason"] for r in rows[1]), [r["reason"] for r in rows[1]]


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local", "dask"])
def test_a_failing_ticker_is_reported_and_the_others_are_registered(trade_files, tmp_path,
                                                                      executor):
    if executor == "dask":
        pytest.importorskip("distributed")
    short = tmp_path / "SHORTUSDT-trades.csv"
    make_trades(40, seed=3, ticker="SHORTUSDT").to_csv(short, index=False)
    jobs = [trade_files[0], ("SHORTUSDT", [str(short)]),
            ("MISSINGUSDT", [str(tmp_path / "MISSINGUSDT-none.csv")]), trade_files[1]]
    done = []
    manager = SyncTickerModelManager(QUICK, tmp_path / "store", auto_retrain=False)
    try:
        # the earliest failed job's error, raised once the others are registered
        with pytest.raises(TrainingDataError):
            train_many(manager, jobs, workers=2, executor=executor, on_done=done.append)
        assert sorted(r["ticker"] for r in done) == sorted([jobs[0][0], jobs[3][0]])
        for ticker, _files in (jobs[0], jobs[3]):
            assert [v.version for v in manager.registry.list_versions(ticker)] == [1]
        with pytest.raises(TradeDataError):
            train_many(manager, jobs[2:], workers=2, executor=executor)
    finally:
        manager.close()


@pytest.mark.slow
def test_dask_local_cluster_matches_local_workers(trade_files, tmp_path):
    pytest.importorskip("distributed")
    results = {}
    for executor in ("local", "dask"):
        manager = SyncTickerModelManager(QUICK, tmp_path / executor, auto_retrain=False)
        rows = train_many(manager, trade_files, workers=2, executor=executor)
        manager.close()
        assert [r["ticker"] for r in rows] == TICKERS
        assert all(r["created"] and r["version"] == 1 for r in rows)
        results[executor] = _metrics(tmp_path / executor)
    assert results["dask"] == results["local"]


def test_parallel_training_uses_each_tickers_tuned_set(trade_files, tmp_path):
    """A tuned ticker trains with its tuned set in a worker too (as ``manager.train`` does)."""
    manager = SyncTickerModelManager(QUICK, tmp_path / "store", auto_retrain=False)
    try:
        tuned, plain = trade_files[0][0], trade_files[1][0]
        manager.registry._ensure_registered_model(manager.registry.model_name(tuned), tuned)
        name = manager.registry.model_name(tuned)
        for key, value in {"tuned.model_type": "xgboost", "tuned.max_depth": "2"}.items():
            manager.registry.store.set_model_tag(name, key, value)
        train_many(manager, trade_files[:2], workers=2)
        client = manager.registry.store.client
        depth = {t: client.get_run(manager.registry.list_versions(t)[0].run_id)
                 .data.params["hp.max_depth"] for t in (tuned, plain)}
        assert depth[tuned] == "2" and depth[plain] == str(manager.config.model_hyperparameters()
                                                          ["max_depth"])
    finally:
        manager.close()
