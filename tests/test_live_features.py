"""The live feature row of plain trade dicts (ticker_registry/live_features.py): the batch row, bit for bit.

``live_feature_vector`` computes a list of plain trade dicts in Python floats and anything
else through the checked numpy path; these tests hold the fast row to the batch features of
the same event (``build_training_set``) and to the checked path, and hold its refusals to
the checked path's errors, word for word.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticker_registry import features
from ticker_registry.exceptions import SampleValidationError
from ticker_registry.features import (
    FEATURE_NAMES,
    FeatureSpec,
    build_training_set,
    compute_live_features,
    live_feature_vector,
)
from ticker_registry.live_features import live_quote, plain_window, window_row

T0_MS = 1_700_000_000_000
SPEC = FeatureSpec(sequence_length=5, prediction_horizon=0.001, large_order_threshold=100.0)


def _events(rows, t0_ms=T0_MS):
    """Trade dicts (timestamp in epoch ms) of (ms gap, price, quantity, side) rows."""
    out, t = [], t0_ms
    for gap, price, qty, side in rows:
        t += gap
        out.append({"timestamp": t, "price": price, "quantity": qty,
                    "side": "buy" if side > 0 else "sell"})
    return out


def _frame(events):
    return pd.DataFrame({
        "timestamp": pd.to_datetime([e["timestamp"] for e in events], unit="ms", utc=True),
        "price": [float(e["price"]) for e in events],
        "quantity": [float(e["quantity"]) for e in events],
        "side": np.array([1 if e["side"] == "buy" else -1 for e in events], dtype=np.int8)})


def _checked_row(events, quote, spec):
    """The row of the checked numpy path alone (what the live path computed before)."""
    ts, price, qty, side = features._event_arrays(events, spec.sequence_length)
    row = features._window_features(ts, price, qty, side, spec)
    if quote:
        features._apply_market(row, price[-1:], *[np.array([v]) for v in live_quote(quote)])
    return row[0]


def _batch_row(events, quote, spec, k):
    """Row ``k`` of build_training_set, the quote (if any) known from event ``k`` on."""
    trades = _frame(events)
    # one trade a minute later gives every event its horizon (features never look ahead)
    trades = pd.concat([trades, trades.iloc[[-1]].assign(
        timestamp=trades["timestamp"].iloc[-1] + pd.Timedelta(minutes=1))], ignore_index=True)
    market = None
    if quote:
        market = pd.DataFrame({"timestamp": [trades["timestamp"].iloc[k + spec.sequence_length - 1]],
                               **{key: [np.nan if quote.get(key) is None else float(quote[key])]
                                  for key in ("bid", "ask", "bid_size", "ask_size")}})
    X, _ = build_training_set(trades, spec, market=market)
    return X.iloc[k].to_numpy()


def _same(a, b):
    np.testing.assert_array_equal(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    assert np.asarray(a).tobytes() == np.asarray(b, dtype=np.float64).tobytes()  # -0.0 too


# prices near 1 too: there numpy's vectorised log and math.log differ most often (the row
# must use numpy's, as the batch does)
prices = st.one_of(st.floats(0.01, 1e5), st.floats(0.5, 2.0), st.floats(1e-12, 1e12),
                   st.integers(1, 10**6), st.sampled_from([1.0, 100.0, 1e-300, 1e300]))
sizes = st.one_of(st.floats(1e-6, 1e4), st.floats(1e-12, 1e12), st.integers(1, 10**4),
                  st.sampled_from([1.0, 1e-300, 1e300]))
rows = st.lists(st.tuples(st.integers(0, 5_000) | st.just(0), prices, sizes, st.sampled_from([1, -1])),
                min_size=2, max_size=40)
quote_value = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                        st.floats(-1.0, 1e6), st.just(0.0), st.integers(-5, 10**6))
quotes = st.one_of(st.none(), st.just({}), st.fixed_dictionaries(
    {}, optional={key: quote_value for key in ("bid", "ask", "bid_size", "ask_size")}))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows, quote=quotes, data=st.data())
def test_the_live_row_is_the_batch_row_exactly(rows, quote, data):
    n = data.draw(st.integers(2, min(len(rows), 12)), label="sequence_length")
    threshold = data.draw(st.sampled_from([0.0, 50.0, 100.0, 1e4, math.inf]), label="threshold")
    spec = FeatureSpec(sequence_length=n, prediction_horizon=0.001, large_order_threshold=threshold)
    events = _events(rows)
    k = data.draw(st.integers(0, len(events) - n), label="event")
    window = events[: k + n]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's inf/NaN of extreme trades
        live = live_feature_vector(window, quote, spec)
        _same(live, _batch_row(events, quote, spec, k))
        _same(live, _checked_row(window, quote, spec))
    assert list(compute_live_features(window, quote, spec)) == list(FEATURE_NAMES)


@pytest.mark.parametrize("with_quotes", [False, True])
def test_every_event_of_a_long_history_is_the_batch_row(with_quotes):
    """Thousands of windows of prices near 1, where numpy's log and math.log most often
    differ in the last bit (about one window in a hundred): the row must use numpy's."""
    rng = np.random.default_rng(11)
    n_trades = 3000
    gaps = rng.integers(0 if not with_quotes else 1, 400, n_trades)  # equal timestamps too
    price = np.exp(np.cumsum(rng.normal(0, 0.01, n_trades))) * rng.choice([1.0, 0.7, 1.3])
    qty = rng.lognormal(0, 1.5, n_trades)
    side = np.where(rng.random(n_trades) < 0.5, 1, -1)
    events = _events(list(zip(gaps.tolist(), price.tolist(), qty.tolist(), side.tolist(), strict=True)))
    spec = FeatureSpec(sequence_length=8, prediction_horizon=0.001, large_order_threshold=4.0)
    trades = _frame(events)
    trades = pd.concat([trades, trades.iloc[[-1]].assign(
        timestamp=trades["timestamp"].iloc[-1] + pd.Timedelta(minutes=1))], ignore_index=True)
    quotes = [None] * n_trades
    market = None
    if with_quotes:
        spread = rng.uniform(-1e-4, 1e-3, n_trades)  # some crossed (ask < bid): no quote
        quotes = [{"bid": p * (1 - s), "ask": p * (1 + s), "bid_size": b, "ask_size": a}
                  for p, s, b, a in zip(price.tolist(), spread.tolist(),
                                        rng.choice([0.0, 1.0, 2.5], n_trades).tolist(),
                                        rng.choice([0.0, 3.0], n_trades).tolist(), strict=True)]
        market = pd.DataFrame({"timestamp": trades["timestamp"].iloc[:n_trades],
                               **{key: [q[key] for q in quotes] for key in quotes[0]}})
    X, _ = build_training_set(trades, spec, market=market)
    n = spec.sequence_length
    live = np.array([live_feature_vector(events[k: k + n], quotes[k + n - 1], spec)
                     for k in range(len(X))])
    assert live.tobytes() == X.to_numpy().tobytes()


