"""Native model heads: train, predict, save and load one tree model per target.

One small backend per model family, each storing its models in the family's
own format and never in a pickle:

========================  =====================  ======================================
model_type                file                   loader
========================  =====================  ======================================
``xgboost``               ``<head>.ubj``         ``xgboost.Booster(model_file=...)``
``lightgbm``              ``<head>.txt``         ``lightgbm.Booster(model_file=...)``
``random_forest``         ``<head>.skops``       ``skops.io.load`` with :func:`skops_trusted`
========================  =====================  ======================================

A classifier head predicts an (n, n_classes) probability matrix; a regressor
head an (n,) vector. ``predict`` takes a C-contiguous float64 matrix. ``dump``
gives the file's bytes, so the model is written (and disk space judged) by one
writer (``OrderFlowModel.save``), never half by a native library.

Every head is **verified when it is loaded** (:func:`load_head`): child and
feature indices in range, each node the child of one node (the root of none), at
most :data:`MAX_TREE_NODES` nodes a tree. A crafted or damaged file (a cycle) is
then a ``ModelFormatError`` at load, not a native predict that never returns:
native code cannot be interrupted from Python, so the load is where a hang is
prevented. The checks are vectorised over a head's trees (a few numpy calls).

A call of at most :data:`FLAT_MAX_ROWS` rows (a served window is one) is predicted by the
head's :class:`~.flat_trees.FlatForest`, built once from the trees the load check read
(or, for a head trained here, on its first such call): the same predictions as the
native library, without its tens of microseconds of per-call overhead. More rows, and a
model the flat forest does not reproduce, go to the native predict.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from .exceptions import ModelFormatError
from .flat_trees import FlatForest, lgb_forest, rf_forest, xgb_forest
from .tree_check import (
    MAX_TREE_NODES,
    check_lgb_trees,
    check_rf_trees,
    check_xgb_trees,
    parse_lgb_model,
    xgb_learner,
)

__all__ = ["FLAT_MAX_ROWS", "HEAD_SUFFIX", "MAX_TREE_NODES", "SKOPS_TRUSTED", "WARM_STARTABLE",
           "Head", "load_head", "skops_trusted", "train_head"]

# XGBoost and LightGBM run OpenMP, whose threads busy-wait at every barrier by default.
# When the cores are shared (another worker, the event loop, a retrain thread, other
# processes) n_jobs=2 then took 7-20x longer than n_jobs=1 (benchmarks/RESULTS.md, B5);
# passive waiting removes that at no cost here. libgomp reads it once, when the model
# library is loaded, so it is set before our lazy imports; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

HEAD_SUFFIX = {"xgboost": ".ubj", "lightgbm": ".txt", "random_forest": ".skops"}
#: Most rows a call predicts with the head's flat forest (XGBoost, scikit-learn); more go to
#: the native library, whose fixed per-call cost is then small against its per-row speed.
#: LightGBM's per-call cost is a fraction of XGBoost's: its flat forest serves one row only
#: (measured on the default models: one row 11-20 us flat, 24-26 us native; two rows
#: 31-45 us flat, 25-29 us native).
FLAT_MAX_ROWS = 16

#: The only types a skops file of ours may contain beyond skops' defaults. Taken
#: from our own code, never from the file being loaded.
SKOPS_TRUSTED = [
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._tree.Tree",
    "numpy.dtype",
]


def skops_trusted(path: Path) -> list[str]:
    """The ``trusted`` list to load the skops file at ``path`` with: :data:`SKOPS_TRUSTED`.

    The one allow-list decision for skops files, made by the loader and by the bundle's
    isolated check alike: the file is only read for its type names (nothing is built), and
    a type outside the allow-list refuses it before anything is loaded.

    Raises
    ------
    ModelFormatError
        The file holds types outside :data:`SKOPS_TRUSTED`.
    """
    import skops.io as sio

    unexpected = sorted(set(sio.get_untrusted_types(file=path)) - set(SKOPS_TRUSTED))
    if unexpected:
        raise ModelFormatError(f"{path.name} contains types outside our allow-list (SKOPS_TRUSTED): "
                               f"{unexpected}; it was not written by ticker-registry and is not loaded")
    return list(SKOPS_TRUSTED)


class Head(Protocol):
    def predict(self, X: np.ndarray) -> np.ndarray: ...
    def dump(self) -> bytes: ...
    def importances(self, n_features: int) -> np.ndarray: ...


class _NativeHead:
    """A head: a few rows through its flat forest (built once, on first need), more natively.

    Each family's head defines the four methods below (no ``abc``: the shipped code imports
    only what a version's environment is known to hold).
    """

    n_classes: int
    #: The flat forest; None until built, False when the model has none.
    forest: FlatForest | Literal[False] | None = None
    #: Most rows a call sends to the flat forest.
    flat_max_rows = FLAT_MAX_ROWS

    def predict(self, X: np.ndarray) -> np.ndarray:
        if len(X) <= self.flat_max_rows:
            forest = self.forest
            if forest is None:
                forest = self.forest = self.flatten() or False
            if forest and len(X) <= forest.max_rows:
                return forest.predict(X)
        return self.predict_native(X)

    def flatten(self, parsed: Any = None) -> FlatForest | None:
        """The head's flat forest, from the trees its load check read (``parsed``) or read now."""
        raise NotImplementedError

    def predict_native(self, X: np.ndarray) -> np.ndarray:
        """Predict with the native library, whatever the rows."""
        raise NotImplementedError

    def dump(self) -> bytes:
        raise NotImplementedError

    def importances(self, n_features: int) -> np.ndarray:
        raise NotImplementedError


