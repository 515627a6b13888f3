import numpy as np
import pandas as pd
import pytest

from ticker_registry import (
    Config,
    ModelFormatError,
    NotTrainedError,
    OrderFlowModel,
    TrainingDataError,
    build_training_set,
    read_trades,
)
from ticker_registry.model import HEADS

from conftest import QUICK, make_trades, shared_data

METRICS = {"flow_type_logloss", "baseline_flow_type_logloss", "flow_type_accuracy",
           "baseline_flow_type_accuracy", "impact_mse", "baseline_impact_mse", "time_to_execution_mse",
           "baseline_time_to_execution_mse", "n_train", "n_valid", "skill_flow_type", "skill_impact",
           "skill_time_to_execution", "has_skill_flow_type", "has_skill_impact",
           "has_skill_time_to_execution"}
SOURCES = ["flow_type_source", "impact_source", "time_to_execution_source"]


@pytest.fixture(scope="module")
def xrpeth():
    trades = read_trades(shared_data("XRPETH-aggTrades-2019-10.zip"))
    return build_training_set(trades, Config(large_order_threshold=1.0))


@pytest.mark.parametrize("model_type", ["xgboost", "lightgbm", "random_forest"])
def test_each_model_type_trains_on_real_trades(model_type, xrpeth, tmp_path):
    X, y = xrpeth
    cfg = Config(model_type=model_type, large_order_threshold=1.0,
                 hyperparameters=QUICK["hyperparameters"])
    model = OrderFlowModel(cfg).fit(X, y)
    assert set(model.metrics_) >= METRICS
    assert all(np.isfinite(v) for v in model.metrics_.values())
    n_valid = int(model.metrics_["n_valid"])
    assert model.metrics_["n_train"] == len(X) and 0.5 * len(X) < n_valid < len(X)
    pred = model.predict(X.iloc[-50:])
    assert list(pred.columns) == ["flow_type", "p_sell_pressure", "p_balanced", "p_buy_pressure",
                                  "impact", "time_to_execution", *SOURCES]
    assert [pred[c].iloc[0] for c in SOURCES] == [model.serving_[h] for h in HEADS]
    np.testing.assert_allclose(pred[["p_sell_pressure", "p_balanced", "p_buy_pressure"]].sum(axis=1),
                               1.0, rtol=1e-5)
    model.save(tmp_path / "m")
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    suffix = {"xgboost": ".ubj", "lightgbm": ".txt", "random_forest": ".skops"}[model_type]
    assert files == sorted([f"{h}{suffix}" for h in HEADS] + ["model.json"])
    loaded = OrderFlowModel.load(tmp_path / "m")
    pd.testing.assert_frame_equal(loaded.predict(X.iloc[-200:]), model.predict(X.iloc[-200:]))
    assert loaded.metrics_ == model.metrics_


def test_gate_holdout_is_the_last_block_never_shuffled(quick_config):
    trades = make_trades(4000, seed=3)
    X, y = build_training_set(trades, quick_config)
    model = OrderFlowModel(quick_config).fit(X, y)
    rows = model.gate_holdout_.positions
    assert rows[-1] == len(X) - 1 and np.all(np.diff(rows) == 1)
    assert model.validation_start_.startswith(str(X.index[rows[0]].tz_localize(None)).replace(" ", "T"))
    assert model.gate_holdout_.served.shape == (rows.size, 5)


def test_predict_before_fit_raises_not_trained():
    with pytest.raises(NotTrainedError, match="not trained"):
        OrderFlowModel().predict(np.zeros((1, 15)))
    assert issubclass(NotTrainedError, ValueError) and issubclass(NotTrainedError, AttributeError)


def test_bad_training_sets_are_refused(quick_config):
    X, y = build_training_set(make_trades(3000, seed=2), quick_config)
    with pytest.raises(TrainingDataError, match="at least 30"):
        OrderFlowModel(quick_config).fit(X.iloc[:5], y.iloc[:5])
    with pytest.raises(TrainingDataError, match="identical features"):
        OrderFlowModel(quick_config).fit(X * 0.0, y)
    with pytest.raises(TrainingDataError, match="NaN"):
        OrderFlowModel(quick_config).fit(X.assign(trade_intensity=np.nan), y)
    with pytest.raises(TrainingDataError, match="unknown flow_type 'up'"):
        OrderFlowModel(quick_config).fit(X, y.assign(flow_type="up"))


def test_a_constant_label_is_not_evaluable_and_served_by_its_baseline(quick_config, tmp_path):
    X, y = build_training_set(make_trades(3000, seed=2), quick_config)
    model = OrderFlowModel(quick_config).fit(X, y.assign(flow_type="balanced", time_to_execution=3.0))
    for head in ("flow_type", "time_to_execution"):
        assert not model.evaluation_[head].evaluable and not model.evaluation_[head].has_skill
        assert model.serving_[head] == "baseline"
        assert "constant" in model.evaluation_[head].reason
    pred = model.predict(X.iloc[:5])
    assert (pred["time_to_execution"] == 3.0).all() and (pred["time_to_execution_source"] == "baseline").all()
    assert pred["p_balanced"].iloc[0] == pytest.approx((len(X) + 1) / (len(X) + 3))
    model.save(tmp_path / "m")
    pd.testing.assert_frame_equal(OrderFlowModel.load(tmp_path / "m").predict(X.iloc[:5]), pred)


def test_load_refuses_foreign_directories(tmp_path):
    with pytest.raises(ModelFormatError, match="model.json is missing"):
        OrderFlowModel.load(tmp_path)
    (tmp_path / "model.json").write_text('{"format_version": 99}')
    with pytest.raises(ModelFormatError, match="format_version 99"):
        OrderFlowModel.load(tmp_path)


def test_corrupt_head_file_is_a_model_format_error(tmp_path, quick_config):
    X, y = build_training_set(make_trades(3000, seed=2), quick_config)
    OrderFlowModel(quick_config).fit(X, y).save(tmp_path)
    (tmp_path / "impact.ubj").write_bytes(b"not a model")
    with pytest.raises(ModelFormatError, match="impact.ubj"):
        OrderFlowModel.load(tmp_path)
