"""The async manager is the sync manager's twin: same public methods, same signatures."""

from __future__ import annotations

import asyncio
import inspect

from ticker_registry import SyncTickerModelManager, TickerModelManager

from conftest import QUICK, make_trades


def _public(cls) -> dict[str, inspect.Signature]:
    return {n: inspect.signature(f) for n, f in inspect.getmembers(cls, inspect.isfunction)
            if not n.startswith("_")}


def test_every_sync_method_has_an_async_twin_with_the_same_signature():
    sync, asyn = _public(SyncTickerModelManager), _public(TickerModelManager)
    assert set(sync) - {"close"} <= set(asyn)
    assert set(asyn) - set(sync) == {"aclose"}
    for name, signature in sync.items():
        if name == "close":
            continue
        assert asyn[name].parameters.keys() == signature.parameters.keys(), name
        assert inspect.iscoroutinefunction(getattr(TickerModelManager, name)), name
        if name not in ("get_or_create_model", "predict_for_ticker"):  # hand-written fast paths
            assert getattr(TickerModelManager, name).__doc__ == getattr(SyncTickerModelManager,
                                                                         name).__doc__


def test_async_twins_run_the_sync_methods(tmp_path):
    async def scenario():
        async with TickerModelManager(QUICK, tmp_path, auto_retrain=False) as manager:
            outcome = await manager.train("ETHUSDT", make_trades(3000, seed=1))
            assert outcome.version.version == 1
            assert [r["ticker"] for r in await manager.best()] == ["ETHUSDT"]
            rows = await manager.compare("ETHUSDT", 1, 1)
            assert rows and rows[-1]["metric"] == "gate"
            assert isinstance(await manager.doctor(), list)

    asyncio.run(scenario())


def test_an_in_process_promotion_serves_with_its_run_and_logs_live_metrics(tmp_path):
    from mlflow import MlflowClient

    from ticker_registry import build_training_set
    from ticker_registry.manager import LIVE_LOG_EVERY

    manager = SyncTickerModelManager(QUICK, tmp_path, auto_retrain=False)
    manager.get_or_create_model("ETHUSDT")  # cached, untrained
    outcome = manager.train("ETHUSDT", make_trades(4000, seed=1))
    entry = manager.cache.peek("ETHUSDT")
    assert entry.version == outcome.version.version and entry.run_id == outcome.version.run_id
    X, y = build_training_set(make_trades(3000, seed=9), manager.config)
    for i in range(LIVE_LOG_EVERY):
        manager.add_training_sample("ETHUSDT", X.iloc[i].to_numpy(), y["flow_type"].iloc[i],
                                    y["impact"].iloc[i], y["time_to_execution"].iloc[i],
                                    timestamp=X.index[i])
    manager.retraining.shutdown(timeout=60)  # the live figures are logged off the sample path
    history = MlflowClient(manager.tracking_uri).get_metric_history(entry.run_id,
                                                                    "live_flow_type_accuracy")
    assert [m.step for m in history] == [LIVE_LOG_EVERY]
    manager.close()
