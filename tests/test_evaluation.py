"""Purged walk-forward, baselines, significance and the gate's agreement with compare."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ticker_registry import (
    Config,
    OrderFlowModel,
    SampleValidationError,
    TrainingDataError,
    build_training_set,
)
from ticker_registry.evaluation import (
    compare_losses,
    fit_baselines,
    gate_verdict,
    head_losses,
    judge_head,
    purged_folds,
)

from conftest import QUICK, make_trades


@settings(max_examples=80, deadline=None)
@given(gaps=st.lists(st.integers(min_value=0, max_value=5_000), min_size=40, max_size=400),
       horizon=st.integers(min_value=0, max_value=20_000),
       embargo=st.integers(min_value=0, max_value=5_000),
       n_folds=st.integers(min_value=1, max_value=8))
def test_no_training_label_window_reaches_its_test_block(gaps, horizon, embargo, n_folds):
    t = np.cumsum(np.asarray(gaps, dtype=np.int64)) + 1_000_000
    folds = purged_folds(t, horizon, n_folds, embargo_ns=embargo, min_train=1)
    for fold in folds:
        assert fold.train.size and fold.test.size
        first_test = t[fold.test[0]]
        assert np.all(t[fold.train] + horizon + embargo < first_test)
        assert fold.train.max() < fold.test.min()  # expanding window: only the past
        # nothing that could be kept was dropped: the first purged row's window reaches the test
        if fold.purged:
            assert t[fold.train.size] + horizon + embargo >= first_test
    tests = [f.test for f in folds]
    for a, b in zip(tests, tests[1:]):
        assert a[-1] < b[0]


def test_baselines_and_losses():
    base = fit_baselines("flow_type", np.array([0, 0, 2, 2, 2]))
    assert base.values["prior"] == pytest.approx([3 / 8, 1 / 8, 4 / 8])
    assert base.values["majority"] == 2
    tte = fit_baselines("time_to_execution", np.array([1.0, 2.0, 10.0]))
    assert tte.values == {"mean": pytest.approx(13 / 3), "median": 2.0}
    assert "zero" in fit_baselines("impact", np.array([1.0, -1.0])).values
    losses = head_losses("flow_type", np.array([2]), np.array([[0.25, 0.25, 0.5]]))
    assert losses[0] == pytest.approx(np.log(2))


def _judge(y, model_pred, base_pred, seed=0):
    t = np.arange(y.size, dtype=np.int64) * 1_000_000_000
    return judge_head("impact", y=y, model_pred=model_pred, baseline_preds={"zero": base_pred},
                      event_ns=t, fold_of_row=np.repeat(np.arange(5), -(-y.size // 5))[: y.size],
                      horizon_ns=5_000_000_000, alpha=0.01)


def test_a_real_signal_has_skill_and_noise_has_not():
    rng = np.random.default_rng(0)
    signal = rng.normal(size=5000)
    y = signal + rng.normal(scale=0.5, size=5000)
    good = _judge(y, signal, np.zeros(5000))
    assert good.has_skill and good.source == "model" and good.folds_won == 5
    assert good.skill_low > 0.5
    noise = _judge(y, rng.normal(scale=0.1, size=5000), np.zeros(5000))
    assert not noise.has_skill and noise.source == "baseline"


def test_shuffled_labels_never_show_skill_on_a_small_synthetic_set():
    cfg = Config.from_dict(QUICK)
    X, y = build_training_set(make_trades(6000, seed=11), cfg)
    rng = np.random.default_rng(7)
    declared = 0
    for _ in range(3):
        shuffled = y.iloc[rng.permutation(len(y))].set_axis(y.index)
        model = OrderFlowModel(cfg).fit(X, shuffled)
        declared += sum(e.has_skill for e in model.evaluation_.values())
        assert all(s == "baseline" for s in model.serving_.values())
    assert declared == 0


def test_compare_losses_is_a_paired_test():
    rng = np.random.default_rng(1)
    y = rng.normal(size=3000)
    t = np.arange(y.size, dtype=np.int64) * 1_000_000_000
    better = compare_losses("impact", y, y * 0.5, np.zeros_like(y), t, 5_000_000_000, 0.01)
    assert better.verdict == "better" and better.improvement > 0
    worse = compare_losses("impact", y, np.zeros_like(y), y * 0.5, t, 5_000_000_000, 0.01)
    assert worse.verdict == "worse"
    same = compare_losses("impact", y, np.zeros_like(y), np.zeros_like(y), t, 5_000_000_000, 0.01)
    assert same.verdict == "same"
    assert gate_verdict([better, same])[0] and not gate_verdict([better, worse])[0]
    assert not gate_verdict([same, same])[0]
    assert "impact better" in gate_verdict([better, same])[1]


def test_fit_without_event_times_is_refused(quick_config):
    X, y = build_training_set(make_trades(3000, seed=2), quick_config)
    with pytest.raises(TrainingDataError, match="not by event time"):
        OrderFlowModel(quick_config).fit(X.reset_index(drop=True), y.reset_index(drop=True))


def test_event_order_is_restored_before_the_walk_forward(quick_config):
    X, y = build_training_set(make_trades(3000, seed=2), quick_config)
    order = np.random.default_rng(3).permutation(len(X))
    a = OrderFlowModel(quick_config).fit(X, y)
    b = OrderFlowModel(quick_config).fit(X.iloc[order], y.iloc[order])
    # the same folds and holdout (rows at one instant may be trained in another order)
    np.testing.assert_array_equal(a.gate_holdout_.event_ns, b.gate_holdout_.event_ns)
    assert a.metrics_["n_valid"] == b.metrics_["n_valid"]
    assert [e.n_folds for e in a.evaluation_.values()] == [e.n_folds for e in b.evaluation_.values()]


def test_stored_samples_carry_their_event_time(tmp_path, quick_config):
    from ticker_registry import SampleStore, SyncTickerModelManager

    X, y = build_training_set(make_trades(3000, seed=2), quick_config)
    store = SampleStore(models_dir=tmp_path / "a")
    for unit_scale, i in ((1, 0), (1_000, 1), (1_000_000, 2)):  # ns, us, ms of the same rule
        stamp = int(X.index[i].value) // unit_scale
        store.add("ETHUSDT", X.iloc[i].to_numpy(), y["flow_type"].iloc[i], y["impact"].iloc[i],
                  y["time_to_execution"].iloc[i], event_time=stamp)
    batch = store.load("ETHUSDT")
    assert list(batch.X.index) == list(X.index[:3])
    with pytest.raises(SampleValidationError, match="event time"):
        store.add("ETHUSDT", X.iloc[0].to_numpy(), "balanced", 0.0, 1.0, event_time="never")
    assert store.count("ETHUSDT") == 3
    store.close()

    manager = SyncTickerModelManager(QUICK, tmp_path / "b", auto_retrain=False)
    manager.add_training_sample("ETHUSDT", X.iloc[5].to_numpy(), y["flow_type"].iloc[5],
                                y["impact"].iloc[5], y["time_to_execution"].iloc[5],
                                timestamp=X.index[5].isoformat())
    assert list(manager.samples.load("ETHUSDT").X.index) == [X.index[5]]
    manager.close()


def test_manager_predictions_say_which_heads_serve_a_baseline(tmp_path, quick_config):
    from ticker_registry import SyncTickerModelManager

    manager = SyncTickerModelManager(QUICK, tmp_path, auto_retrain=False)
    trades = make_trades(4000, seed=4)
    X, y = build_training_set(trades, quick_config)
    # a constant time_to_execution label: that head cannot be evaluated, its baseline serves
    manager.train("ETHUSDT", X=X, y=y.assign(time_to_execution=7.5))
    window = trades.iloc[-QUICK["sequence_length"]:]
    prediction = manager.predict_for_ticker("ETHUSDT", window)
    assert prediction["time_to_execution"] == 7.5
    assert prediction["time_to_execution_source"] == "baseline"
    model = manager.get_or_create_model("ETHUSDT").model
    for head in ("flow_type", "impact"):
        assert prediction[f"{head}_source"] == model.serving_[head]
    manager.close()
