"""Flat forests predict what the native libraries predict (ticker_registry.flat_trees).

Every model family and head kind, trained here and loaded back from its saved file, on
random rows with NaN, infinite, huge, signed-zero and threshold-equal values, one row at a
time (every node decided at once) and sixteen at a time (level by level).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ticker_registry import OrderFlowModel, PredictionInputError
from ticker_registry import flat_trees as flat_trees_module
from ticker_registry.flat_trees import FlatForest, lgb_forest, xgb_forest
from ticker_registry.heads import (
    FLAT_MAX_ROWS,
    HEAD_SUFFIX,
    _LGBHead,
    _RFHead,
    _XGBHead,
    load_head,
    train_head,
)
from ticker_registry.hyperparameters import DEFAULT_HYPERPARAMETERS
from ticker_registry.model import feature_matrix
from ticker_registry.tree_check import parse_lgb_model, xgb_learner

from conftest import QUICK, make_trades

N_FEATURES = 6
N_ROWS = 1200
#: Small models that still split on every feature, trained on rows with NaN and zeros.
HYPERPARAMETERS = {
    "xgboost": {"n_estimators": 30, "max_depth": 4, "min_child_weight": 1.0, "reg_lambda": 1.0},
    "lightgbm": {"n_estimators": 30, "num_leaves": 15, "min_child_samples": 5, "reg_lambda": 1.0},
    "random_forest": {"n_estimators": 20, "max_depth": 6, "min_samples_leaf": 3},
}
CASES = [(m, k) for m in ("xgboost", "lightgbm", "random_forest") for k in (3, 0)]


def _training_data(seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(900, N_FEATURES))
    X[rng.random(X.shape) < 0.05] = 0.0
    signal = X[:, 0] + 0.5 * X[:, 1] - X[:, 2] * X[:, 3]
    X[rng.random(X.shape) < 0.08] = np.nan
    classes = np.digitize(signal + rng.normal(scale=0.5, size=len(X)), [-0.5, 0.5]).astype(float)
    return X, classes, 10.0 + 3.0 * signal + rng.normal(size=len(X))


def _rows(forest: FlatForest, seed: int, *, infinite: bool = True) -> np.ndarray:
    """Random rows: normal, scaled, NaN, zeros of both signs, huge and (``infinite``) inf,
    and values equal to (and one float32 step either side of) the trees' thresholds."""
    rng = np.random.default_rng(seed)
    R = rng.normal(size=(N_ROWS, N_FEATURES)) * rng.choice([1.0, 10.0], size=(N_ROWS, N_FEATURES))
    R[rng.random(R.shape) < 0.1] = np.nan
    R[rng.random(R.shape) < 0.03] = 0.0
    R[rng.random(R.shape) < 0.03] = -0.0
    if infinite:
        for value in (np.inf, -np.inf, 1e300, -1e300, 3.5e38):
            R[rng.random(R.shape) < 0.01] = value
    inner = np.flatnonzero(forest.left != np.arange(len(forest.left)))
    if not infinite:  # a forest trained on NaN splits "all values left" at threshold inf
        inner = inner[np.isfinite(forest.threshold[inner])]
    picked = rng.choice(inner, size=N_ROWS * 2)
    thresholds = forest.threshold[picked].astype(np.float64)
    step = rng.choice([-1, 0, 0, 1], size=len(picked))
    as32 = thresholds.astype(np.float32)
    nudged = np.where(step == 0, thresholds, np.nextafter(as32, as32 + step).astype(np.float64))
    R[rng.integers(0, N_ROWS, size=len(picked)), forest.feature[picked]] = nudged
    return R


