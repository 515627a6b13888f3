from pathlib import Path

import pytest

from ticker_registry import Config, ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_match_the_seed():
    cfg = Config()
    assert cfg.model_type == "xgboost"
    assert cfg.min_training_samples == 1000
    assert cfg.retrain_interval == 500
    assert cfg.prediction_horizon == 5
    assert cfg.sequence_length == 20
    assert cfg.large_order_threshold == "auto"  # set per ticker from its trades


def test_shipped_configs_load():
    base = load_config(ROOT / "config" / "base.yaml")
    strategy = load_config(ROOT / "config" / "strategies" / "order_flow_trading_strategy.yaml")
    assert base.model_type in ("xgboost", "lightgbm", "random_forest")
    assert strategy.symbol == "ETHUSDT"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"model_type": "xgb"}, "model_type='xgb'"),
        ({"min_training_samples": "many"}, "min_training_samples='many'"),
        ({"min_training_samples": 5}, ">= 10"),
        ({"retrain_interval": 0}, "retrain_interval=0"),
        ({"prediction_horizon": -1}, "prediction_horizon=-1"),
        ({"sequence_length": 1.5}, "sequence_length=1.5"),
        ({"large_order_threshold": 0}, "large_order_threshold=0"),
        ({"validation_fraction": 0.9}, "validation_fraction=0.9"),
        ({"auto_promote": "yes"}, "auto_promote='yes'"),
        ({"n_jobs": True}, "n_jobs=True"),
        ({"prediction_horizon": float("nan")}, "prediction_horizon=nan"),
        ({"modle_type": "xgboost"}, "unknown config key 'modle_type'"),
        ({"hyperparameters": {"xgb": {}}}, "unknown model type 'xgb'"),
        ({"hyperparameters": {"xgboost": {"depth": 3}}}, "unknown hyperparameter xgboost.depth"),
        ({"hyperparameters": {"xgboost": {"max_depth": 2.5}}}, "xgboost.max_depth=2.5"),
        ({"production_alias": "x", "staging_alias": "x"}, "different names"),
    ],
)
def test_bad_values_are_refused_with_key_and_value(data, fragment):
    with pytest.raises(ConfigError) as info:
        Config.from_dict(data)
    assert fragment in str(info.value)


def test_yaml_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model_type: xgb\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*one of: xgboost, lightgbm, random_forest"):
        load_config(path)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)
    path.write_text("model_type: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")


def test_replace_validates_and_round_trips():
    cfg = Config().replace(model_type="lightgbm", hyperparameters={"lightgbm": {"num_leaves": 7}})
    assert cfg.model_hyperparameters()["num_leaves"] == 7
    assert Config.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError):
        cfg.replace(n_jobs=0)


def test_config_is_truly_immutable_and_hyperparameters_are_bounded():
    from ticker_registry.config import DEFAULT_HYPERPARAMETERS, HYPERPARAMETER_BOUNDS

    assert {k: set(v) for k, v in DEFAULT_HYPERPARAMETERS.items()} == {
        k: set(v) for k, v in HYPERPARAMETER_BOUNDS.items()}
    for model_type, params in DEFAULT_HYPERPARAMETERS.items():  # defaults lie inside the bounds
        Config(model_type=model_type, hyperparameters={model_type: dict(params)})
    cfg = Config(hyperparameters={"xgboost": {"max_depth": 3}})
    with pytest.raises(TypeError):
        cfg.hyperparameters["xgboost"]["max_depth"] = 9  # type: ignore[index]
    with pytest.raises(TypeError):
        cfg.hyperparameters["lightgbm"] = {}  # type: ignore[index]
    assert Config.from_dict(cfg.to_dict()) == cfg and cfg.to_dict()["hyperparameters"] == {
        "xgboost": {"max_depth": 3}}
    for bad, match in (({"subsample": 2.0}, "subsample=2.0.*<= 1"),
                       ({"n_estimators": 100_000_000}, "n_estimators=100000000.*<= 5000"),
                       ({"learning_rate": 0}, "learning_rate=0.*> 0")):
        with pytest.raises(ConfigError, match=match):
            Config(hyperparameters={"xgboost": bad})


@pytest.mark.parametrize("text, match", [
    ("a: &x [1, 2]\nb: *x\n", "anchors"),
    ("n_jobs: 1\nn_jobs: 2\n", "duplicate key 'n_jobs'"),
    ("hyperparameters:\n  xgboost: {max_depth: 2, max_depth: 3}\n", "duplicate key 'max_depth'"),
])
def test_yaml_without_anchors_or_duplicate_keys(tmp_path, text, match):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(path)


def test_an_oversized_config_file_is_refused(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * (1 << 20) + "\n")
    with pytest.raises(ConfigError, match="at most 1,048,576"):
        load_config(path)
