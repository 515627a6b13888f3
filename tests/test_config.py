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


def test_no_pydantic_error_escapes_any_way_of_building_a_config():
    from pydantic import ValidationError

    cfg = Config()
    for build in (lambda: Config(n_jobs=0), lambda: Config.from_dict({"n_jobs": 0}),
                  lambda: cfg.replace(n_jobs=0), lambda: cfg.model_copy(update={"n_jobs": 0}),
                  lambda: Config.model_validate({"n_jobs": 0}), lambda: load_config({"n_jobs": 0})):
        with pytest.raises(ConfigError, match=r"n_jobs=0 .*must be an integer >= 1 and <= 256") as info:
            build()
        assert not isinstance(info.value, ValidationError)
        assert info.value.__suppress_context__  # the traceback shows ours, not pydantic's


def test_one_error_names_the_first_problem_and_lists_the_others():
    with pytest.raises(ConfigError) as info:
        Config.from_dict({"modle_type": "x", "n_jobs": 0, "cv_folds": 99}, source="c.yaml")
    text = str(info.value)
    assert text.startswith("unknown config key 'modle_type' in c.yaml; known keys are: ")
    assert "also invalid: " in text and "n_jobs" in text and "cv_folds" in text


def test_a_huge_value_gives_a_short_message():
    with pytest.raises(ConfigError) as info:
        Config.from_dict({"namespace": "x" * 100_000})
    assert len(str(info.value)) < 500 and "namespace='xxx" in str(info.value)
    assert "..." in str(info.value)


def test_frozen_like_a_dataclass_and_whole_numbers_stay_whole():
    import dataclasses

    cfg = Config(prediction_horizon=5, flow_band=0.25)
    with pytest.raises(dataclasses.FrozenInstanceError, match="replace"):
        cfg.n_jobs = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del cfg.n_jobs
    assert cfg.to_dict()["prediction_horizon"] == 5
    assert type(cfg.to_dict()["prediction_horizon"]) is int  # fingerprints read 5, not 5.0
    assert cfg.model_copy(update={"n_jobs": 3}) == cfg.replace(n_jobs=3)


@pytest.mark.parametrize("data, fragment", [
    ({"xgboost": {"subsample": 2.0}}, "xgboost.subsample=2.0 in {src}; it must be a number > 0 and <= 1"),
    ({"xgboost": {"n_estimators": 100_000_000}}, "xgboost.n_estimators=100000000 in {src}; it must be "
                                                 "an integer >= 1 and <= 5000"),
    ({"lightgbm": {"num_leaves": "7"}}, "lightgbm.num_leaves='7' in {src}; it must be an integer"),
    ({"random_forest": {"trees": 5}}, "unknown hyperparameter random_forest.trees in {src}; known for "
                                      "random_forest: max_depth, max_features, min_samples_leaf, "
                                      "n_estimators"),
    ({"xgboost": [1]}, "hyperparameters.xgboost in {src} must be a mapping"),
])
def test_hyperparameters_refused_at_config_time_with_key_value_and_range(tmp_path, data, fragment):
    import yaml

    path = tmp_path / "hp.yaml"
    path.write_text(yaml.safe_dump({"hyperparameters": data}))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert fragment.format(src=path) in str(info.value)
    with pytest.raises(ConfigError) as info:
        Config(hyperparameters=data)
    assert fragment.format(src="Config(...)") in str(info.value)


def test_load_config_forms(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model_type: lightgbm\nhyperparameters:\n  lightgbm: {num_leaves: 8}\n")
    cfg = load_config(path)
    assert load_config(str(path)) == cfg == load_config(cfg) == load_config(cfg.to_dict())
    assert load_config(cfg) is cfg
    assert load_config(None) == Config() == load_config({})
    path.write_text("")
    assert load_config(path) == Config()
    for bad in (3, 2.5, [("n_jobs", 1)], b"c.yaml", object()):
        with pytest.raises(ConfigError, match=r"\(type \w+\); pass a Config, a mapping of config keys "
                                              r"\(a dict\), the path of a YAML config file \(str or "
                                              r"Path\), or None for the defaults"):
            load_config(bad)  # type: ignore[arg-type]