def _assert_same(forest: FlatForest, want: np.ndarray, R: np.ndarray) -> None:
    one = np.concatenate([forest.predict(R[i:i + 1]) for i in range(len(R))])
    assert one.dtype == want.dtype and one.shape == want.shape
    np.testing.assert_allclose(one, want, rtol=0, atol=1e-6)
    sixteen = np.concatenate([forest.predict(R[i:i + 16]) for i in range(0, len(R), 16)])
    np.testing.assert_allclose(sixteen, want, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def heads(tmp_path_factory):
    """Each (model_type, n_classes): the head trained here and the head loaded from its file."""
    X, classes, values = _training_data()
    folder = tmp_path_factory.mktemp("flat-heads")
    out = {}
    for model_type, n_classes in CASES:
        hp = {**DEFAULT_HYPERPARAMETERS[model_type], **HYPERPARAMETERS[model_type]}
        trained = train_head(model_type, X, classes if n_classes else values, n_classes=n_classes,
                             hyperparameters=hp, seed=1, n_jobs=1)
        path = folder / f"{model_type}-{n_classes}{HEAD_SUFFIX[model_type]}"
        path.write_bytes(trained.dump())
        out[model_type, n_classes] = (trained, load_head(model_type, path, n_classes=n_classes))
    return out


@pytest.mark.parametrize(("model_type", "n_classes"), CASES)
@pytest.mark.parametrize("source", ["trained", "loaded"])
def test_flat_predict_equals_the_native_predict(heads, model_type, n_classes, source):
    trained, loaded = heads[model_type, n_classes]
    head = trained if source == "trained" else loaded
    if source == "loaded":  # built at load from the trees the check read
        assert isinstance(head.forest, FlatForest)
    forest = head.flatten()
    assert forest is not None
    R = _rows(forest, seed=len(model_type) + n_classes, infinite=model_type != "random_forest")
    want = head.predict_native(R)
    _assert_same(forest, want, R)
    # and through the head's own predict, which takes the flat path for a few rows
    via_head = np.concatenate([head.predict(R[i:i + 1]) for i in range(0, len(R), 5)])
    np.testing.assert_allclose(via_head, want[::5], rtol=0, atol=1e-6)
    assert isinstance(head.forest, FlatForest)


@pytest.mark.parametrize("n_classes", [3, 0])
def test_a_forest_refuses_infinite_values_as_scikit_learn_does(heads, n_classes):
    head = heads["random_forest", n_classes][1]
    for value in (np.inf, -np.inf, 1e300):
        row = np.zeros((1, N_FEATURES))
        row[0, 2] = value
        with pytest.raises(ValueError), np.errstate(over="ignore"):
            head.predict_native(row)
        with pytest.raises(PredictionInputError, match="finite"):
            head.predict(row)


def test_more_rows_than_the_flat_limit_go_native(heads):
    head = heads["xgboost", 3][1]

    class Refusing:
        max_rows = 10_000

        def predict(self, X):
            raise AssertionError("the flat forest was asked for more than FLAT_MAX_ROWS rows")

    R = np.random.default_rng(0).normal(size=(FLAT_MAX_ROWS + 1, N_FEATURES))
    want = head.predict_native(R)
    head.forest, kept = Refusing(), head.forest
    try:
        np.testing.assert_array_equal(head.predict(R), want)
    finally:
        head.forest = kept


def test_a_depth_limited_xgboost_regressor_with_its_own_base_score():
    import xgboost as xgb

    X, _, values = _training_data(seed=5)
    booster = xgb.train({"max_depth": 3, "base_score": 3.7, "eta": 0.2, "verbosity": 0,
                         "objective": "reg:squarederror", "nthread": 1},
                        xgb.DMatrix(X, label=values), num_boost_round=25)
    learner = xgb_learner(booster)
    assert float(learner["learner_model_param"]["base_score"].strip("[]")) == pytest.approx(3.7)
    forest = xgb_forest(learner, 0)
    assert forest is not None and forest.depth == 3
    R = _rows(forest, seed=11)
    _assert_same(forest, _XGBHead(booster, 0).predict_native(R), R)


@pytest.mark.parametrize(("params", "missing"), [
    ({}, "nan"),                              # NaN seen in training: NaN takes the default side
    ({"zero_as_missing": True}, "zero"),      # zeros (and NaN) are missing
    ({"use_missing": False}, "none"),         # no missing values: NaN is 0.0
])
@pytest.mark.parametrize("n_classes", [3, 0])
def test_lightgbm_missing_value_types(params, missing, n_classes):
    import lightgbm as lgb

    X, classes, values = _training_data(seed=7)
    objective = {"objective": "multiclass", "num_class": 3} if n_classes else {"objective": "regression"}
    booster = lgb.train({"num_leaves": 8, "min_data_in_leaf": 5, "verbosity": -1, "num_threads": 1,
                         **objective, **params},
                        lgb.Dataset(X, classes if n_classes else values, params={"verbosity": -1}),
                        num_boost_round=20)
    forest = lgb_forest(parse_lgb_model(booster.model_to_string(), "test"), n_classes)
    assert forest is not None and forest.missing_zero is not None and forest.missing_nan is not None
    assert forest.missing_zero.any() == (missing == "zero")
    assert forest.missing_nan.any() == (missing == "nan")
    R = _rows(forest, seed=13)
    _assert_same(forest, _LGBHead(booster, n_classes, 1).predict_native(R), R)


def test_lightgbm_trees_of_a_single_leaf():
    import lightgbm as lgb

    X, _, values = _training_data(seed=8)
    booster = lgb.train({"objective": "regression", "min_data_in_leaf": 2000, "verbosity": -1},
                        lgb.Dataset(X, values, params={"verbosity": -1}), num_boost_round=5)
    forest = lgb_forest(parse_lgb_model(booster.model_to_string(), "test"), 0)
    assert forest is not None and forest.depth == 0  # LightGBM stops after a tree it cannot split
    R = np.random.default_rng(0).normal(size=(50, N_FEATURES))
    _assert_same(forest, _LGBHead(booster, 0, 1).predict_native(R), R)


@pytest.mark.parametrize("n_classes", [3, 0])
def test_a_deep_forest_walks_level_by_level_for_one_row(n_classes):
    X, classes, values = _training_data(seed=9)
    hp = {**DEFAULT_HYPERPARAMETERS["random_forest"], "n_estimators": 8, "max_depth": 14,
          "min_samples_leaf": 1, "max_features": 1.0}
    head = train_head("random_forest", X, classes if n_classes else values, n_classes=n_classes,
                      hyperparameters=hp, seed=2, n_jobs=1)
    forest = head.flatten()
    assert forest is not None and forest.depth > 8 and not forest.all_nodes
    R = _rows(forest, seed=17, infinite=False)
    _assert_same(forest, head.predict_native(R), R)


def test_models_it_does_not_reproduce_are_predicted_natively(monkeypatch):
    import xgboost as xgb

    X, classes, values = _training_data(seed=4)
    binary = xgb.train({"objective": "binary:logistic", "max_depth": 2, "verbosity": 0},
                       xgb.DMatrix(X, label=classes > 0), num_boost_round=5)
    head = _XGBHead(binary, 0)
    R = np.random.default_rng(1).normal(size=(3, N_FEATURES))
    np.testing.assert_array_equal(head.predict(R[:1]), binary.inplace_predict(R[:1]))
    assert head.forest is False
    monkeypatch.setattr(flat_trees_module, "MAX_FLAT_DEPTH", 1)  # deeper trees stay native
    deep = train_head("random_forest", X, values, n_classes=0, hyperparameters={
        **DEFAULT_HYPERPARAMETERS["random_forest"], "n_estimators": 3, "min_samples_leaf": 5},
        seed=1, n_jobs=1)
    assert isinstance(deep, _RFHead) and deep.flatten() is None
    np.testing.assert_array_equal(deep.predict(R[:1]), deep.predict_native(R[:1]))


# --------------------------------------------------------------------------- the model
@pytest.fixture(scope="module")
def models(trained, tmp_path_factory):
    """An OrderFlowModel of each type: as trained, and loaded back from its folder."""
    from ticker_registry import Config
    from ticker_registry.training import train_on_trades

    trades = make_trades(4000, seed=2)
    out = {"xgboost": trained[0]}
    for model_type in ("lightgbm", "random_forest"):
        out[model_type] = train_on_trades(trades, Config.from_dict({**QUICK, "model_type": model_type}))
    folder = tmp_path_factory.mktemp("flat-models")
    return {m: (r.model, OrderFlowModel.load(r.model.save(folder / m)), r.X_valid)
            for m, r in out.items()}


@pytest.mark.parametrize("model_type", ["xgboost", "lightgbm", "random_forest"])
@pytest.mark.parametrize("source", ["trained", "loaded"])
def test_order_flow_model_single_row_predictions_match_the_native_heads(models, model_type,
                                                                         source, monkeypatch):
    model = models[model_type][0 if source == "trained" else 1]
    X = models[model_type][2].iloc[:120]
    flat = pd.concat([model.predict(X.iloc[i:i + 1]) for i in range(len(X))])
    matrix = np.concatenate([model.predict_matrix(feature_matrix(X.iloc[i:i + 1]))
                             for i in range(len(X))])
    for head in model.heads_.values():
        monkeypatch.setattr(head, "flat_max_rows", 0)  # every call native
    native = pd.concat([model.predict(X.iloc[i:i + 1]) for i in range(len(X))])
    np.testing.assert_allclose(matrix, model.predict_matrix(feature_matrix(X)), rtol=0, atol=1e-6)
    numbers = native.select_dtypes("number").columns
    np.testing.assert_allclose(flat[numbers].to_numpy(), native[numbers].to_numpy(), rtol=0,
                               atol=1e-6)
    pd.testing.assert_frame_equal(flat.drop(columns=numbers), native.drop(columns=numbers))