# --------------------------------------------------------------------------- xgboost
class _XGBHead(_NativeHead):
    def __init__(self, booster: Any, n_classes: int) -> None:
        self.booster = booster
        self.n_classes = n_classes

    def flatten(self, parsed: Any = None) -> FlatForest | None:
        return xgb_forest(parsed or xgb_learner(self.booster), self.n_classes)

    def predict_native(self, X: np.ndarray) -> np.ndarray:
        out = self.booster.inplace_predict(X)
        return out.reshape(len(X), self.n_classes) if self.n_classes else out

    def dump(self) -> bytes:
        return bytes(self.booster.save_raw("ubj"))  # the bytes save_model writes

    def importances(self, n_features: int) -> np.ndarray:
        scores = self.booster.get_score(importance_type="gain")
        return np.array([scores.get(f"f{i}", 0.0) for i in range(n_features)])


def _train_xgb(X: np.ndarray, y: np.ndarray, n_classes: int, hp: dict, seed: int,
               n_jobs: int, init: _NativeHead | None = None) -> _XGBHead:
    import xgboost as xgb

    params = {
        "tree_method": "hist",
        "max_depth": hp["max_depth"],
        "eta": hp["learning_rate"],
        "subsample": hp["subsample"],
        "colsample_bytree": hp["colsample_bytree"],
        "min_child_weight": hp["min_child_weight"],
        "lambda": hp["reg_lambda"],
        "nthread": n_jobs,
        "seed": seed,
        "verbosity": 0,
    }
    if n_classes:
        params.update(objective="multi:softprob", num_class=n_classes)
    else:
        params.update(objective="reg:squarederror")
    start = init.booster.copy() if isinstance(init, _XGBHead) else None  # never grow the original
    booster = xgb.train(params, xgb.DMatrix(X, label=y, nthread=n_jobs),
                        num_boost_round=hp["n_estimators"], xgb_model=start)
    return _XGBHead(booster, n_classes)


def _load_xgb(path: Path, n_classes: int, n_jobs: int) -> _XGBHead:
    import xgboost as xgb

    booster = xgb.Booster(model_file=str(path))
    booster.set_param({"nthread": n_jobs})
    return _XGBHead(booster, n_classes)


# --------------------------------------------------------------------------- lightgbm
class _LGBHead(_NativeHead):
    flat_max_rows = 1  # see FLAT_MAX_ROWS

    def __init__(self, booster: Any, n_classes: int, n_jobs: int) -> None:
        self.booster = booster
        self.n_classes = n_classes
        self.n_jobs = n_jobs

    def flatten(self, parsed: Any = None) -> FlatForest | None:
        return lgb_forest(parsed or parse_lgb_model(self.booster.model_to_string(), "lightgbm"),
                          self.n_classes)

    def predict_native(self, X: np.ndarray) -> np.ndarray:
        return self.booster.predict(X, num_threads=self.n_jobs)

    def dump(self) -> bytes:
        return self.booster.model_to_string().encode("utf-8")  # the text save_model writes

    def importances(self, n_features: int) -> np.ndarray:
        return np.asarray(self.booster.feature_importance(importance_type="gain"), dtype=float)


def _train_lgb(X: np.ndarray, y: np.ndarray, n_classes: int, hp: dict, seed: int,
               n_jobs: int, init: _NativeHead | None = None) -> _LGBHead:
    import lightgbm as lgb

    params: dict[str, Any] = {
        "num_leaves": hp["num_leaves"],
        "learning_rate": hp["learning_rate"],
        "min_data_in_leaf": hp["min_child_samples"],
        "feature_fraction": hp["colsample_bytree"],
        "lambda_l2": hp["reg_lambda"],
        "num_threads": n_jobs,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
    }
    if hp["subsample"] < 1.0:
        params.update(bagging_fraction=hp["subsample"], bagging_freq=1)
    if n_classes:
        params.update(objective="multiclass", num_class=n_classes)
    else:
        params.update(objective="regression")
    start = init.booster if isinstance(init, _LGBHead) else None  # LightGBM copies it
    booster = lgb.train(params, lgb.Dataset(X, label=y, params={"verbosity": -1}),
                        num_boost_round=hp["n_estimators"], init_model=start)
    return _LGBHead(booster, n_classes, n_jobs)


def _load_lgb(path: Path, n_classes: int, n_jobs: int) -> _LGBHead:
    import lightgbm as lgb

    return _LGBHead(lgb.Booster(model_file=str(path)), n_classes, n_jobs)


