"""Per-ticker tuning: reproducible with a seed, blind to the final block, saved in the registry
and used by later trainings, and its CLI command."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest
from click.testing import CliRunner

from ticker_registry import Config, SyncTickerModelManager, build_training_set, tuned, tuning
from ticker_registry.cli import cli
from ticker_registry.cli.schemas import columns, schema
from ticker_registry.hyperparameters import HYPERPARAMETER_BOUNDS

from conftest import QUICK, make_trades

#: Tiny forests, so a trial takes a fraction of a second (QUICK's values are inside).
SMALL_SPACE = {
    "xgboost": {"n_estimators": (int, 5, 25, False), "max_depth": (int, 2, 6, False),
                "learning_rate": (float, 0.02, 0.3, True),
                "min_child_weight": (float, 1.0, 300.0, True)},
    "lightgbm": {"n_estimators": (int, 5, 25, False), "num_leaves": (int, 2, 16, True),
                 "min_child_samples": (int, 5, 300, True)},
}
CLEAN_ENV = {"MLFLOW_TRACKING_URI": None, "TICKER_REGISTRY_CONFIG": None,
             "TICKER_REGISTRY_MODELS_DIR": None, "COLUMNS": "100"}


@pytest.fixture(autouse=True)
def _small_space(monkeypatch):
    for model_type, space in SMALL_SPACE.items():
        monkeypatch.setitem(tuning.SEARCH_SPACE, model_type, space)


@pytest.fixture(scope="module")
def training_set():
    return build_training_set(make_trades(3000, seed=1), Config.from_dict(QUICK))


def _trials(result):
    return [(r["trial"], r["state"], r.get("score"), r["params"]) for r in result.trials]


def test_the_search_space_stays_inside_the_bounds():
    for model_type, space in tuning.SEARCH_SPACE.items():
        for name, (_kind, low, high, _log) in space.items():
            _, lowest, highest, low_open = HYPERPARAMETER_BOUNDS[model_type][name]
            assert (low > lowest if low_open else low >= lowest) and high <= highest


def test_the_same_seed_gives_the_same_trials_and_best_set(training_set):
    X, y = training_set
    first = tuning.tune_hyperparameters(X, y, QUICK, n_trials=4, seed=11)
    again = tuning.tune_hyperparameters(X, y, QUICK, n_trials=4, seed=11)
    assert _trials(first) == _trials(again) and len(first.trials) == 4
    assert first.best_params == again.best_params and first.best_score == again.best_score
    assert first.final == again.final
    assert first.trials[0]["params"] == {k: v for k, v in Config.from_dict(QUICK)
                                         .model_hyperparameters().items()
                                         if k in SMALL_SPACE["xgboost"]}  # the config first
    other = tuning.tune_hyperparameters(X, y, QUICK, n_trials=4, seed=12)
    assert [r["params"] for r in other.trials[1:]] != [r["params"] for r in first.trials[1:]]


def test_the_study_never_reads_the_final_block(training_set):
    """Data that differ only from the purge before the final block on give the same study;
    only the final-block scores, computed once after it, change."""
    X, y = training_set
    cfg = Config.from_dict(QUICK)
    event_ns = X.index.as_unit("ns").asi8
    end, start = tuning.split_final_block(event_ns, int(cfg.prediction_horizon * 60e9),
                                          cfg.cv_folds)
    assert 0 < end <= start < len(X) and len(X) - start == round(len(X) / (cfg.cv_folds + 1))
    X2, y2 = X.copy(), y.copy()
    rng = np.random.default_rng(0)
    X2.iloc[end:] = X.iloc[end:].to_numpy()[rng.permutation(len(X) - end)]
    y2.loc[y2.index[end:], "impact"] = 1000.0 * rng.standard_normal(len(X) - end)
    y2.loc[y2.index[end:], "flow_type"] = y["flow_type"].iloc[0]
    clean = tuning.tune_hyperparameters(X, y, cfg, n_trials=4, seed=5)
    poisoned = tuning.tune_hyperparameters(X2, y2, cfg, n_trials=4, seed=5)
    assert _trials(clean) == _trials(poisoned)
    assert clean.best_params == poisoned.best_params
    assert clean.final != poisoned.final  # the final block is read, once, after the study
    assert clean.n_tuning_rows == end and clean.n_final_rows == len(X) - start


def test_bad_arguments_are_one_clear_error(training_set):
    from ticker_registry.exceptions import InvalidArgumentError

    X, y = training_set
    with pytest.raises(InvalidArgumentError, match="use one of"):
        tuning.tune_hyperparameters(X, y, QUICK, n_trials=2, model_type="xgb")
    with pytest.raises(InvalidArgumentError, match="positive"):
        tuning.tune_hyperparameters(X, y, QUICK, n_trials=0)


def test_the_best_set_is_saved_and_used_by_later_trainings(tmp_path):
    from mlflow import MlflowClient

    trades = make_trades(3000, seed=2)
    with SyncTickerModelManager(QUICK, tmp_path, auto_retrain=False) as manager:
        result = manager.tune("ethusdt", trades, n_trials=3, seed=3)  # before any training
        tags = manager.registry.model("ETHUSDT").tags
        assert tags["tuned.model_type"] == "xgboost" and tags["tuned.seed"] == "3"
        assert tags["tuned.trials"].endswith("/3") and tags["tuned.at"]
        for name, value in result.best_params.items():
            assert float(tags[f"tuned.{name}"]) == value
        client = MlflowClient(manager.tracking_uri)
        run = client.get_run(tags["tuned.run"])
        assert run.info.run_name == "tune-ETHUSDT" and run.info.status == "FINISHED"
        assert [a.path for a in client.list_artifacts(run.info.run_id, "tuning")] == [
            "tuning/trials.csv"]
        assert tags["tuned.adopted"] == str(result.adopted).lower()
        outcome = manager.train("ETHUSDT", trades)
        params = client.get_run(outcome.version.run_id).data.params
        used = result.best_params if result.adopted else result.default_params
        for name, value in used.items():
            assert float(params[f"hp.{name}"]) == value, name
        # tuned again as another family: its set replaces the first, and trainings follow
        again = manager.tune("ETHUSDT", trades, n_trials=2, model_type="lightgbm", seed=3)
        tags = manager.registry.model("ETHUSDT").tags
        assert tags["tuned.model_type"] == "lightgbm" and "tuned.max_depth" not in tags
        assert manager._ticker_config("ETHUSDT").model_type == (
            "lightgbm" if again.adopted else "xgboost")


def test_a_tuned_set_worse_on_the_final_block_is_recorded_but_not_used():
    cfg = Config(**QUICK)

    def result(tuned: float, default: float) -> tuning.TuningResult:
        return tuning.TuningResult(
            model_type="xgboost", seed=0, best_params={"max_depth": 3, "learning_rate": 0.2},
            best_score=0.3, default_params={"max_depth": 4, "learning_rate": 0.1}, trials=[],
            best_fold_scores=[], final={"tuned": {"score": tuned}, "default": {"score": default}},
            n_tuning_rows=10, n_final_rows=2, final_start="2024-01-01T00:00:00Z")

    worse = tuned.tuned_tags(result(0.09, 0.10), "2026-11-30T00:00:00Z")
    assert worse["tuned.adopted"] == "false" and worse["tuned.max_depth"] == "3"
    assert tuned.apply_tuned(cfg, worse) is cfg
    same = tuned.tuned_tags(result(0.10, 0.10), "2026-11-30T00:00:00Z")
    assert same["tuned.adopted"] == "true"
    used = tuned.apply_tuned(cfg, same).model_hyperparameters()
    assert used["max_depth"] == 3 and used["learning_rate"] == 0.2


def test_the_cli_prints_trials_and_the_final_block(tmp_path):
    trades = tmp_path / "ETHUSDT-trades.csv"
    make_trades(3000, seed=4).to_csv(trades, index=False)
    base = ["--models-dir", str(tmp_path / "store"), "tune", "ETHUSDT", "--trades", str(trades),
            "--trials", "3", "--seed", "2"]
    result = CliRunner().invoke(cli, [*base, "--format", "json"], env=CLEAN_ENV)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    jsonschema.validate(rows, schema("tune"))
    assert all(list(row) == columns("tune") for row in rows)
    assert [r["kind"] for r in rows] == ["trial"] * 3 + ["default", "tuned"]
    assert sum(bool(r["best"]) for r in rows) == 1
    table = CliRunner().invoke(cli, base, env=CLEAN_ENV)
    assert table.exit_code == 0 and "final block" in table.stdout and "tuned" in table.stdout
    assert "kept the config's hyperparameters" in table.stdout or "adopted" in table.stdout
    # the spelling, --ticker T, reads the same
    spelled = CliRunner().invoke(cli, [*base[:3], "--ticker", "ethusdt", *base[4:], "--format",
                                       "json"], env=CLEAN_ENV)
    assert spelled.exit_code == 0, spelled.output
    assert json.loads(spelled.stdout)[0]["ticker"] == "ETHUSDT"


@pytest.mark.parametrize(("args", "code", "text"), [
    (["tune", "ETHUSDT", "--trades", "/nonexistent/trades.csv"], 1, "nonexistent"),
    (["tune", "ETHUSDT", "--trades", "TINY", "--trials", "2"], 1, "trades"),
    (["tune", "ETHUSDT", "--trades", "TINY", "--trials", "0"], 2, "--trials"),
])
def test_bad_input_is_one_line(tmp_path, args, code, text):
    tiny = tmp_path / "tiny.csv"
    make_trades(3000, seed=4).iloc[:40].to_csv(tiny, index=False)
    args = [str(tiny) if a == "TINY" else a for a in args]
    result = CliRunner().invoke(cli, ["--models-dir", str(tmp_path / "store"), *args],
                                env=CLEAN_ENV)
    assert result.exit_code == code, result.output
    assert text in result.output and "Traceback" not in result.output
    if code == 1:
        assert result.output.strip().count("\n") == 0 and result.output.startswith("Error: ")


def test_the_searchs_best_replaces_the_config_only_beyond_fold_to_fold_noise():
    from types import SimpleNamespace

    def trial(number: int, served: list[float]) -> SimpleNamespace:
        return SimpleNamespace(number=number, user_attrs={"fold_served": served},
                               params={"max_depth": number}, value=sum(served))

    base = trial(0, [0.10, 0.10, 0.10, 0.10, 0.10])
    noisy = trial(7, [0.11, 0.09, 0.12, 0.095, 0.105])
    chosen, evidence = tuning._choose(base, noisy, 0.05)
    assert chosen is base and evidence["gain"] == pytest.approx(0.004)
    assert evidence["t"] < evidence["needed"] == pytest.approx(2.1318, abs=1e-3)
    clear = trial(9, [0.15, 0.16, 0.14, 0.15, 0.17])
    chosen, evidence = tuning._choose(base, clear, 0.05)
    assert chosen is clear and evidence["t"] > evidence["needed"]
    assert tuning._choose(base, base, 0.05)[0] is base
