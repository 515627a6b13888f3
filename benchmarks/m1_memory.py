"""M1: resident memory of the manager with 200 tickers cached, LRU bound 100.

One small model (25 trees per head, the quick config) is registered once
with ``TickerRegistry.register``; the other 199 tickers get the same model
version with the raw client (registered model + version pointing at the same
run's artifacts + ``production`` alias), so no training or pyfunc logging is
repeated. A ``SyncTickerModelManager`` with ``max_cached_models=100`` then
loads the production model of every ticker (``get_or_create_model``): each
ticker downloads and loads its own copy of the heads.

RSS (``VmRSS`` of /proc/self/status, after ``gc.collect()``) is read with the
manager warm but empty, after 100 tickers (cache full), and after all 200
(100 evicted). Reported: MiB per cached model, and whether the bound holds:
the cache holds 100 entries and RSS after 200 stays near RSS after 100
(the "speedup" column is RSS(100) / RSS(200): about 1 when evicted models
are freed).
"""

from __future__ import annotations

import gc

from .fixtures import config, store, train
from .harness import Context, Row, rss_mb

BOUND = 100


def run(ctx: Context) -> list[Row]:
    from mlflow import MlflowClient

    from ticker_registry import SyncTickerModelManager

    n_tickers = ctx.pick(40, 200)
    bound = ctx.pick(20, BOUND)
    cfg = config(True, max_cached_models=bound)
    result = train(cfg, 6_000)
    manager = SyncTickerModelManager(cfg, models_dir=store(ctx, "store"), auto_retrain=False)
    registry = manager.registry
    tickers = [f"M{i:03d}USDT" for i in range(n_tickers)]
    first, _ = registry.register(tickers[0], result.model, lineage=result.lineage,
                                 idempotency_key="m1")
    registry.promote(tickers[0], first.version)
    client = MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.tracking_uri)
    for ticker in tickers[1:]:
        name = registry.model_name(ticker)
        client.create_registered_model(name, tags={"ticker": ticker})
        mv = client.create_model_version(name, first.source, first.run_id,
                                         tags={"ticker": ticker, "model_type": "xgboost"})
        client.set_registered_model_alias(name, cfg.production_alias, mv.version)
    del result

    def settle() -> float:
        gc.collect()
        return rss_mb()

    manager.get_or_create_model(tickers[0])  # imports and first load happen here
    manager.cache.invalidate(tickers[0])
    rss_empty = settle()
    for ticker in tickers[:bound]:
        assert manager.get_or_create_model(ticker).model is not None
    rss_full = settle()
    full_len = len(manager.cache)
    for ticker in tickers[bound:]:
        manager.get_or_create_model(ticker)
    rss_after = settle()
    after_len = len(manager.cache)
    per_model = (rss_full - rss_empty) / bound
    holds = full_len == bound and after_len == bound and rss_after <= rss_full + 0.25 * (
        rss_full - rss_empty)
    manager.close()
    return [Row("M1", f"manager RSS, {n_tickers} tickers loaded, max_cached_models={bound}",
                rss_after, "MiB", f"RSS with the cache full ({bound} models)", rss_full,
                "report MiB per model; LRU bound holds", holds,
                note=f"{per_model:.2f} MiB per cached model (RSS {rss_empty:.0f} MiB warm and "
                     f"empty, {rss_full:.0f} MiB with {full_len} cached, {rss_after:.0f} MiB "
                     f"after {n_tickers} with {after_len} cached)")]
