"""Nothing can hang a prediction: trees verified at load, a budget on the async cold path.

A cyclic tree is refused when the model is loaded (predicting with it would never return,
and native code cannot be interrupted). A cold async prediction is awaited at most
``predict_timeout`` seconds; the slow head here blocks on a ``threading.Event`` the test
releases afterwards (no sleeps as synchronisation).
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from ticker_registry import (
    FEATURE_NAMES,
    Config,
    ConfigError,
    ModelFormatError,
    OrderFlowModel,
    PredictionTimeoutError,
    TickerModelManager,
    TickerRegistryError,
    build_training_set,
)
from ticker_registry.served import ServedModel

from conftest import QUICK, make_trades

MODEL_TYPES = ("xgboost", "lightgbm", "random_forest")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One small saved model per type: {model_type: folder}."""
    out = {}
    for model_type in MODEL_TYPES:
        config = Config.from_dict({**QUICK, "model_type": model_type})
        X, y = build_training_set(make_trades(3000, seed=1), config)
        out[model_type] = OrderFlowModel(config).fit(X, y).save(
            tmp_path_factory.mktemp(model_type) / "model")
    return out


def loop_back(left: list[int], right: list[int], is_inner) -> None:
    """Point an inner grandchild's left child back at its parent: j -> c -> j, a cycle."""
    for j in range(1, len(left)):
        for c in (left[j], right[j]):
            if is_inner(c) and c != j:
                left[c] = j
                return
    raise AssertionError("no inner node with an inner child to loop back")


def craft_xgboost(path: Path) -> None:
    import xgboost as xgb

    doc = json.loads(bytes(xgb.Booster(model_file=str(path)).save_raw("json")))
    trees = doc["learner"]["gradient_booster"]["model"]["trees"]
    tree = next(t for t in trees if int(t["tree_param"]["num_nodes"]) >= 7)
    loop_back(tree["left_children"], tree["right_children"],
              lambda c: c != -1 and tree["left_children"][c] != -1)
    crafted = xgb.Booster()
    crafted.load_model(bytearray(json.dumps(doc).encode()))  # xgboost itself accepts it
    path.write_bytes(bytes(crafted.save_raw("ubj")))


def craft_lightgbm(path: Path) -> None:
    import lightgbm as lgb

    lines = path.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("num_leaves=")
              and int(line.split("=")[1]) >= 5)
    left_at = next(i for i in range(at, len(lines)) if lines[i].startswith("left_child="))
    right_at = next(i for i in range(at, len(lines)) if lines[i].startswith("right_child="))
    left = [int(x) for x in lines[left_at].split("=")[1].split()]
    right = [int(x) for x in lines[right_at].split("=")[1].split()]
    loop_back(left, right, lambda c: c > 0)
    lines[left_at] = "left_child=" + " ".join(map(str, left))
    # tree_sizes gives each tree's byte length; without it lightgbm reads the trees in order
    path.write_text("\n".join(line for line in lines if not line.startswith("tree_sizes=")) + "\n")
    lgb.Booster(model_file=str(path))  # lightgbm itself accepts it


def craft_random_forest(path: Path) -> None:
    import skops.io as sio

    from ticker_registry.heads import skops_trusted

    forest = sio.load(path, trusted=skops_trusted(path))
    tree = next(e.tree_ for e in forest.estimators_ if e.tree_.node_count >= 7)
    left, right = tree.children_left, tree.children_right  # views of the tree's own nodes
    for j in range(1, len(left)):
        c = next((c for c in (left[j], right[j]) if c != -1 and left[c] != -1), None)
        if c is not None:
            left[c] = j
            break
    sio.dump(forest, path)


CRAFT = {"xgboost": craft_xgboost, "lightgbm": craft_lightgbm,
         "random_forest": craft_random_forest}
SUFFIX = {"xgboost": ".ubj", "lightgbm": ".txt", "random_forest": ".skops"}


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_a_cyclic_tree_is_refused_at_load_not_at_predict(saved, tmp_path, model_type):
    folder = tmp_path / "model"
    folder.mkdir()
    for file in saved[model_type].iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    head = folder / f"impact{SUFFIX[model_type]}"
    CRAFT[model_type](head)
    for load in (OrderFlowModel.load, ServedModel.load):  # the library and the shipped pyfunc
        with pytest.raises(ModelFormatError, match="do not form a tree") as caught:
            load(folder)
        assert head.name in str(caught.value)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_a_good_model_loads_and_predicts(saved, model_type):
    model = OrderFlowModel.load(saved[model_type])
    out = model.predict_matrix(np.zeros((1, len(FEATURE_NAMES))))
    assert out.shape == (1, 5) and np.isfinite(out).all()


def test_predict_timeout_is_a_validated_config_key():
    assert Config().predict_timeout == 1.0
    assert Config(predict_timeout=None).predict_timeout is None  # wait for the load
    for bad in (0, -1, "1", 10_000):
        with pytest.raises(ConfigError, match="predict_timeout"):
            Config(predict_timeout=bad)


def test_the_error_is_a_timeout_and_ours():
    assert issubclass(PredictionTimeoutError, TimeoutError)
    assert issubclass(PredictionTimeoutError, TickerRegistryError)


def test_a_slow_cold_prediction_times_out_and_the_loop_stays_responsive(tmp_path, monkeypatch):
    events = make_trades(50, seed=9).iloc[-10:]
    entered, release = threading.Event(), threading.Event()
    calls: list[int] = []
    original = OrderFlowModel.predict_matrix

    def slow(self, features):
        calls.append(threading.get_ident())
        if not release.is_set():
            entered.set()
            release.wait()
        return original(self, features)

    async def scenario() -> None:
        config = {**QUICK, "predict_timeout": 0.2, "refresh_interval": 0}
        async with TickerModelManager(config, tmp_path, auto_retrain=False) as manager:
            await manager.train("ETHUSDT", make_trades(3000, seed=1))
            manager.sync.cache.invalidate("ETHUSDT")  # cold: the next call loads the version
            monkeypatch.setattr(OrderFlowModel, "predict_matrix", slow)
            try:
                pending = asyncio.create_task(manager.predict_for_ticker("ETHUSDT", events))
                # the loop keeps running other work while the head is stuck in its thread
                assert await asyncio.to_thread(entered.wait, 120)
                assert await asyncio.wait_for(asyncio.sleep(0, result="alive"), 60) == "alive"
                with pytest.raises(PredictionTimeoutError, match="predict_timeout=0.2") as caught:
                    await pending
                assert not release.is_set()  # the budget ended the call, not the head
                assert "preload" in str(caught.value) and "\n" not in str(caught.value)
            finally:
                release.set()
            # the load went on in the background: the next call is warm, inline on the loop
            assert manager.sync.cache.peek("ETHUSDT") is not None
            prediction = await manager.predict_for_ticker("ETHUSDT", events)
            assert prediction["version"] == 1
            assert calls[-1] == threading.get_ident() != calls[0]

    asyncio.run(scenario())


def test_a_cold_prediction_within_its_budget_serves(tmp_path):
    events = make_trades(50, seed=9).iloc[-10:]

    async def scenario() -> None:
        config = {**QUICK, "predict_timeout": None, "refresh_interval": 0}
        async with TickerModelManager(config, tmp_path, auto_retrain=False) as manager:
            await manager.train("ETHUSDT", make_trades(3000, seed=1))
            manager.sync.cache.invalidate("ETHUSDT")
            assert (await manager.predict_for_ticker("ETHUSDT", events))["version"] == 1

    asyncio.run(scenario())
