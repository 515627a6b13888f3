"""Transfer to a new ticker: every strategy trains on the new ticker's data and is judged there.

Real embedded stores (SQLite under tmp_path), synthetic trades (the real-data comparison of
the strategies is ``python -m benchmarks.quality --only transfer``).
"""

from __future__ import annotations

import numpy as np
import pytest

from ticker_registry import SyncTickerModelManager, build_training_set, views
from ticker_registry.evaluation import HEADS
from ticker_registry.exceptions import InvalidArgumentError, ModelFormatError
from ticker_registry.heads import train_head
from ticker_registry.model import OrderFlowModel
from ticker_registry.records import TrainingLineage
from ticker_registry.transfer import POOL_ROWS, TemplateRows, pooled_rows

from conftest import QUICK, make_trades


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A manager whose ADAUSDT is in production (the template), and SOLUSDT's own trades."""
    folder = tmp_path_factory.mktemp("transfer")
    manager = SyncTickerModelManager({**QUICK, "refresh_interval": 0}, folder,
                                     auto_retrain=False)
    ada = make_trades(6000, seed=4, ticker="ADAUSDT")
    manager.train("ADAUSDT", trades=ada)
    assert manager.registry.resolve("ADAUSDT").version == 1
    yield manager, ada, make_trades(5000, seed=11, ticker="SOLUSDT")
    manager.close()


@pytest.mark.parametrize("strategy", ["hyperparameters", "warm_start", "pooled"])
def test_a_template_version_is_trained_and_judged_on_the_new_tickers_data(store, strategy):
    manager, ada, sol = store
    ticker = f"S{strategy[:3].upper()}USDT"
    extra = {"template_trades": ada} if strategy == "pooled" else {}
    outcome = manager.create_from_template(ticker, "ADAUSDT", sol, strategy=strategy, **extra)
    tags = outcome.version.tags
    assert tags["lineage.source"] == "template" and tags["lineage.evaluated_on"] == ticker
    assert tags["lineage.template_ticker"] == "ADAUSDT" and tags["lineage.template_version"] == "1"
    assert tags["lineage.transfer_strategy"] == strategy
    # both synthetic markets start on the same day: the template saw later trades
    assert tags["lineage.template_overlaps"] == "true"
    # its metrics are a walk-forward on the new ticker's rows, not the template's record
    X, _y = build_training_set(sol, manager.config)
    assert int(tags["lineage.n_samples"]) == len(X)
    template = manager.registry.get_version("ADAUSDT", 1)
    assert tags["metric.n_train"] == repr(float(len(X)))
    assert tags["metric.flow_type_logloss"] != template.tags["metric.flow_type_logloss"]
    # gated like any candidate: its gate tags are written, and a head it serves by baseline
    # says so
    assert tags["gate.decision"] in ("production", "staging")
    for head in HEADS:
        assert tags[f"serving.{head}"] in ("model", "baseline")
    # the same call again finds the version (the template is part of the idempotency key)
    again = manager.create_from_template(ticker, "ADAUSDT", sol, strategy=strategy, **extra)
    assert not again.created and again.version.version == outcome.version.version


def test_warm_start_continues_the_templates_trees_and_leaves_them_alone(store):
    manager, _ada, sol = store
    template = manager.registry.load_model("ADAUSDT")
    rounds = {h: template.heads_[h].booster.num_boosted_rounds() for h in HEADS}
    outcome = manager.create_from_template("WARMUSDT", "ADAUSDT", sol, strategy="warm_start")
    new = manager.registry.load_model("WARMUSDT", outcome.version.version)
    n_estimators = manager.config.model_hyperparameters()["n_estimators"]
    warm = outcome.version.tags["lineage.warm_heads"].split(",")
    assert warm[:2] == ["flow_type", "impact"]  # time_to_execution: only at a similar scale
    for head in HEADS:
        added = rounds[head] if head in warm else 0
        assert new.heads_[head].booster.num_boosted_rounds() == added + n_estimators
        assert template.heads_[head].booster.num_boosted_rounds() == rounds[head]
    # a warm-started head predicts the same through its flat trees and natively
    X, _ = build_training_set(sol, manager.config)
    rows = np.ascontiguousarray(X.to_numpy(np.float64)[:3])
    for head in HEADS:
        h = new.heads_[head]
        np.testing.assert_allclose(h.predict(rows[:1]), h.predict_native(rows[:1]), atol=1e-6)


