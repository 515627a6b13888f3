"""TickerModelManager: the async twin of :class:`~ticker_registry.manager.SyncTickerModelManager`.

Slow work (training, registry and artifact I/O, sample commits) runs in a worker
thread via ``asyncio.to_thread``; a warm prediction runs inline, with no thread
hop. Every public method but the hand-written fast paths is generated from the
synchronous one (same signature and documentation), so the twins cannot drift
apart; ``tests/test_manager_parity.py`` checks it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from .cache import ServedModel
from .config import Config
from .features import FeatureSpec
from .manager import SyncTickerModelManager
from .records import AuditEvent, PreloadResult, TrainOutcome
from .registry import TickerRegistry

__all__ = ["TickerModelManager"]


class TickerModelManager:
    """Async facade over :class:`SyncTickerModelManager` (same constructor).

    Example::

        manager = TickerModelManager(base_config, models_dir="custom/models/path")
        model = await manager.get_or_create_model("ETHUSDT")
        prediction = await manager.predict_for_ticker("ETHUSDT", order_events, market_data)
        await manager.add_training_sample("ETHUSDT", features, flow_type, impact, tte)
    """

    def __init__(self, base_config: Config | Mapping[str, Any] | str | Path | None = None,
                 models_dir: str | os.PathLike[str] | None = None,
                 tracking_uri: str | None = None, **options: Any) -> None:
        self.sync = SyncTickerModelManager(base_config, models_dir, tracking_uri, **options)

    @property
    def config(self) -> Config:
        return self.sync.config

    @property
    def registry(self) -> TickerRegistry:
        return self.sync.registry

    async def get_or_create_model(self, ticker: str) -> ServedModel:
        entry = self.sync.cache.peek(self.sync._ticker(ticker))
        if entry is not None:
            return entry
        return await asyncio.to_thread(self.sync.get_or_create_model, ticker)

    async def predict_for_ticker(self, ticker: str, order_events: Any,
                                 market_data: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Warm: computed inline on the event loop (no thread hop). Cold: loads off the loop."""
        entry = self.sync.cache.peek(self.sync._ticker(ticker))
        if entry is None:
            entry = await asyncio.to_thread(self.sync.get_or_create_model, ticker)
        return self.sync._predict(entry, order_events, market_data)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self) -> TickerModelManager:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # Every other public method of the synchronous manager, run off the event loop with the
    # same signature and documentation (generated below, so the twins cannot drift apart;
    # tests/test_manager_parity.py checks it).
    add_training_sample: Callable[..., Awaitable[int]]
    train: Callable[..., Awaitable[TrainOutcome]]
    retrain: Callable[..., Awaitable[TrainOutcome | None]]
    wait_for_retraining: Callable[..., Awaitable[list[TrainOutcome]]]
    preload: Callable[..., Awaitable[list[PreloadResult]]]
    status: Callable[..., Awaitable[list[dict[str, Any]]]]
    metadata: Callable[..., Awaitable[dict[str, dict[str, Any]]]]
    versions: Callable[..., Awaitable[list[dict[str, Any]]]]
    history: Callable[..., Awaitable[list[AuditEvent]]]
    compare: Callable[..., Awaitable[list[dict[str, Any]]]]
    best: Callable[..., Awaitable[list[dict[str, Any]]]]
    promote: Callable[..., Awaitable[Any]]
    rollback: Callable[..., Awaitable[Any]]
    export: Callable[..., Awaitable[Any]]
    export_all: Callable[..., Awaitable[Any]]
    import_bundle: Callable[..., Awaitable[Any]]
    cleanup: Callable[..., Awaitable[Any]]
    doctor: Callable[..., Awaitable[list[Any]]]
    create_from_template: Callable[..., Awaitable[TrainOutcome]]
    feature_spec: Callable[..., Awaitable[FeatureSpec | None]]
    use_feature_spec: Callable[..., Awaitable[None]]


#: Methods of TickerModelManager written by hand (a fast path on the event loop, or a name).
_ASYNC_BY_HAND = frozenset({"get_or_create_model", "predict_for_ticker", "close"})


def _async_twin(name: str) -> Callable[..., Awaitable[Any]]:
    sync_method = getattr(SyncTickerModelManager, name)

    @functools.wraps(sync_method)
    async def method(self: TickerModelManager, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self.sync, name), *args, **kwargs)

    return method


for _name, _member in inspect.getmembers(SyncTickerModelManager, inspect.isfunction):
    if not _name.startswith("_") and _name not in _ASYNC_BY_HAND:
        setattr(TickerModelManager, _name, _async_twin(_name))