def test_a_plain_window_takes_the_python_path(monkeypatch):
    events = _events([(250, 100.0 + i, 1.0 + i % 3, 1 if i % 2 else -1) for i in range(8)])
    expected = _checked_row(events, {"bid": 104.0, "ask": 106.0, "bid_size": 0.0, "ask_size": 0.0},
                            SPEC)

    def refuse(*args):
        raise AssertionError("the checked numpy path ran")

    monkeypatch.setattr(features, "_event_arrays", refuse)
    got = live_feature_vector(events, {"bid": 104.0, "ask": 106.0, "bid_size": 0.0, "ask_size": 0.0},
                              SPEC)
    _same(got, expected)
    assert got[13] == 0.0 and got[14] == 1.0  # zero sizes: no imbalance, but a quote


def _variants(events):
    """Makers of the same trades in forms the Python path leaves to the checked path."""
    ms = [e["timestamp"] for e in events]
    return {
        "float epoch": lambda: [{**e, "timestamp": float(t)} for e, t in zip(events, ms, strict=True)],
        "epoch ns": lambda: [{**e, "timestamp": t * 1_000_000} for e, t in zip(events, ms, strict=True)],
        "iso text": lambda: [{**e, "timestamp": pd.Timestamp(t, unit="ms", tz="UTC").isoformat()}
                             for e, t in zip(events, ms, strict=True)],
        "numpy numbers": lambda: [{**e, "price": np.float64(e["price"]),
                                   "quantity": np.float64(e["quantity"])} for e in events],
        "numpy side": lambda: [{**e, "side": np.int8(1 if e["side"] == "buy" else -1)} for e in events],
        "spaced side": lambda: [{**e, "side": f" {e['side'].upper()} "} for e in events],
        "amount": lambda: [{"amount": e["quantity"], **{k: v for k, v in e.items() if k != "quantity"}}
                           for e in events],
        "tuple": lambda: tuple(events),
        "iterator": lambda: iter(events),
        "frame": lambda: _frame(events),
    }


