import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticker_registry import (
    FEATURE_NAMES,
    Config,
    FeatureSpec,
    SampleValidationError,
    TradeDataError,
    TrainingDataError,
    build_training_set,
    compute_live_features,
)

SPEC = FeatureSpec(sequence_length=5, prediction_horizon=1 / 60, large_order_threshold=50.0)


def make_trades(n, seed=0, step_s=0.2):
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(
        np.cumsum(rng.exponential(step_s, n)), unit="s")
    return pd.DataFrame({
        "timestamp": ts,
        "price": 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n))),
        "quantity": rng.lognormal(-0.5, 1, n),
        "side": np.where(rng.random(n) < 0.5, 1, -1).astype(np.int8),
        "trade_id": np.arange(n),
    })


trade_rows = st.lists(
    st.tuples(
        st.integers(0, 5_000),  # ms gap to the previous trade (0: equal timestamps)
        st.floats(0.01, 1e5, allow_nan=False, allow_infinity=False),
        st.floats(1e-6, 1e4, allow_nan=False, allow_infinity=False),
        st.sampled_from([1, -1]),
    ),
    min_size=8, max_size=60,
)


def frame_from(rows):
    gaps, price, qty, side = zip(*rows, strict=True)
    ts = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.cumsum(gaps), unit="ms")
    return pd.DataFrame({"timestamp": ts, "price": price, "quantity": qty,
                         "side": np.array(side, dtype=np.int8)})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=trade_rows, data=st.data())
