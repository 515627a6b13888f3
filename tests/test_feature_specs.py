"""Samples carry the hash of the feature spec they were computed with; retrains never mix specs."""

from __future__ import annotations

from ticker_registry import Config, FeatureSpec, SyncTickerModelManager, build_training_set
from ticker_registry.samples import SampleStore, spec_hash

from conftest import QUICK, make_trades


def _rows(X, y, start, stop):
    return [(X.iloc[i].to_numpy(), y["flow_type"].iloc[i], y["impact"].iloc[i],
             y["time_to_execution"].iloc[i], X.index[i]) for i in range(start, stop)]


def test_store_records_the_spec_and_filters_by_it(tmp_path):
    cfg = Config.from_dict(QUICK)
    X, y = build_training_set(make_trades(3000, seed=1), cfg)
    a = FeatureSpec.from_config(cfg)
    b = FeatureSpec.from_config(cfg.replace(large_order_threshold=50))
    store = SampleStore(models_dir=tmp_path)
    store.add_many("ETHUSDT", _rows(X, y, 0, 40), spec=a)
    store.add_many("ETHUSDT", _rows(X, y, 40, 50), spec=b)
    store.add("ETHUSDT", *_rows(X, y, 50, 51)[0][:4])  # no spec known
    assert [(h, n) for h, n, _ in store.spec_counts("ETHUSDT")] == [
        (spec_hash(a), 40), (spec_hash(b), 10), (None, 1)]
    assert store.feature_spec(spec_hash(b)) == b
    assert len(store.load("ETHUSDT", spec=spec_hash(a)).X) == 41  # a's and the unknown one
    assert len(store.load("ETHUSDT").X) == 51
    store.close()


def test_retrain_uses_the_serving_spec_and_says_what_it_skipped(tmp_path):
    manager = SyncTickerModelManager(QUICK, tmp_path, auto_retrain=False)
    cfg = manager.config
    X, y = build_training_set(make_trades(4000, seed=2), cfg)
    serving = FeatureSpec.from_config(cfg)
    other = FeatureSpec.from_config(cfg.replace(large_order_threshold=50))
    manager.samples.add_many("ETHUSDT", _rows(X, y, 0, 1500), spec=serving)
    manager.samples.add_many("ETHUSDT", _rows(X, y, 1500, 1700), spec=other)
    outcome = manager.retrain("ETHUSDT")
    tags = outcome.version.tags
    assert tags["lineage.n_samples"] == "1500"
    assert tags["lineage.skipped_other_spec"] == "200"
    assert tags["lineage.feature_spec_hash"] == spec_hash(serving)
    manager.close()


def test_auto_threshold_samples_train_with_the_spec_they_recorded(tmp_path):
    manager = SyncTickerModelManager({**QUICK, "large_order_threshold": "auto"}, tmp_path,
                                     auto_retrain=False)
    trades = make_trades(4000, seed=3)
    X, y = build_training_set(trades, manager.config)  # 'auto' resolved from these trades
    spec = FeatureSpec.from_dict(X.attrs["feature_spec"])
    manager.use_feature_spec("ETHUSDT", spec)
    for i in range(300):
        manager.add_training_sample("ETHUSDT", X.iloc[i].to_numpy(), y["flow_type"].iloc[i],
                                    y["impact"].iloc[i], y["time_to_execution"].iloc[i],
                                    timestamp=X.index[i])
    fresh = SyncTickerModelManager({**QUICK, "large_order_threshold": "auto"}, tmp_path,
                                   auto_retrain=False)  # another process: knows no spec
    outcome = fresh.retrain("ETHUSDT")
    model = fresh.registry.load_model("ETHUSDT", outcome.version.version)
    assert model.spec_ == spec
    manager.close()
    fresh.close()
