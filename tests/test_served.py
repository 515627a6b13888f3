"""The serving module (shipped inside every version): one implementation, both inputs, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ticker_registry import (
    FEATURE_NAMES,
    Config,
    ModelFormatError,
    OrderFlowModel,
    PredictionInputError,
    TrainingDataError,
    compute_live_features,
    evaluation,
    features,
    heads,
    model,
)
from ticker_registry.served import (
    HEADS,
    MANIFEST,
    PREDICTION_COLUMNS,
    ServedModel,
    check_manifest,
    input_kind,
    trades_feature_vector,
)
from ticker_registry.training import train_on_trades

from conftest import QUICK, make_trades

INTEGER_FEATURES = ("last_side", "large_order_count", "has_market_data")


@pytest.fixture(scope="module", params=["xgboost", "lightgbm", "random_forest"])
def saved(request, tmp_path_factory):
    """A trained model of each type, saved, with a window of raw trades it was not trained on."""
    cfg = Config.from_dict({**QUICK, "model_type": request.param})
    result = train_on_trades(make_trades(5000, seed=3), cfg)
    folder = result.model.save(tmp_path_factory.mktemp(request.param) / "native")
    return result, folder


def _window(n: int, seed: int = 11) -> pd.DataFrame:
    trades = make_trades(n + 40, seed=seed).iloc[-n:].reset_index(drop=True)
    window = trades[["timestamp", "price", "quantity", "side"]].copy()
    window["bid"] = window["price"] * 0.9999
    window["ask"] = window["price"] * 1.0001
    window["bid_size"], window["ask_size"] = 3.0, 2.0
    return window


def _library_prediction(result, window: pd.DataFrame) -> pd.DataFrame:
    spec = result.model.spec_
    last = window.iloc[-spec.sequence_length:]
    events = last[["timestamp", "price", "quantity", "side"]].to_dict("records")
    quote = last.iloc[-1][["bid", "ask", "bid_size", "ask_size"]].to_dict()
    return result.model.predict(pd.DataFrame([compute_live_features(events, quote, spec)]))


def test_one_fact_each():
    assert HEADS is evaluation.HEADS is features.LABEL_NAMES
    assert PREDICTION_COLUMNS == model.PREDICTION_COLUMNS
    assert set(evaluation.LOSS_METRICS) == set(HEADS) == set(evaluation.BASELINE_KINDS)


@pytest.mark.parametrize("change, pattern", [
    (lambda d: {**d, "trusted": ["builtins.eval"]}, r"unknown field\(s\) \['trusted'\]"),
    (lambda d: {**d, "format_version": 2}, "format_version 2"),
    (lambda d: {**d, "model_type": "pickle"}, "unknown model_type 'pickle'"),
    (lambda d: {**d, "heads": {**d["heads"], "impact": "../impact.ubj"}}, "names head files"),
    (lambda d: {**d, "feature_spec": {**d["feature_spec"], "feature_names": ["x"]}},
     "does not compute"),
    (lambda d: {**d, "metrics": {"impact_mse": "low"}}, "not a map of numbers"),
    (lambda d: {**d, "serving": {h: "model" for h in HEADS[:2]}}, "'serving' must map each head"),
    (lambda d: {**d, "serving": {**d["serving"], "impact": "baseline"},
                "baselines": {**d["baselines"], "heads": {}}}, "not a valid constant prediction"),
])
def test_model_json_is_checked_by_one_function_everywhere(saved, tmp_path, change, pattern):
    """The loader refuses what bundle verification refuses: both call check_manifest."""
    _, folder = saved
    doc = json.loads((folder / MANIFEST).read_text())
    assert check_manifest(doc, "model.json")["serving"] == doc["serving"]
    bad = change(doc)
    with pytest.raises(ModelFormatError, match=pattern):
        check_manifest(bad, "model.json")
    for f in folder.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / MANIFEST).write_text(json.dumps(bad))
    with pytest.raises(ModelFormatError, match=pattern):
        ServedModel.load(tmp_path)
    with pytest.raises(ModelFormatError, match=pattern):
        OrderFlowModel.load(tmp_path)


def test_skops_files_are_loaded_with_the_allow_list_only(saved, monkeypatch):
    result, folder = saved
    if result.model.config.model_type != "random_forest":
        pytest.skip("skops is the random-forest format")
    path = folder / "impact.skops"
    assert heads.skops_trusted(path) == heads.SKOPS_TRUSTED
    import skops.io as sio

    monkeypatch.setattr(sio, "get_untrusted_types", lambda file: ["builtins.eval"])
    with pytest.raises(ModelFormatError, match=r"outside our allow-list .*builtins\.eval"):
        heads.load_head("random_forest", path, n_classes=0)


def test_the_served_model_predicts_what_the_library_predicts(saved):
    result, folder = saved
    X = result.X_valid.iloc[:40]
    served = ServedModel.load(folder)
    pd.testing.assert_frame_equal(served.predict(X), result.model.predict(X))
    assert list(served.predict(X).columns) == list(PREDICTION_COLUMNS)
    loaded = OrderFlowModel.load(folder)  # the library loads through the same code
    assert loaded.serving_ == served.serving == result.model.serving_
    np.testing.assert_array_equal(loaded.predict_matrix(X.to_numpy()),
                                  served.predict_matrix(np.ascontiguousarray(X.to_numpy())))


def test_integer_feature_columns_are_accepted(saved):
    result, folder = saved
    X = result.X_valid.iloc[:10].reset_index(drop=True)
    as_int = X.astype({c: "int64" for c in INTEGER_FEATURES})
    assert (as_int[list(INTEGER_FEATURES)] == X[list(INTEGER_FEATURES)]).all().all()
    served = ServedModel.load(folder)
    pd.testing.assert_frame_equal(served.predict(as_int), served.predict(X))
    with_extra = X.assign(note="ignored", trade_id=7)
    pd.testing.assert_frame_equal(served.predict(with_extra), served.predict(X))


def test_raw_trades_give_the_library_live_prediction(saved):
    result, folder = saved
    served = ServedModel.load(folder)
    window = _window(25)
    expected = _library_prediction(result, window)
    got = served.predict(window)
    assert len(got) == 1 and input_kind(window) == "trades"
    pd.testing.assert_frame_equal(got, expected)
    # epoch milliseconds and ISO text, 'buy'/'sell' sides: the same instant, the same features
    ms = window.assign(timestamp=window["timestamp"].astype("int64") // 1_000_000,
                       side=np.where(window["side"] > 0, "buy", "sell"))
    iso = window.assign(timestamp=window["timestamp"].map(lambda t: t.isoformat()))
    spec = result.model.spec_
    for variant in (ms, iso):
        np.testing.assert_array_equal(trades_feature_vector(variant, spec),
                                      trades_feature_vector(window, spec))
    # without quote columns the features say so (has_market_data = 0)
    bare = window[["timestamp", "price", "quantity", "side"]]
    assert trades_feature_vector(bare, spec)[FEATURE_NAMES.index("has_market_data")] == 0.0


@pytest.mark.parametrize("change, pattern", [
    (lambda X: X.assign(spread_bps=[np.nan] + [0.0] * (len(X) - 1)),
     r"^feature 'spread_bps' has NaN or infinite values \(row 0: nan\)"),
    (lambda X: X.assign(book_imbalance=np.inf),
     r"^feature 'book_imbalance' has NaN or infinite values \(row 0: inf\)"),
    (lambda X: X.drop(columns="last_side"), r"^feature frame lacks column\(s\) \['last_side'\]"),
    (lambda X: X.assign(trade_intensity="fast"), r"^feature 'trade_intensity' is not numeric"),
    (lambda X: X.assign(log_mean_notional=None), r"^feature 'log_mean_notional' has NaN"),
])
def test_bad_feature_frames_get_one_line_naming_the_column(saved, change, pattern):
    result, folder = saved
    served = ServedModel.load(folder)
    with pytest.raises(PredictionInputError, match=pattern) as info:
        served.predict(change(result.X_valid.iloc[:3].reset_index(drop=True)))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("change, pattern", [
    (lambda w: w.iloc[:4], r"^4 raw trade\(s\) given; .* sequence_length=10"),
    (lambda w: w.drop(columns="quantity"), r"^raw trades lack column\(s\) \['quantity'\]"),
    (lambda w: w.assign(price=[*w["price"][:-1], np.nan]), r"^raw trades column 'price' is missing"),
    (lambda w: w.assign(quantity=-1.0), r"^raw trades column 'quantity' is not a finite positive"),
    (lambda w: w.assign(side="up"), r"^raw trades: order event \d+ .*'up'"),
    (lambda w: w.assign(timestamp="yesterday"), r"^raw trades: order event \d+ .*yesterday"),
    (lambda w: w.assign(bid="x"), r"^raw trades column 'bid' is not a number"),
    (lambda w: w.assign(last_side=1.0), r"^the input has feature columns \(last_side\) and raw-trade"),
    (lambda w: pd.DataFrame({"px": [1.0]}), r"^the input has neither the feature columns"),
])
def test_bad_raw_trades_get_one_line_naming_the_column(saved, change, pattern):
    _, folder = saved
    served = ServedModel.load(folder)
    with pytest.raises(PredictionInputError, match=pattern) as info:
        served.predict(change(_window(20)))
    assert "\n" not in str(info.value)


def test_training_keeps_its_own_error_with_the_column_named():
    X = pd.DataFrame(np.ones((3, len(FEATURE_NAMES))), columns=list(FEATURE_NAMES))
    X.loc[1, "vwap_deviation_bps"] = np.nan
    with pytest.raises(TrainingDataError, match="feature 'vwap_deviation_bps' has NaN or infinite"):
        model.feature_matrix(X)
    with pytest.raises(TrainingDataError, match="shape"):
        model.feature_matrix(np.ones((2, 3)))