def test_live_features_equal_batch_features_exactly(rows, data):
    trades = frame_from(rows)
    spec = FeatureSpec(sequence_length=5, prediction_horizon=0.001, large_order_threshold=100.0)
    trades = pd.concat([trades, trades.iloc[[-1]].assign(
        timestamp=trades["timestamp"].iloc[-1] + pd.Timedelta(minutes=1))], ignore_index=True)
    X, _ = build_training_set(trades, spec)
    k = data.draw(st.integers(0, len(X) - 1))
    event = k + spec.sequence_length - 1
    window = trades.iloc[event - spec.sequence_length + 1: event + 1]
    events = [{"timestamp": int(t.value // 1_000_000), "price": p, "quantity": q,
               "side": "buy" if s > 0 else "sell"}
              for t, p, q, s in window[["timestamp", "price", "quantity", "side"]].itertuples(index=False)]
    live = compute_live_features(events, None, spec)
    assert list(live) == list(FEATURE_NAMES)
    np.testing.assert_array_equal(np.array(list(live.values())), X.iloc[k].to_numpy())
    from_frame = compute_live_features(window, None, spec)
    assert from_frame == live


@settings(max_examples=60, deadline=None)
@given(rows=trade_rows, data=st.data())
def test_no_look_ahead(rows, data):
    trades = frame_from(rows)
    spec = FeatureSpec(sequence_length=5, prediction_horizon=0.0001, large_order_threshold=100.0)
    X, _ = build_training_set(trades.iloc[:-1], spec) if len(trades) > 9 else (None, None)
    if X is None or len(X) < 2:
        return
    k = data.draw(st.integers(0, len(X) - 2))
    event = k + spec.sequence_length - 1
    changed = trades.copy()
    after = slice(event + 1, None)
    changed.loc[changed.index[after], "price"] *= 3.0
    changed.loc[changed.index[after], "quantity"] *= 0.1
    changed.loc[changed.index[after], "side"] *= -1
    X2, _ = build_training_set(changed.iloc[:-1], spec)
    np.testing.assert_array_equal(X.iloc[: k + 1].to_numpy(), X2.iloc[: k + 1].to_numpy())


def test_feature_definitions_on_a_hand_made_window():
    ts = pd.to_datetime([0, 1000, 2000, 3000, 4000, 30_000, 100_000], unit="ms", utc=True)
    trades = pd.DataFrame({"timestamp": ts, "price": [10.0, 10.0, 11.0, 11.0, 12.0, 12.6, 12.6],
                           "quantity": [1.0, 1.0, 10.0, 1.0, 2.0, 1.0, 1.0],
                           "side": np.array([1, -1, 1, 1, -1, 1, -1], dtype=np.int8)})
    spec = FeatureSpec(sequence_length=5, prediction_horizon=1.0, large_order_threshold=100.0)
    X, y = build_training_set(trades, spec)
    row = X.iloc[0]
    assert row["signed_volume_imbalance"] == pytest.approx((1 - 1 + 10 + 1 - 2) / 15)
    assert row["buy_trade_share"] == pytest.approx(3 / 5)
    assert row["trade_intensity"] == pytest.approx(4 / 4.0)
    assert row["window_return_bps"] == pytest.approx(np.log(12 / 10) * 1e4)
    vwap = (10 + 10 + 110 + 11 + 24) / 15
    assert row["vwap_deviation_bps"] == pytest.approx((12 / vwap - 1) * 1e4)
    assert row["large_order_count"] == 1  # the 110 notional trade
    assert row["large_order_share"] == pytest.approx(110 / 165)
    assert row["time_since_large_order_s"] == pytest.approx(2.0)
    assert row["last_side"] == -1
    assert row["has_market_data"] == 0
    assert len(X) == 2  # events at 4 s and 30 s have a full 60 s horizon before 100 s
    # labels: one trade in the horizon (30 s), a buy of 12.6 notional
    assert y.iloc[0]["flow_type"] == "buy_pressure"
    assert y.iloc[0]["impact"] == pytest.approx(np.log(12.6 / 12) * 1e4)
    assert y.iloc[0]["time_to_execution"] == pytest.approx(60.0)  # 100 notional never trades


def test_market_data_is_joined_as_of_each_event():
    trades = make_trades(200)
    market = pd.DataFrame({"timestamp": trades["timestamp"] - pd.Timedelta(milliseconds=1),
                           "bid": trades["price"] - 0.05, "ask": trades["price"] + 0.05,
                           "bid_size": 3.0, "ask_size": 1.0})
    spec = FeatureSpec(sequence_length=5, prediction_horizon=0.05)
    X, _ = build_training_set(trades, spec, market=market)
    assert (X["has_market_data"] == 1).all()
    assert X["book_imbalance"].iloc[0] == pytest.approx(0.5)
    k = 10
    event = k + 4
    live = compute_live_features(trades.iloc[event - 4: event + 1],
                                 market.iloc[event].to_dict(), spec)
    np.testing.assert_array_equal(np.array(list(live.values())), X.iloc[k].to_numpy())


def test_labels_have_three_flow_types_and_finite_targets():
    X, y = build_training_set(make_trades(5000), Config(prediction_horizon=0.05))
    assert set(y["flow_type"].unique()) == {"sell_pressure", "balanced", "buy_pressure"}
    assert np.isfinite(X.to_numpy()).all()
    assert np.isfinite(y[["impact", "time_to_execution"]].to_numpy()).all()
    assert X.index.equals(y.index) and X.index.is_monotonic_increasing


def test_events_without_a_full_horizon_are_dropped():
    trades = make_trades(300)
    X, _ = build_training_set(trades, SPEC)
    horizon = pd.Timedelta(seconds=1)
    assert X.index[-1] + horizon <= trades["timestamp"].iloc[-1]
    assert X.index[0] == trades["timestamp"].iloc[SPEC.sequence_length - 1]


def test_too_few_trades_and_bad_frames_are_refused():
    with pytest.raises(TrainingDataError, match="sequence_length=5"):
        build_training_set(make_trades(3), SPEC)
    with pytest.raises(TrainingDataError, match="horizon"):
        build_training_set(make_trades(6, step_s=0.001), FeatureSpec(sequence_length=5))
    with pytest.raises(TradeDataError, match="not sorted"):
        build_training_set(make_trades(50).iloc[::-1], SPEC)
    with pytest.raises(TradeDataError, match="lacks column"):
        build_training_set(make_trades(50).drop(columns="side"), SPEC)
    bad = make_trades(50)
    bad.loc[7, "price"] = np.nan
    with pytest.raises(TradeDataError, match="row 7"):
        build_training_set(bad, SPEC)


def test_live_window_errors_are_clear():
    events = [{"timestamp": 1_700_000_000_000 + i, "price": 1.0, "quantity": 1.0, "side": "buy"}
              for i in range(5)]
    with pytest.raises(SampleValidationError, match="sequence_length=20"):
        compute_live_features(events, None, Config(large_order_threshold=1000))
    with pytest.raises(TrainingDataError, match="large_order_threshold is 'auto'"):
        compute_live_features(events, None, Config())  # auto is set from trades, not a window
    events[2]["side"] = "up"
    with pytest.raises(SampleValidationError, match="order event 2"):
        compute_live_features(events, None, SPEC)
    events[2]["side"] = "sell"
    events[3]["price"] = -1
    with pytest.raises(SampleValidationError, match="positive"):
        compute_live_features(events, None, SPEC)


def test_inputs_are_not_mutated():
    trades = make_trades(300)
    before = trades.copy()
    build_training_set(trades, SPEC)
    pd.testing.assert_frame_equal(trades, before)