@pytest.mark.parametrize("form", list(_variants([])))
def test_other_input_forms_give_the_same_row(form):
    events = _events([(0 if i == 3 else 400, 50.0 * (1 + i / 100), 3.0, 1 if i % 3 else -1)
                      for i in range(9)])
    make = _variants(events)[form]
    expected = live_feature_vector(events, {"bid": 50.0, "ask": 55.0}, SPEC)
    _same(expected, _checked_row(events, {"bid": 50.0, "ask": 55.0}, SPEC))
    _same(live_feature_vector(make(), {"bid": 50.0, "ask": 55.0}, SPEC), expected)
    _same(_checked_row(make(), {"bid": 50.0, "ask": 55.0}, SPEC), expected)


def test_a_window_across_epoch_units_is_left_to_the_checked_path():
    events = _events([(1000, 10.0, 1.0, 1)] * 5)
    events[0]["timestamp"] = events[1]["timestamp"] // 1000 - 1  # epoch seconds, then ms
    assert plain_window(events, 5) is None
    _same(live_feature_vector(events, None, SPEC), _checked_row(events, None, SPEC))


def test_a_zero_notional_window_gives_the_numpy_values():
    events = _events([(10, 1e-200, 1e-200, 1)] * 5)  # every notional underflows to 0.0
    assert window_row(*plain_window(events, 5), 100.0) is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        _same(live_feature_vector(events, None, SPEC), _batch_row(events, None, SPEC, 0))


def _bad_windows():
    good = _events([(100, 10.0, 1.0, 1)] * 5)

    def change(i, **fields):
        out = [dict(e) for e in good]
        out[i].update(fields)
        return out

    yield "nan price", change(2, price=math.nan)
    yield "inf quantity", change(1, quantity=math.inf)
    yield "zero quantity", change(4, quantity=0.0)
    yield "negative price", change(3, price=-1)
    yield "text price", change(3, price="ten")
    yield "None quantity", change(0, quantity=None)
    yield "unsorted", change(4, timestamp=good[0]["timestamp"] - 1)
    yield "equal then earlier", change(2, timestamp=good[1]["timestamp"] - 5)
    yield "bad side", change(2, side="up")
    yield "bool timestamp", change(0, timestamp=True)
    yield "negative timestamp", change(0, timestamp=-5)
    yield "zero timestamp", change(0, timestamp=0)
    yield "far future", change(4, timestamp=10**19)
    yield "no side", [{k: v for k, v in e.items() if k != "side"} for e in good]
    yield "no quantity", [{k: v for k, v in e.items() if k != "quantity"} for e in good]
    yield "not a dict", [*good[:4], 7]
    yield "one trade", good[:1]
    yield "no trade", []


@pytest.mark.parametrize("name, events", list(_bad_windows()), ids=[n for n, _ in _bad_windows()])
def test_bad_windows_are_refused_with_the_checked_paths_words(name, events):
    with pytest.raises(SampleValidationError) as expected:
        features._event_arrays(events, SPEC.sequence_length)
    with pytest.raises(SampleValidationError) as got:
        live_feature_vector(events, None, SPEC)
    assert str(got.value) == str(expected.value)


@pytest.mark.parametrize("quote, words", [
    ({"bid": "x", "ask": 1.0}, r"market_data\['bid'\] is 'x'"),
    ({"bid": 1.0, "ask": [2.0]}, r"market_data\['ask'\] is \[2.0\]"),
    ([1.0, 2.0], "market_data is a list"),
])
def test_a_bad_quote_is_refused(quote, words):
    events = _events([(100, 10.0, 1.0, 1)] * 5)
    with pytest.raises(SampleValidationError, match=words):
        live_feature_vector(events, quote, SPEC)


@settings(max_examples=100, deadline=None)
@given(value=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                       st.integers(-10, 10)))
def test_live_quote_reads_numbers_as_float(value):
    quote = live_quote({"bid": value, "ask": 1.0})
    assert quote[1] == 1.0 and math.isnan(quote[2]) and math.isnan(quote[3])
    assert math.isnan(quote[0]) if value is None or value != value else quote[0] == float(value)