# --------------------------------------------------------------------------- random forest
class _RFHead(_NativeHead):
    def __init__(self, estimator: Any, n_classes: int) -> None:
        self.estimator = estimator
        self.n_classes = n_classes

    def flatten(self, parsed: Any = None) -> FlatForest | None:
        return rf_forest(self.estimator, self.n_classes)

    def predict_native(self, X: np.ndarray) -> np.ndarray:
        if not self.n_classes:
            return self.estimator.predict(X)
        proba = self.estimator.predict_proba(X)
        out = np.zeros((len(X), self.n_classes))
        out[:, self.estimator.classes_.astype(int)] = proba
        return out

    def dump(self) -> bytes:
        import skops.io as sio

        return sio.dumps(self.estimator)

    def importances(self, n_features: int) -> np.ndarray:
        return np.asarray(self.estimator.feature_importances_, dtype=float)


def _train_rf(X: np.ndarray, y: np.ndarray, n_classes: int, hp: dict, seed: int,
              n_jobs: int, init: _NativeHead | None = None) -> _RFHead:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    cls = RandomForestClassifier if n_classes else RandomForestRegressor
    estimator = cls(n_estimators=hp["n_estimators"], max_depth=hp["max_depth"],
                    min_samples_leaf=hp["min_samples_leaf"], max_features=hp["max_features"],
                    n_jobs=n_jobs, random_state=seed)
    estimator.fit(X, y)
    estimator.n_jobs = 1  # threaded predict sums trees in a racy order: results would vary
    return _RFHead(estimator, n_classes)


def _load_rf(path: Path, n_classes: int, n_jobs: int) -> _RFHead:
    import skops.io as sio

    estimator = sio.load(path, trusted=skops_trusted(path))
    expected = "RandomForestClassifier" if n_classes else "RandomForestRegressor"
    if type(estimator).__name__ != expected:
        raise ModelFormatError(f"{path.name} holds a {type(estimator).__name__}, "
                               f"expected a {expected}")
    estimator.n_jobs = 1  # deterministic predictions (see _train_rf)
    return _RFHead(estimator, n_classes)


_TRAIN: dict[str, Callable[..., _NativeHead]] = {"xgboost": _train_xgb, "lightgbm": _train_lgb,
                                                 "random_forest": _train_rf}
_LOAD: dict[str, Callable[..., _NativeHead]] = {"xgboost": _load_xgb, "lightgbm": _load_lgb,
                                                "random_forest": _load_rf}
#: The load-time tree checks, on the head just loaded from ``path``; each returns what it read.
_VERIFY: dict[str, Callable[[Any, Path, int], Any]] = {
    "xgboost": lambda head, path, n_classes: check_xgb_trees(path, None, n_classes, head.booster),
    "lightgbm": lambda head, path, n_classes: check_lgb_trees(path, None,
                                                              head.booster.model_to_string()),
    "random_forest": lambda head, path, n_classes: check_rf_trees(head.estimator, path.name, None),
}


#: The model types whose heads can continue from another head's trees (``train_head(init=)``).
WARM_STARTABLE = ("xgboost", "lightgbm")


def train_head(model_type: str, X: np.ndarray, y: np.ndarray, *, n_classes: int,
               hyperparameters: dict, seed: int, n_jobs: int, init: Head | None = None) -> Head:
    """Train one head; ``n_classes=0`` means a regressor.

    ``init``: a head of the same family and target to continue boosting from (XGBoost's
    ``xgb_model``, LightGBM's ``init_model``): its trees stay, ``n_estimators`` new ones
    are fitted to what they leave; ``init`` itself is not changed. Only the families in
    :data:`WARM_STARTABLE`.
    """
    if init is not None:
        wanted = {"xgboost": _XGBHead, "lightgbm": _LGBHead}.get(model_type)
        if wanted is None or not isinstance(init, wanted):
            raise ModelFormatError(f"cannot continue a {model_type} head from a "
                                   f"{type(init).__name__}: warm start needs a head of the same "
                                   f"family, one of {', '.join(WARM_STARTABLE)}")
        if getattr(init, "n_classes", n_classes) != n_classes:
            raise ModelFormatError(f"cannot continue a head of {n_classes} classes from one of "
                                   f"{getattr(init, 'n_classes', '?')}")
    return _TRAIN[model_type](X, y, n_classes, hyperparameters, seed, n_jobs, init)


def load_head(model_type: str, path: Path, *, n_classes: int, n_jobs: int = 1) -> Head:
    """Load and verify one head written from :meth:`Head.dump`.

    Raises
    ------
    ModelFormatError
        The file is missing, does not load, or its trees fail the checks (module docstring).
    """
    if not path.is_file():
        raise ModelFormatError(f"model file {path.name} is missing from {path.parent}")
    try:
        head = _LOAD[model_type](path, n_classes, n_jobs)
        parsed = _VERIFY[model_type](head, path, n_classes)
        head.forest = head.flatten(parsed) or False  # from the trees just read: no second parse
        return head
    except ModelFormatError:
        raise
    except Exception as exc:  # the native loaders raise many types on a corrupt file
        raise ModelFormatError(f"cannot load {model_type} model {path.name}: "
                               f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                               ) from exc
