"""TickerModelManager: the async twin of :class:`~ticker_registry.manager.SyncTickerModelManager`.

Slow work (training, registry and artifact I/O, sample commits) runs in a worker
thread via ``asyncio.to_thread``; a warm prediction runs inline, with no thread
hop. Every public method but the hand-written fast paths is generated from the
synchronous one (same signature and documentation), so the twins cannot drift
apart; ``tests/test_manager_parity.py`` checks it.

Nothing can hang a prediction:

- **cold** (the ticker's model not in memory): loading and predicting run in a worker
  thread, awaited at most ``predict_timeout`` seconds (config, default 1.0). Past it,
  :class:`PredictionTimeoutError`; the load goes on in its thread and fills the cache,
  so a later call is warm. ``preload`` at start-up avoids cold calls.
- **warm**: computed inline (~0.1 ms, benchmark B2). Native predict cannot be
  interrupted from Python, and a thread hop per call would cost more than the
  prediction; what could make it hang for ever is a cyclic tree, and every loaded head's
  trees are verified before it may serve (:mod:`ticker_registry.heads`), while heads
  trained in this process are built by the libraries themselves.
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
from .exceptions import PredictionTimeoutError
from .features import FeatureSpec
from .manager import SyncTickerModelManager
from .records import AuditEvent, PreloadResult, TrainOutcome
from .registry import TickerRegistry
from .tuning import TuningResult

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
        """Warm: computed inline on the event loop (no thread hop). Cold: loaded and computed
        off the loop within ``predict_timeout`` seconds.

        Raises
        ------
        NotTrainedError
            The ticker has no production version yet.
        PredictionTimeoutError
            Cold, and the load and prediction took longer than ``predict_timeout``.
        """
        name = self.sync._ticker(ticker)
        entry = self.sync.cache.peek(name)
        if entry is not None:
            return self.sync._predict(entry, order_events, market_data)

        def cold() -> dict[str, Any]:
            return self.sync._predict(self.sync.get_or_create_model(ticker), order_events,
                                      market_data)

        budget = self.config.predict_timeout
        try:
            async with asyncio.timeout(budget) as deadline:
                return await asyncio.to_thread(cold)
        except TimeoutError:
            if not deadline.expired():  # a TimeoutError of the load itself, not our budget
                raise
        raise PredictionTimeoutError(
            f"no prediction for {name} within predict_timeout={budget} s: its model was not "
            "loaded yet and loading it took longer; the load goes on in the background and a "
            f"later call serves from it. Preload tickers at start-up (await manager.preload"
            f"([{name!r}])) or raise predict_timeout in the config")

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
    tune: Callable[..., Awaitable[TuningResult]]


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
