"""One epoch rule: readers, live features, the strategy and the sample store agree on an instant."""

from __future__ import annotations

import asyncio
import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticker_registry import (
    Config,
    OrderFlowTradingStrategy,
    TickerModelManager,
    TimestampError,
    compute_live_features,
    read_trades,
)
from ticker_registry.features import FeatureSpec
from ticker_registry.timestamps import to_epoch_ns, to_epoch_ns_array

from conftest import QUICK

INSTANT_NS = 1_723_161_600_123_000_000  # 2024-08-09T00:00:00.123Z
SCALES = {"s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1}


def _as_unit(ns: int, unit: str) -> int | float:
    if unit == "s":
        return ns / 1e9  # a float: seconds cannot hold the milliseconds otherwise
    return ns // int(SCALES[unit])


@pytest.mark.parametrize("unit", list(SCALES))
def test_scalar_rule_infers_every_unit(unit):
    assert to_epoch_ns(_as_unit(INSTANT_NS, unit)) == INSTANT_NS


def test_scalar_rule_accepts_datetimes_and_text():
    stamp = pd.Timestamp(INSTANT_NS, tz="UTC")
    for value in (stamp, stamp.to_pydatetime(), stamp.isoformat(), np.datetime64(INSTANT_NS, "ns"),
                  stamp.tz_localize(None)):
        assert to_epoch_ns(value) == INSTANT_NS


def test_explicit_unit_wins_over_magnitude():
    assert to_epoch_ns(5, unit="s") == 5_000_000_000
    assert to_epoch_ns(1_723_161_600_123, unit="ms") == INSTANT_NS


@pytest.mark.parametrize("bad", [0, -5, True, "yesterday", float("nan"), float("inf"), 10**30,
                                 9.9e300, None, [1, 2], dt.date(1960, 1, 1)])
def test_scalar_rule_refuses_with_our_error(bad):
    with pytest.raises(TimestampError, match="timestamp"):
        to_epoch_ns(bad)


def test_unknown_unit_is_refused():
    with pytest.raises(TimestampError, match="unknown epoch unit 'min'"):
        to_epoch_ns(5, unit="min")


@given(st.integers(min_value=100_000_000, max_value=2**62 // 1_000_000_000))
def test_vector_and_scalar_rules_agree(seconds):
    values = [seconds, seconds * 1000, seconds * 1_000_000, seconds * 1_000_000_000]
    expected = [to_epoch_ns(v) for v in values]
    assert to_epoch_ns_array(np.array(values, dtype=np.int64)).tolist() == expected
    assert to_epoch_ns_array(np.array([str(v) for v in values], dtype=object)).tolist() == expected
    assert len(set(expected)) == 1


def _window(unit: str, n: int) -> list[dict]:
    step = 250_000_000  # 4 trades per second
    return [{"timestamp": _as_unit(INSTANT_NS + i * step, unit), "price": 100.0 + (i % 3),
             "quantity": 1.0 + i, "side": 1 if i % 2 else -1} for i in range(n)]


def test_live_features_are_the_same_in_every_unit():
    spec = FeatureSpec(sequence_length=10)
    rows = {unit: compute_live_features(_window(unit, 10), None, spec) for unit in SCALES}
    assert rows["s"]["trade_intensity"] == pytest.approx(4.0)
    for unit in ("ms", "us", "ns"):
        assert rows[unit] == rows["s"]


def test_readers_agree_with_the_live_rule(tmp_path):
    times = [INSTANT_NS + i * 250_000_000 for i in range(5)]
    frames = []
    for unit in SCALES:
        path = tmp_path / f"trades_{unit}.csv"
        lines = ["timestamp,price,quantity,side"]
        lines += [f"{_as_unit(t, unit)!r},100,1,buy" for t in times]
        path.write_text("\n".join(lines) + "\n")
        frames.append(read_trades(path))
    for frame in frames:
        assert frame["timestamp"].astype("int64").tolist() == times


def test_strategy_agrees_with_the_live_rule(tmp_path):
    async def live_vector(unit: str) -> np.ndarray:
        manager = TickerModelManager(QUICK, models_dir=tmp_path / unit)
        try:
            strategy = OrderFlowTradingStrategy(manager, symbol="ETHUSDT")
            for trade in _window(unit, QUICK["sequence_length"]):
                await strategy.on_trade(trade)
            return strategy._pending[-1].features
        finally:
            await manager.aclose()

    vectors = {unit: asyncio.run(live_vector(unit)) for unit in SCALES}
    for unit in ("ms", "us", "ns"):
        np.testing.assert_array_equal(vectors[unit], vectors["s"])
    spec = FeatureSpec.from_config(Config.from_dict(QUICK))
    expected = compute_live_features(_window("ms", QUICK["sequence_length"]), None, spec)
    np.testing.assert_array_equal(vectors["s"], np.array(list(expected.values())))
