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

METRICS = {"flow_type_accuracy", "flow_type_f1_macro", "impact_mse", "impact_mae",
           "time_to_execution_mse", "n_train", "n_valid", "baseline_flow_type_accuracy",
           "baseline_impact_mse", "baseline_time_to_execution_mse"}


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
    assert n_valid == int(np.ceil(len(X) * 0.2)) and model.metrics_["n_train"] == len(X) - n_valid
    pred = model.predict(X.iloc[-50:])
    assert list(pred.columns) == ["flow_type", "p_sell_pressure", "p_balanced", "p_buy_pressure",
                                  "impact", "time_to_execution"]
    np.testing.assert_allclose(pred[["p_sell_pressure", "p_balanced", "p_buy_pressure"]].sum(axis=1),
                               1.0, rtol=1e-5)
    model.save(tmp_path / "m")
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    suffix = {"xgboost": ".ubj", "lightgbm": ".txt", "random_forest": ".skops"}[model_type]
    assert files == sorted([f"{h}{suffix}" for h in HEADS] + ["model.json"])
    loaded = OrderFlowModel.load(tmp_path / "m")
    pd.testing.assert_frame_equal(loaded.predict(X.iloc[-200:]), model.predict(X.iloc[-200:]))
    assert loaded.metrics_ == model.metrics_


def test_holdout_is_the_last_rows_never_shuffled(quick_config):
    trades = make_trades(4000, seed=3)
    X, y = build_training_set(trades, quick_config)
    model = OrderFlowModel(quick_config).fit(X, y)
    n_valid = int(model.metrics_["n_valid"])
    assert model.validation_start_ == str(X.index[len(X) - n_valid])
    assert model.score(X.iloc[-n_valid:], y.iloc[-n_valid:]) == {
        k: v for k, v in model.metrics_.items() if not k.startswith("n_")}


def test_predict_before_fit_raises_not_trained():
    with pytest.raises(NotTrainedError, match="not trained"):
        OrderFlowModel().predict(np.zeros((1, 15)))
    assert issubclass(NotTrainedError, ValueError) and issubclass(NotTrainedError, AttributeError)


def test_bad_training_sets_are_refused(quick_config):
    X, y = build_training_set(make_trades(3000, seed=2), quick_config)
    with pytest.raises(TrainingDataError, match="at least 30"):
        OrderFlowModel(quick_config).fit(X.iloc[:5], y.iloc[:5])
    with pytest.raises(TrainingDataError, match="at least two classes"):
        OrderFlowModel(quick_config).fit(X, y.assign(flow_type="balanced"))
    with pytest.raises(TrainingDataError, match="identical features"):
        OrderFlowModel(quick_config).fit(X * 0.0, y)
    with pytest.raises(TrainingDataError, match="NaN"):
        OrderFlowModel(quick_config).fit(X.assign(trade_intensity=np.nan), y)
    with pytest.raises(TrainingDataError, match="unknown flow_type 'up'"):
        OrderFlowModel(quick_config).fit(X, y.assign(flow_type="up"))


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
