"""OrderFlowTradingStrategy: predict on every trade, learn from every finished horizon.

On ``start`` it loads or creates the symbol's model. On each trade it keeps
the last ``sequence_length`` trades, computes the live features and (once a
model is trained) a prediction. Each event then waits until its
``prediction_horizon`` has passed; its labels are derived incrementally with
exactly the definitions of :func:`~ticker_registry.features.build_training_set`
(signed-volume share, log-return in bps, seconds until ``large_order_threshold``
of notional has traded, capped at the horizon) and stored with
``add_training_sample``, so training starts by itself once enough samples
exist. ``stop`` labels every event whose horizon the last trade covers and
waits for scheduled retraining.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import Config, load_config
from .exceptions import (
    ConfigError,
    ModelNotFoundError,
    NotTrainedError,
    PredictionTimeoutError,
    TradeDataError,
)
from .features import FLOW_TYPES, FeatureSpec, horizon_labels, live_feature_vector
from .manager_async import TickerModelManager
from .timestamps import to_epoch_ns

__all__ = ["OrderFlowTradingStrategy", "StrategySummary"]

_NS = 1_000_000_000
#: Trades that set an 'auto' large-order threshold before a ticker has a served version.
AUTO_WARMUP_TRADES = 1000


@dataclass
class _Pending:
    ts: int
    price: float
    features: np.ndarray
    signed: float = 0.0
    volume: float = 0.0
    notional: float = 0.0
    last_price: float | None = None
    tte: float | None = None


@dataclass
class StrategySummary:
    ticker: str
    events: int = 0
    predictions: int = 0
    #: trades with no prediction because a cold load passed ``predict_timeout`` (the load goes
    #: on in the background; the next trades are predicted once it is cached)
    timeouts: int = 0
    samples: int = 0
    versions_trained: list[int] = field(default_factory=list)
    production_version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class OrderFlowTradingStrategy:
    """Replays or follows one symbol's trades through a :class:`TickerModelManager`."""

    def __init__(self, manager: TickerModelManager,
                 config: Config | Mapping[str, Any] | str | Path | None = None,
                 symbol: str | None = None) -> None:
        self.manager = manager
        self.config = manager.config if config is None else load_config(config)
        chosen = symbol or self.config.symbol
        if not chosen:
            raise ConfigError("the strategy needs a symbol: set `symbol:` in its config "
                              "or give the TICKER (`run-strategy TICKER --trades FILE`, or symbol=)")
        self.symbol: str = chosen
        # None while an 'auto' large-order threshold waits for the ticker's first trades
        self.spec: FeatureSpec | None = (None if self.config.large_order_threshold == "auto"
                                         else FeatureSpec.from_config(self.config))
        self._warmup: list[tuple[int, float, float, int, Mapping[str, Any] | None]] = []
        self._window: deque[dict[str, Any]] = deque(maxlen=self.config.sequence_length)
        self._pending: deque[_Pending] = deque()
        self.summary = StrategySummary(self.symbol)
        self.last_prediction: dict[str, Any] | None = None
        self._known_versions: set[int] = set()

    async def start(self) -> None:
        await self.manager.get_or_create_model(self.symbol)
        self._known_versions = set(await asyncio.to_thread(self._versions))
        known = await asyncio.to_thread(self.manager.sync.feature_spec, self.symbol)
        if known is not None:
            self._use_spec(known)

    def _use_spec(self, spec: FeatureSpec) -> None:
        """Compute features and labels with ``spec`` from now on (the served version's, or set)."""
        self.spec = spec
        self._window = deque(self._window, maxlen=spec.sequence_length)
        self.manager.sync.use_feature_spec(self.symbol, spec)

    def _versions(self) -> list[int]:
        try:
            return [v.version for v in self.manager.registry.list_versions(self.symbol)]
        except ModelNotFoundError:
            return []

    async def on_trade(self, trade: Mapping[str, Any],
                       market_data: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """Feed one trade (timestamp, price, quantity, side); return the prediction if any.

        With ``large_order_threshold: auto`` and no served version yet, the first
        :data:`AUTO_WARMUP_TRADES` trades are held back until the threshold is set
        from them, then processed in order.
        """
        ts = to_epoch_ns(trade["timestamp"])
        price = float(trade["price"])
        qty = float(trade.get("quantity", trade.get("amount", 0.0)))
        side = _side(trade["side"])
        if self.spec is None:
            self._warmup.append((ts, price, qty, side, market_data))
            if len(self._warmup) < AUTO_WARMUP_TRADES:
                return None
            return await self._end_warmup()
        return await self._process(ts, price, qty, side, market_data)

    async def _end_warmup(self) -> dict[str, Any] | None:
        held, self._warmup = self._warmup, []
        if not held:
            return None
        self._use_spec(FeatureSpec.from_config(self.config, price=np.array([t[1] for t in held]),
                                               quantity=np.array([t[2] for t in held])))
        result = None
        for ts, price, qty, side, market in held:
            result = await self._process(ts, price, qty, side, market)
        return result

    async def _process(self, ts: int, price: float, qty: float, side: int,
                       market_data: Mapping[str, Any] | None) -> dict[str, Any] | None:
        assert self.spec is not None
        horizon = self.spec.horizon_ns
        while self._pending and ts > self._pending[0].ts + horizon:
            await self._label(self._pending.popleft())
        notional = price * qty
        for event in self._pending:
            event.signed += side * qty
            event.volume += qty
            event.notional += notional
            event.last_price = price
            if event.tte is None and event.notional >= self.spec.large_order_threshold:
                event.tte = (ts - event.ts) / _NS
        self._window.append({"timestamp": pd.Timestamp(ts, tz="UTC"),
                             "price": price, "quantity": qty, "side": side})
        self.summary.events += 1
        if len(self._window) < self.spec.sequence_length:
            return None
        vector = live_feature_vector(list(self._window), market_data, self.spec)
        self._pending.append(_Pending(ts, price, vector))
        try:
            prediction = await self.manager.predict_for_ticker(self.symbol, list(self._window),
                                                               market_data)
        except NotTrainedError:
            return None
        except PredictionTimeoutError:
            self.summary.timeouts += 1
            return None
        self.summary.predictions += 1
        self.last_prediction = prediction
        return prediction

    async def _label(self, event: _Pending) -> None:
        assert self.spec is not None  # events exist only once the spec is set
        share = event.signed / event.volume if event.volume > 0 else 0.0
        flow, impact, tte = horizon_labels(
            share, event.price, event.last_price or math.nan,
            math.nan if event.tte is None else event.tte, self.spec.horizon_ns / _NS,
            self.spec.flow_band)
        await self.manager.add_training_sample(self.symbol, event.features, FLOW_TYPES[int(flow)],
                                               float(impact), float(tte), timestamp=event.ts)
        self.summary.samples += 1

    async def stop(self) -> StrategySummary:
        """Label every event whose horizon the last trade covers, wait for retraining."""
        if self.spec is None:
            await self._end_warmup()
        if self._window and self.spec is not None:
            last = to_epoch_ns(self._window[-1]["timestamp"])
            while self._pending and last >= self._pending[0].ts + self.spec.horizon_ns:
                await self._label(self._pending.popleft())
        await self.manager.wait_for_retraining()
        # every version registered while we ran (by this process's retraining)
        self.summary.versions_trained = sorted(
            set(await asyncio.to_thread(self._versions)) - self._known_versions)
        self.summary.production_version = await asyncio.to_thread(
            self.manager.registry.production_version, self.symbol)
        return self.summary

    async def replay(self, trades: pd.DataFrame) -> StrategySummary:
        """Run a canonical trades frame through the strategy from start to stop."""
        await self.start()
        stamps = trades["timestamp"].to_numpy("datetime64[ns]").view(np.int64)
        for ts, price, qty, side in zip(stamps, trades["price"].to_numpy(),
                                        trades["quantity"].to_numpy(), trades["side"].to_numpy(),
                                        strict=True):
            await self.on_trade({"timestamp": int(ts), "price": price, "quantity": qty,
                                 "side": int(side)})
        return await self.stop()


def _side(value: Any) -> int:
    if isinstance(value, str) and value.strip().lower() in ("buy", "b", "sell", "s"):
        return 1 if value.strip().lower() in ("buy", "b") else -1
    if not isinstance(value, str) and value in (1, -1):
        return int(value)
    raise TradeDataError(f"trade side {value!r} is not 'buy'/'sell' or +1/-1; "
                         "give each trade's aggressor side")
