"""build_training_set and compute_live_features take a config in any form the library accepts."""

from pathlib import Path

import pandas as pd
import pytest
import yaml

import ticker_registry
from ticker_registry import (
    Config,
    ConfigError,
    FeatureSpec,
    TrainingDataError,
    build_training_set,
    compute_live_features,
    training,
)

from conftest import QUICK, make_trades


@pytest.fixture(scope="module")
def trades() -> pd.DataFrame:
    return make_trades(1500, seed=3)


@pytest.fixture(scope="module")
def yaml_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "quick.yaml"
    path.write_text(yaml.safe_dump(QUICK))
    return path


def _forms(yaml_path: Path) -> dict:
    cfg = Config.from_dict(QUICK)  # a numeric large_order_threshold: the spec needs no trades
    return {"Config": cfg, "dict": dict(QUICK), "Path": yaml_path, "str": str(yaml_path),
            "FeatureSpec": FeatureSpec.from_config(cfg)}


def test_the_public_names_are_the_config_accepting_forms():
    assert ticker_registry.build_training_set is training.build_training_set
    assert ticker_registry.compute_live_features is training.compute_live_features


def test_build_training_set_gives_the_same_result_for_every_form(trades, yaml_path):
    results = {name: build_training_set(trades, config) for name, config in _forms(yaml_path).items()}
    X0, y0 = results.pop("Config")
    for name, (X, y) in results.items():
        pd.testing.assert_frame_equal(X, X0, obj=name)
        pd.testing.assert_frame_equal(y, y0, obj=name)
        assert X.attrs["feature_spec"] == X0.attrs["feature_spec"]
    X_none, y_none = build_training_set(trades, None)  # the defaults: an 'auto' threshold
    X_default, y_default = build_training_set(trades, Config())
    pd.testing.assert_frame_equal(X_none, X_default)
    pd.testing.assert_frame_equal(y_none, y_default)


def test_compute_live_features_gives_the_same_result_for_every_form(trades, yaml_path):
    window = trades.iloc[-QUICK["sequence_length"]:]
    events = [{"timestamp": row.timestamp, "price": row.price, "quantity": row.quantity,
               "side": int(row.side)} for row in window.itertuples()]
    market = {"bid": float(window["price"].iloc[-1]) - 0.01, "ask": float(window["price"].iloc[-1]) + 0.01}
    results = {name: compute_live_features(events, market, config)
               for name, config in _forms(yaml_path).items()}
    expected = results.pop("Config")
    assert all(features == expected for features in results.values()), results
    # None means the defaults, whose 'auto' threshold needs a model's FeatureSpec: the same
    # TrainingDataError as Config() gives, not an AttributeError
    with pytest.raises(TrainingDataError) as none_error:
        compute_live_features(events, market, None)
    with pytest.raises(TrainingDataError) as default_error:
        compute_live_features(events, market, Config())
    assert str(none_error.value) == str(default_error.value)


@pytest.mark.parametrize("bad", [3, 2.5, ["model_type", "xgboost"], b"quick.yaml", object()],
                         ids=["int", "float", "list", "bytes", "object"])
def test_a_wrong_type_of_config_is_a_config_error(trades, bad):
    events = trades.iloc[-QUICK["sequence_length"]:]
    for call in (lambda: build_training_set(trades, bad), lambda: compute_live_features(events, None, bad)):
        with pytest.raises(ConfigError, match=r"\(type \w+\); pass the FeatureSpec of a model, a Config, "
                                              r"a mapping of config keys") as info:
            call()
        assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("bad, fragment", [
    ({"sequence_length": 1}, "sequence_length=1 in <dict>"),
    ({"seq_len": 10}, "unknown config key 'seq_len'"),
    ({"hyperparameters": {"xgboost": {"subsample": 2.0}}}, "xgboost.subsample=2.0"),
])
def test_an_invalid_config_in_any_form_is_a_config_error(trades, tmp_path, bad, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    events = trades.iloc[-10:]
    for config, where in ((bad, "<dict>"), (path, str(path)), (str(path), str(path))):
        for call in (lambda: build_training_set(trades, config),  # noqa: B023 - called at once
                     lambda: compute_live_features(events, None, config)):  # noqa: B023
            with pytest.raises(ConfigError, match="in ") as info:
                call()
            assert fragment.replace("<dict>", where) in str(info.value)


def test_a_missing_yaml_file_is_a_config_error(trades, tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        build_training_set(trades, tmp_path / "missing.yaml")