def test_a_random_forest_template_warm_starts_with_its_hyperparameters_only(tmp_path):
    manager = SyncTickerModelManager({**QUICK, "model_type": "random_forest",
                                      "refresh_interval": 0}, tmp_path, auto_retrain=False)
    with manager:
        manager.train("ADAUSDT", trades=make_trades(4000, seed=4, ticker="ADAUSDT"))
        outcome = manager.create_from_template("SOLUSDT", "ADAUSDT",
                                               make_trades(4000, seed=11, ticker="SOLUSDT"),
                                               strategy="warm_start")
        assert outcome.version.tags["lineage.transfer_strategy"] == "hyperparameters"


def test_refused_template_calls_write_nothing(store):
    manager, _ada, sol = store
    before = [(v.ticker, v.version) for t in ("ADAUSDT",)
              for v in manager.registry.list_versions(t)]
    with pytest.raises(InvalidArgumentError, match="needs the template tickers' rows"):
        manager.create_from_template("NOPEUSDT", "ADAUSDT", sol, strategy="pooled")
    with pytest.raises(InvalidArgumentError, match="unknown transfer strategy 'copy'"):
        manager.create_from_template("NOPEUSDT", "ADAUSDT", sol, strategy="copy")
    assert [(v.ticker, v.version) for v in manager.registry.list_versions("ADAUSDT")] == before
    assert "NOPEUSDT" not in {r["ticker"] for r in views.status(manager.registry)}


def test_warm_start_refuses_a_head_of_another_family():
    x = np.random.default_rng(0).normal(size=(200, 3))
    y = x[:, 0] + np.random.default_rng(1).normal(size=200)
    hp = {"n_estimators": 5, "max_depth": 2, "min_samples_leaf": 5, "max_features": 1.0}
    forest = train_head("random_forest", x, y, n_classes=0, hyperparameters=hp, seed=0, n_jobs=1)
    with pytest.raises(ModelFormatError, match="same family"):
        train_head("xgboost", x, y, n_classes=0, seed=0, n_jobs=1, init=forest,
                   hyperparameters={"n_estimators": 5, "max_depth": 2, "learning_rate": 0.1,
                                    "subsample": 1.0, "colsample_bytree": 1.0,
                                    "min_child_weight": 1.0, "reg_lambda": 1.0})


def test_pooled_rows_are_moved_into_the_new_tickers_units_and_never_from_its_future():
    rng = np.random.default_rng(0)
    x_new = rng.normal(10.0, 2.0, size=(500, 2))
    y_new = rng.gamma(2.0, 3.0, size=500)  # time_to_execution: positive
    ev_new = np.arange(500, dtype=np.int64) * 10 + 5_000
    n_src = POOL_ROWS + 1000
    x_src = rng.normal(-3.0, 0.5, size=(n_src, 2))
    y_src = rng.gamma(2.0, 30.0, size=n_src)
    ev_src = np.arange(n_src, dtype=np.int64) * 3  # some after the newest new row (9,995)
    src = TemplateRows("OLDUSDT", x_src, {"time_to_execution": y_src}, ev_src)
    x, y = pooled_rows("time_to_execution", x_new, y_new, ev_new, [src])
    usable = np.flatnonzero(ev_src <= ev_new.max())[-POOL_ROWS:]
    assert len(x) == 500 + usable.size and usable.size < n_src
    moved = x[500:]
    np.testing.assert_allclose(moved.mean(axis=0), x_new.mean(axis=0), atol=1e-9)
    np.testing.assert_allclose(moved.std(axis=0), x_new.std(axis=0), rtol=1e-9)
    assert (y[500:] > 0).all()
    assert np.median(y[500:]) == pytest.approx(np.median(y_new))


