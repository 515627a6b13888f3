"""Many tickers at once: local worker processes and a real Dask LocalCluster."""

from __future__ import annotations

import pytest

from ticker_registry import SyncTickerModelManager
from ticker_registry.parallel import threads_per_worker, train_many

from conftest import QUICK, make_trades

TICKERS = [f"SYN{i:02d}USDT" for i in range(12)]


@pytest.fixture(scope="module")
def trade_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trades")
    jobs = []
    for i, ticker in enumerate(TICKERS):
        path = folder / f"{ticker}-trades.csv"
        make_trades(2500, seed=i, ticker=ticker).to_csv(path, index=False)
        jobs.append((ticker, [str(path)]))
    return jobs


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


def test_threads_per_worker_never_oversubscribes():
    import os

    cores = os.cpu_count() or 1
    assert threads_per_worker(1) == cores
    assert threads_per_worker(cores) == 1
    assert threads_per_worker(cores * 4) == 1


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
