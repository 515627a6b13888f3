"""Tests of ticker_registry.synthetic: schema, determinism, profiles, structure."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from ticker_registry.data import CANONICAL_COLUMNS
from ticker_registry.exceptions import ConfigError, InvalidTickerError
from ticker_registry.synthetic import (
    PROFILES,
    TickerProfile,
    generate_trades,
    profile_for,
)


def assert_canonical(df: pd.DataFrame, n: int) -> None:
    assert tuple(df.columns) == CANONICAL_COLUMNS
    assert str(df["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert df["price"].dtype == np.float64 and df["quantity"].dtype == np.float64
    assert df["side"].dtype == np.int8 and df["trade_id"].dtype == np.int64
    assert isinstance(df.index, pd.RangeIndex) and len(df) == n
    assert df["timestamp"].is_monotonic_increasing
    assert set(np.unique(df["side"])) == {-1, 1}
    assert (df["price"] > 0).all() and (df["quantity"] > 0).all()
    assert np.isfinite(df["price"]).all() and np.isfinite(df["quantity"]).all()
    np.testing.assert_array_equal(df["trade_id"], np.arange(n))


def stats(df: pd.DataFrame) -> dict[str, float]:
    returns = np.diff(np.log(df["price"].to_numpy())) * 1e4
    seconds = (df["timestamp"].iloc[-1] - df["timestamp"].iloc[0]).total_seconds()
    return {
        "vol_bps": float(returns.std()),
        "mean_notional": float((df["price"] * df["quantity"]).mean()),
        "trades_per_second": len(df) / seconds,
    }


@pytest.mark.parametrize("ticker", ["ETHUSDT", "BTCUSDT", "ADAUSDT", "doge/usdt", "NEWCOIN123"])
def test_schema(ticker: str) -> None:
    assert_canonical(generate_trades(ticker, 5_000, seed=7), 5_000)


def test_deterministic_for_ticker_n_and_seed() -> None:
    a = generate_trades("ETHUSDT", 3_000, seed=11)
    pd.testing.assert_frame_equal(a, generate_trades("ETHUSDT", 3_000, seed=11))
    pd.testing.assert_frame_equal(a, generate_trades("eth/usdt", 3_000, seed=11))
    assert not a.equals(generate_trades("ETHUSDT", 3_000, seed=12))
    assert not a["side"].equals(generate_trades("SOLUSDT", 3_000, seed=11)["side"])


def test_start_time() -> None:
    df = generate_trades("ETHUSDT", 100, start="2023-06-01T12:00:00Z")
    assert df["timestamp"].iloc[0] >= pd.Timestamp("2023-06-01T12:00:00Z")
    assert df["timestamp"].iloc[-1] < pd.Timestamp("2023-06-01T13:00:00Z")
    naive = generate_trades("ETHUSDT", 100, start="2023-06-01 12:00:00")
    pd.testing.assert_frame_equal(df, naive)


def test_known_profiles_are_distinct() -> None:
    assert set(PROFILES) == {"ETHUSDT", "BTCUSDT", "ADAUSDT"}
    eth, btc, ada = (stats(generate_trades(t, 50_000, seed=3)) for t in ("ETHUSDT", "BTCUSDT", "ADAUSDT"))
    assert ada["vol_bps"] > 2 * eth["vol_bps"] > 2 * btc["vol_bps"]
    assert btc["mean_notional"] > 2 * eth["mean_notional"] > 4 * ada["mean_notional"]
    assert eth["mean_notional"] == pytest.approx(PROFILES["ETHUSDT"].mean_notional, rel=0.15)
    assert ada["mean_notional"] == pytest.approx(PROFILES["ADAUSDT"].mean_notional, rel=0.15)
    for ticker in PROFILES:
        # Large orders (>= the default large_order_threshold of 1000) are present, not dominant.
        notional = generate_trades(ticker, 20_000, seed=1).eval("price * quantity")
        assert 0.003 < (notional >= 1000).mean() < 0.3
    eth_df = generate_trades("ETHUSDT", 1_000)
    assert eth_df["price"].iloc[0] == pytest.approx(1600, rel=0.01)
    assert generate_trades("ADAUSDT", 1_000)["price"].iloc[0] == pytest.approx(0.35, rel=0.01)


def test_unknown_ticker_profile_is_stable_and_valid() -> None:
    a = profile_for("SOL/USDT")
    assert a == profile_for("solusdt") == profile_for("SOLUSDT")
    assert a != profile_for("XRPUSDT")
    assert all(type(getattr(a, f.name)) is float for f in dataclasses.fields(a))
    # Frozen literal values: sha256-derived, so they never change between runs or machines.
    assert profile_for("SOLUSDT").base_price == pytest.approx(0.01268)


def test_profile_override_and_validation() -> None:
    custom = dataclasses.replace(PROFILES["ETHUSDT"], base_price=100.0)
    df = generate_trades("ETHUSDT", 500, profile=custom)
    assert df["price"].iloc[0] == pytest.approx(100, rel=0.01)
    with pytest.raises(ConfigError, match=r"flow_persistence=1\.5"):
        dataclasses.replace(custom, flow_persistence=1.5)
    with pytest.raises(ConfigError, match="base_price=-1"):
        dataclasses.replace(custom, base_price=-1)
    with pytest.raises(ConfigError, match="volatility=nan"):
        TickerProfile(**{**dataclasses.asdict(custom), "volatility": float("nan")})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_trades": 0}, "n_trades must be a positive integer"),
        ({"n_trades": 2.5}, "n_trades must be a positive integer"),
        ({"n_trades": 10, "seed": -1}, "seed must be a non-negative integer"),
        ({"n_trades": 10, "start": "not a time"}, "is not a time"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        generate_trades("ETHUSDT", **kwargs)


def test_bad_ticker() -> None:
    with pytest.raises(InvalidTickerError):
        generate_trades("../etc", 10)


def test_flow_is_persistent_and_moves_price() -> None:
    """The structure models must learn: recent flow predicts future flow and returns."""
    df = generate_trades("ETHUSDT", 100_000, seed=5)
    side = df["side"].to_numpy().astype(float)
    notional = (df["price"] * df["quantity"]).to_numpy()
    assert np.corrcoef(side[1:], side[:-1])[0, 1] > 0.3
    signed = np.concatenate(([0.0], np.cumsum(side * notional)))
    log_price = np.log(df["price"].to_numpy())
    events = np.arange(20, len(df) - 100, 13)
    past = signed[events + 1] - signed[events - 19]
    future = signed[events + 101] - signed[events + 1]
    future_return = log_price[events + 100] - log_price[events]
    assert np.corrcoef(past, future)[0, 1] > 0.3
    assert np.corrcoef(past, future_return)[0, 1] > 0.2


def test_arrivals_and_large_orders() -> None:
    df = generate_trades("ADAUSDT", 50_000, seed=2)
    gaps = df["timestamp"].diff().dt.total_seconds().iloc[1:]
    assert (gaps >= 0).all()
    assert stats(df)["trades_per_second"] == pytest.approx(PROFILES["ADAUSDT"].trades_per_second, rel=0.5)
    notional = df["price"] * df["quantity"]
    # Large orders make the notional distribution heavy-tailed.
    assert notional.quantile(0.999) > 10 * notional.median()


def test_default_config_models_beat_baselines() -> None:
    """20,000 trades and the default Config: every head beats its naive baseline."""
    from ticker_registry.config import Config
    from ticker_registry.training import train_on_trades

    for ticker in ("ETHUSDT", "BTCUSDT", "ADAUSDT"):
        trades = generate_trades(ticker, 20_000, seed=0)
        # Long enough for the 20% holdout to span many ~15-minute flow regimes.
        assert trades["timestamp"].iloc[-1] - trades["timestamp"].iloc[0] > pd.Timedelta(hours=12)
        m = train_on_trades(trades, Config()).model.metrics_
        assert m["flow_type_accuracy"] > m["baseline_flow_type_accuracy"] + 0.05, (ticker, m)
        assert m["impact_mse"] < 0.9 * m["baseline_impact_mse"], (ticker, m)
        assert m["time_to_execution_mse"] < 0.9 * m["baseline_time_to_execution_mse"], (ticker, m)