def test_best_ranks_by_served_skill_not_raw_accuracy(tmp_path):
    manager = SyncTickerModelManager({**QUICK, "refresh_interval": 0}, tmp_path,
                                     auto_retrain=False)
    with manager:
        model = OrderFlowModel(QUICK).fit(*build_training_set(make_trades(3000, seed=2),
                                                              manager.config))
        lineage = TrainingLineage(n_samples=100)
        for ticker, accuracy, skill in (("ACCUSDT", 0.99, 0.01), ("SKLUSDT", 0.40, 0.30)):
            model.metrics_ = {**model.metrics_, "flow_type_accuracy": accuracy,
                              **{f"skill_{h}": skill for h in HEADS},
                              **{f"has_skill_{h}": 1.0 for h in HEADS}}
            info, _ = manager.registry.register(ticker, model, lineage=lineage,
                                                idempotency_key=f"k-{ticker}")
            manager.promote(ticker, info.version)
        assert [r["ticker"] for r in views.best(manager.registry)] == ["SKLUSDT", "ACCUSDT"]
        by_accuracy = views.best(manager.registry, "flow_type_accuracy")
        assert [r["ticker"] for r in by_accuracy] == ["ACCUSDT", "SKLUSDT"]


def _xy(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    return x, x[:, 0] + rng.normal(size=n)


def test_lightgbm_warm_start_adds_rounds_to_a_copy():
    x, y = _xy()
    hp = {"n_estimators": 7, "num_leaves": 4, "learning_rate": 0.1, "min_child_samples": 5,
          "reg_lambda": 1.0, "subsample": 1.0, "colsample_bytree": 1.0}
    first = train_head("lightgbm", x, y, n_classes=0, hyperparameters=hp, seed=0, n_jobs=1)
    more = train_head("lightgbm", x, y, n_classes=0, hyperparameters=hp, seed=0, n_jobs=1,
                      init=first)
    assert more.booster.current_iteration() == 14 and first.booster.current_iteration() == 7


def test_a_warm_start_chain_stays_within_the_trees_a_model_may_have():
    from ticker_registry import Config
    from ticker_registry.transfer import Template, transfer_config, transfer_trainer

    x, y = _xy()
    small = {"n_estimators": 20, "max_depth": 2, "learning_rate": 0.1, "subsample": 1.0,
             "colsample_bytree": 1.0, "min_child_weight": 1.0, "reg_lambda": 1.0}
    heads = {h: train_head("xgboost", x, y, n_classes=0, hyperparameters=small, seed=0,
                           n_jobs=1) for h in HEADS}
    template = Template("OLDUSDT", 3, "xgboost", {**small, "n_estimators": 4990}, heads)
    cfg = transfer_config(Config(), "warm_start", template)
    with pytest.raises(InvalidArgumentError, match="20 boosting rounds; warm start would add 4990"):
        transfer_trainer(cfg, "warm_start", template)


def test_time_to_execution_continues_the_template_only_at_a_similar_scale():
    from ticker_registry.transfer import SCALE_RATIO, Template, continues

    template = Template("OLDUSDT", 1, "xgboost", {}, time_median=10.0)
    assert continues("flow_type", np.array([0, 1, 2]), template)
    assert continues("impact", np.array([-500.0, 3.0, 900.0]), template)
    assert continues("time_to_execution", np.full(5, 10.0 * SCALE_RATIO), template)
    assert continues("time_to_execution", np.full(5, 10.0 / SCALE_RATIO), template)
    assert not continues("time_to_execution", np.full(5, 10.0 * SCALE_RATIO * 1.01), template)
    assert not continues("time_to_execution", np.full(5, 10.0 / SCALE_RATIO / 1.01), template)
    unknown = Template("OLDUSDT", 1, "xgboost", {})
    assert not continues("time_to_execution", np.full(5, 10.0), unknown)
