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
