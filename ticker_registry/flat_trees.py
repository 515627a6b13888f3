"""Flat forests: every tree of a head in a few numpy arrays, for predicting a few rows fast.

A native ``predict`` costs tens of microseconds of Python and setup per call whatever
the rows; a head serving one window at a time pays it on every request. A
:class:`FlatForest` holds all nodes of all trees of one head in flat arrays (split
feature, threshold, both children, the missing-value direction, leaf values; one root
per tree) and predicts a few rows with a fixed number of numpy calls:

1. for one row of a forest of shallow trees, every node's decision at once (gather the
   split features, compare with the thresholds, send missing values their default way),
   giving each node's next node (a leaf's is itself), then one gather per level from the
   roots; otherwise the same decisions level by level, only at the nodes the rows reach;
2. as many levels as the deepest tree has;
3. the leaves' values summed tree by tree in the library's order and dtype, then the
   library's output transform.

Each family's rules, reproduced exactly (``tests/test_flat_trees.py`` compares with the
native predict on NaN, infinite, huge and threshold-equal values):

===============  ===========================  ====================================  =========
family           a row goes left when         missing value (NaN)                   sums in
===============  ===========================  ====================================  =========
XGBoost          ``float32(x) < threshold``   the node's ``default_left``           float32
LightGBM         ``x <= threshold``, |x| at   by ``decision_type``: to 0.0, or the  float64
                 most 1e-35f read as 0.0      default side (NaN or zero missing)
scikit-learn     ``float32(x) <= threshold``  the node's ``missing_go_to_left``     float64
===============  ===========================  ====================================  =========

XGBoost adds ``base_score`` first and applies a softmax over the classes' tree groups
(``multi:softprob``); LightGBM sums each class's trees (its start value is in the first
trees' leaves) and applies a softmax (``multiclass``); a forest averages its trees'
leaf class fractions (normalised as scikit-learn does) or values. A model outside these
(another objective, DART, linear trees, trees deeper than :data:`MAX_FLAT_DEPTH`) gets
no flat forest (the builders return None) and is predicted natively.

Built from what :mod:`.tree_check` read at load, so there is one reader of the trees.
Shipped inside every model version with :mod:`.heads`. Only numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .exceptions import PredictionInputError
from .tree_check import LGBModel, check_tree_arrays, xgb_tree_model

__all__ = ["MAX_FLAT_DEPTH", "MAX_FLAT_WORK", "FlatForest", "lgb_forest", "rf_forest",
           "xgb_forest"]

#: Deepest tree a flat forest walks (numpy calls per level for every tree; deeper models,
#: such as leaf-wise LightGBM trees of many leaves, stay native).
MAX_FLAT_DEPTH = 48
#: Most steps (rows x trees x levels) one flat predict takes: :attr:`FlatForest.max_rows`
#: stops there, bounding a call's time and memory; more rows go to the native predict.
#: (One row of 1,000 XGBoost trees of depth 8, 8,008 steps: 0.24 ms flat, 1.9 ms native.)
MAX_FLAT_WORK = 1 << 16
#: One row decides at every node at once when the nodes are at most this many times the
#: steps of a level-by-level walk (shallow trees; deeper ones have too many nodes).
_ALL_NODES_RATIO = 16

#: LightGBM's ``kZeroThreshold`` (a float): an input ``|x| <= this`` is read as 0.0.
_LGB_ZERO = float(np.float32(1e-35))


class FlatForest:
    """The trees of one head as flat node arrays, predicted a few rows at a time in numpy.

    Made by :func:`xgb_forest`, :func:`lgb_forest` or :func:`rf_forest`; the arrays are
    global over all trees (a tree's nodes follow its root), trees ordered class by class.

    Parameters
    ----------
    rule : {"xgboost", "lightgbm", "sklearn"}
        How a node decides (module docstring).
    feature, threshold, left, right, default_left : ndarray
        Per node; at a leaf ``left`` and ``right`` are the leaf itself.
    value : ndarray
        Per node, (nodes,) or (nodes, outputs): the leaf values (0 at inner nodes).
    roots : ndarray
        Each tree's root, ordered class by class, the same number of trees per class.
    n_groups : int
        Classes whose trees are summed apart (1 for a regressor and a forest).
    depth : int
        Levels walked from the roots (the deepest tree's depth).
    output : {"sum", "softmax", "mean"}
        Per class, the trees' sum; its softmax over the classes; or the mean over trees.
    regressor : bool
        Predict an (n,) vector instead of an (n, classes) matrix.
    missing_zero, missing_nan : ndarray, optional
        LightGBM: the nodes whose missing values are zeros, NaNs (``decision_type``).
    """

    def __init__(self, *, rule: str, feature: np.ndarray, threshold: np.ndarray,
                 left: np.ndarray, right: np.ndarray, default_left: np.ndarray,
                 value: np.ndarray, roots: np.ndarray, n_groups: int, depth: int,
                 output: str, regressor: bool, missing_zero: np.ndarray | None = None,
                 missing_nan: np.ndarray | None = None) -> None:
        self.rule = rule
        self.feature = feature
        self.threshold = threshold
        self.left = left
        self.right = right
        self.default_left = default_left
        self.value = value
        self.roots = roots
        self.n_groups = n_groups
        self.depth = depth
        self.output = output
        self.regressor = regressor
        self.missing_zero = missing_zero
        self.missing_nan = missing_nan
        self.any_missing_zero = missing_zero is not None and bool(missing_zero.any())
        steps = len(roots) * max(depth, 1)
        #: Most rows :meth:`predict` should be given (:data:`MAX_FLAT_WORK`).
        self.max_rows = MAX_FLAT_WORK // steps
        self.all_nodes = len(feature) <= _ALL_NODES_RATIO * steps

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predict the rows of ``X`` (float64, (n, features)) as the native library does.

        Returns the native dtype (float32 for XGBoost): (n, classes) probabilities, or (n,)
        for a regressor.

        Raises
        ------
        PredictionInputError
            A scikit-learn forest given an infinite value, or one beyond float32 (which
            scikit-learn refuses too).
        """
        x = self._features(X)
        missing = bool(np.isnan(x).any())
        if len(x) == 1 and self.all_nodes:  # every node's decision, then a gather per level
            row = x[0]
            nxt = np.where(self._go_left(row.take(self.feature), None, missing),
                           self.left, self.right)
            pos = self.roots
            for _ in range(self.depth):
                pos = nxt.take(pos)
            leaves = pos[None, :]
        else:  # only the nodes on each row's path (no (rows, nodes) arrays)
            flat = x.ravel()
            base = (np.arange(len(x)) * x.shape[1])[:, None]
            leaves = np.broadcast_to(self.roots, (len(x), len(self.roots)))
            for _ in range(self.depth):
                go = self._go_left(flat.take(self.feature.take(leaves) + base), leaves, missing)
                leaves = np.where(go, self.left.take(leaves), self.right.take(leaves))
        values = self.value[leaves]  # (n, trees) or (n, trees, outputs)
        if self.output == "mean":  # scikit-learn adds tree by tree into zeros, then divides
            out = np.cumsum(values, axis=1)[:, -1] / values.shape[1]
            return out[:, 0] if self.regressor else out
        per_class = values.reshape(len(x), self.n_groups, -1)
        sums = np.cumsum(per_class, axis=2)[:, :, -1]  # tree by tree, as the libraries add
        return sums[:, 0] if self.regressor else _softmax(sums)

    def _features(self, X: np.ndarray) -> np.ndarray:
        """The rows as the library compares them: float32 for XGBoost and scikit-learn;
        LightGBM reads a value within its zero threshold as 0.0 (a sparse zero)."""
        if self.rule == "lightgbm":
            return np.where(np.abs(X) <= _LGB_ZERO, 0.0, X)
        with np.errstate(over="ignore"):  # beyond float32 is inf, as the libraries cast it
            x = X.astype(np.float32)
        if self.rule == "sklearn" and np.isinf(x).any():
            raise PredictionInputError(
                "a feature is infinite or beyond float32 (random_forest predicts float32 "
                "features); every feature must be a finite number")
        return x

    def _go_left(self, values: np.ndarray, nodes: np.ndarray | None,
                 missing: bool) -> np.ndarray:
        """Whether ``values`` go left at ``nodes`` (None: at every node, in order).

        ``missing``: the rows hold a NaN (otherwise the missing-value rules are skipped).
        """
        def at(a: np.ndarray) -> np.ndarray:
            return a if nodes is None else a.take(nodes)

        if self.rule != "lightgbm":
            # sklearn compares its float32 feature with a float64 threshold, as numpy does
            go = (values < at(self.threshold)) if self.rule == "xgboost" else (
                values <= at(self.threshold))
            return np.where(np.isnan(values), at(self.default_left), go) if missing else go
        assert self.missing_zero is not None and self.missing_nan is not None
        default = None
        if missing:  # NaN is 0.0 unless the node's missing type is NaN
            nan = np.isnan(values)
            default = nan & at(self.missing_nan)
            values = np.where(nan & ~default, 0.0, values)
        go = values <= at(self.threshold)
        if self.any_missing_zero:
            zero = at(self.missing_zero) & (np.abs(values) <= _LGB_ZERO)
            default = zero if default is None else default | zero
        return go if default is None else np.where(default, at(self.default_left), go)


def _softmax(margins: np.ndarray) -> np.ndarray:
    """The libraries' softmax over each row's class margins, in the margins' dtype.

    XGBoost takes ``expf`` of the float32 margin less the row's maximum, sums in float64
    and divides in float32; numpy's float32 ``exp`` is not rounded as ``expf`` is, so the
    exponential is taken in float64 and rounded to float32 (then equal but in rare ties).
    LightGBM works in float64 throughout.
    """
    shifted = margins - margins.max(axis=1, keepdims=True)
    e = np.exp(shifted, dtype=np.float64).astype(margins.dtype, copy=False)
    total = e.sum(axis=1, keepdims=True, dtype=np.float64)
    return e / total.astype(e.dtype, copy=False)


# --------------------------------------------------------------------------- building
def _assemble(rule: str, trees: list[dict[str, np.ndarray]], n_features: int, *,
              n_groups: int, output: str, regressor: bool, where: str) -> FlatForest | None:
    """One :class:`FlatForest` of ``trees`` (each a dict of node arrays, -1 children at
    leaves), already ordered class by class; None if the deepest tree is too deep."""
    sizes = np.array([len(t["left"]) for t in trees], dtype=np.int64)
    starts = np.cumsum(sizes) - sizes
    depth = check_tree_arrays(where, [(t["left"], t["right"], t["feature"]) for t in trees],
                              n_features)
    if depth > MAX_FLAT_DEPTH:
        return None
    joined = {k: np.concatenate([t[k] for t in trees]) for k in trees[0]}
    own = np.arange(len(joined["left"]), dtype=np.intp)
    offset = np.repeat(starts, sizes)
    leaf = joined["left"] < 0
    left = np.where(leaf, own, joined["left"] + offset).astype(np.intp)
    right = np.where(leaf, own, joined["right"] + offset).astype(np.intp)
    extra = {k: joined[k] for k in ("missing_zero", "missing_nan") if k in joined}
    return FlatForest(rule=rule, feature=np.where(leaf, 0, joined["feature"]).astype(np.intp),
                      threshold=joined["threshold"], left=left, right=right,
                      default_left=joined["default_left"].astype(bool), value=joined["value"],
                      roots=starts.astype(np.intp), n_groups=n_groups, depth=depth, output=output,
                      regressor=regressor, **extra)


def _leaf(value: float, like: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A tree of one leaf holding ``value``, with the node arrays of the tree ``like``."""
    tree = {k: np.zeros(1, dtype=a.dtype) for k, a in like.items()}
    tree.update(left=np.array([-1]), right=np.array([-1]))
    tree["value"][0] = value
    return tree


def _by_class(trees: list[dict[str, np.ndarray]], classes: list[int], n_groups: int,
              first: list[float] | None = None) -> list[dict[str, np.ndarray]]:
    """``trees`` reordered class by class (each class's in its order), a leaf of ``first[k]``
    before class k's trees, and classes with fewer trees padded with leaves of 0 (adding
    0.0 changes no sum)."""
    groups: list[list[dict[str, np.ndarray]]] = [
        [_leaf(first[k], trees[0])] if first is not None else [] for k in range(n_groups)]
    for tree, k in zip(trees, classes, strict=True):
        groups[k].append(tree)
    most = max(len(g) for g in groups)
    return [t for g in groups for t in g + [_leaf(0.0, trees[0])] * (most - len(g))]


def xgb_forest(learner: dict[str, Any], n_classes: int) -> FlatForest | None:
    """The flat forest of an XGBoost learner (:func:`.tree_check.xgb_learner`), or None
    for what it does not reproduce (only ``reg:squarederror`` and ``multi:softprob``
    gbtree models with one target)."""
    objective = learner["objective"]["name"]
    params = learner["learner_model_param"]
    if (learner["gradient_booster"]["name"] != "gbtree"
            or objective != ("multi:softprob" if n_classes else "reg:squarederror")
            or int(params.get("num_target", "1")) != 1
            or int(params.get("num_class", "0")) != n_classes):
        return None
    model = xgb_tree_model(learner)
    n_groups = max(n_classes, 1)
    base = [float(v) for v in params["base_score"].strip("[]").split(",")]
    base = base * n_groups if len(base) == 1 else base
    if len(base) != n_groups or not model["trees"]:
        return None
    trees: list[dict[str, np.ndarray]] = []
    for tree in model["trees"]:
        if int(tree["tree_param"].get("size_leaf_vector", "1")) > 1:
            return None
        left = np.asarray(tree["left_children"], dtype=np.int64)
        conditions = np.asarray(tree["split_conditions"], dtype=np.float32)
        trees.append({"left": left, "right": np.asarray(tree["right_children"], dtype=np.int64),
                      "feature": np.asarray(tree["split_indices"], dtype=np.int64),
                      "threshold": conditions,
                      "default_left": np.asarray(tree["default_left"], dtype=bool),
                      "value": np.where(left < 0, conditions, np.float32(0))})
    classes = [int(k) for k in model["tree_info"]]
    ordered = _by_class(trees, classes, n_groups, first=base)
    return _assemble("xgboost", ordered, int(params["num_feature"]), where="xgboost model",
                     n_groups=n_groups, output="softmax" if n_classes else "sum",
                     regressor=not n_classes)


def lgb_forest(model: LGBModel, n_classes: int) -> FlatForest | None:
    """The flat forest of a LightGBM model (:func:`.tree_check.check_lgb_trees`), or None
    for what it does not reproduce (only plain ``regression`` and ``multiclass``, no
    linear trees, no averaged output)."""
    objective = model.header.get("objective", "").split()
    per_iteration = int(model.header.get("num_tree_per_iteration", "1"))
    wanted = "multiclass" if n_classes else "regression"
    if (not objective or objective[0] != wanted or "sqrt" in objective[1:]
            or "average_output" in model.header or per_iteration != max(n_classes, 1)
            or not model.trees or any(t.linear for t in model.trees)):
        return None
    trees: list[dict[str, np.ndarray]] = []
    for t in model.trees:
        missing = (t.decision_type >> 2) & 3
        trees.append({"left": t.left, "right": t.right, "feature": t.feature,
                      "threshold": t.threshold, "default_left": (t.decision_type & 2) != 0,
                      "value": t.value, "missing_zero": missing == 1, "missing_nan": missing == 2})
    ordered = _by_class(trees, [i % per_iteration for i in range(len(trees))], per_iteration)
    return _assemble("lightgbm", ordered, int(model.header.get("max_feature_idx", "-1")) + 1,
                     where="lightgbm model", n_groups=per_iteration,
                     output="softmax" if n_classes else "sum", regressor=not n_classes)


def rf_forest(estimator: Any, n_classes: int) -> FlatForest | None:
    """The flat forest of a fitted scikit-learn ``RandomForestClassifier`` (its classes
    placed at their columns of ``n_classes``) or ``RandomForestRegressor``."""
    trees = []
    classes = getattr(estimator, "classes_", None)
    for member in estimator.estimators_:
        t = member.tree_
        value = np.asarray(t.value)[:, 0, :]
        if n_classes:  # each tree's predict_proba normalises its leaf's counts or fractions
            norm = value.sum(axis=1, keepdims=True)
            norm[norm == 0.0] = 1.0
            fractions = np.zeros((len(value), n_classes))
            fractions[:, np.asarray(classes).astype(int)] = value / norm
            value = fractions
        else:
            value = value[:, :1]
        trees.append({"left": np.asarray(t.children_left, dtype=np.int64),
                      "right": np.asarray(t.children_right, dtype=np.int64),
                      "feature": np.asarray(t.feature, dtype=np.int64),
                      "threshold": np.asarray(t.threshold, dtype=np.float64),
                      "default_left": np.asarray(getattr(t, "missing_go_to_left",
                                                         np.zeros(t.node_count)), dtype=bool),
                      "value": value})
    if not trees:
        return None
    return _assemble("sklearn", trees, int(estimator.n_features_in_), where="random forest",
                     n_groups=1, output="mean", regressor=not n_classes)
