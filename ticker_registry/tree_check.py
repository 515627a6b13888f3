"""Tree checks: only a tree that can be walked from its root, and that we could have grown, loads.

Shipped inside every model version with :mod:`.heads` (which runs these checks on
each head it loads) and used by bundle verification (:mod:`ticker_registry.bundle.trees`,
with the limits our hyperparameter bounds allow). Only the standard library and numpy.

This is also the one reader of a loaded head's trees: the checks return what they read
(:func:`check_xgb_trees` the XGBoost learner, :func:`check_lgb_trees` an :class:`LGBModel`),
and :mod:`.flat_trees` builds its flat forests from exactly that.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .exceptions import ModelFormatError

__all__ = ["MAX_TREE_NODES", "LGBModel", "LGBTree", "Tree", "check_lgb_trees", "check_rf_trees",
           "check_tree_arrays", "check_xgb_trees", "parse_lgb_model", "xgb_learner", "xgb_tree_model"]

#: Most nodes one tree may have: far above what the hyperparameter bounds can grow
#: (xgboost depth <= 16, lightgbm <= 4096 leaves) and what a default forest holds.
MAX_TREE_NODES = 1 << 20

_LGB_KEYS = frozenset({"num_leaves", "num_cat", "split_feature", "left_child", "right_child",
                       "threshold", "decision_type", "leaf_value", "is_linear"})
#: One tree as flat node arrays: left child, right child (-1: a leaf), split feature.
Tree = tuple[Any, Any, Any]


@dataclass(frozen=True)
class LGBTree:
    """One LightGBM tree as node arrays: inner nodes 0..n-1, then its leaves (-1 children).

    ``threshold`` and ``decision_type`` are 0 at leaves, ``value`` is 0 at inner nodes;
    ``linear`` is a linear tree (its leaves fit a model, not a constant).
    """

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    decision_type: np.ndarray
    value: np.ndarray
    linear: bool


@dataclass(frozen=True)
class LGBModel:
    """A LightGBM model as read from its text: header lines (bare ones map to "") and trees."""

    header: dict[str, str]
    trees: list[LGBTree]


def check_tree_arrays(where: str, trees: Sequence[Tree], n_features: int, *,
                      max_trees: int | None = None, max_nodes: int = MAX_TREE_NODES,
                      max_depth: int | None = None, kind: str = "") -> int:
    """Every tree can be walked from its root, and only a tree we could have grown passes.

    Children in range, split features in range, every node but the root the child of
    exactly one node (the root of none: following children can never come back), every
    node reachable from the root, and at most ``max_trees`` trees, ``max_nodes`` nodes and
    ``max_depth`` levels (the bundle check passes the limits of what our hyperparameter
    bounds can grow). All trees are checked at once, a handful of numpy calls per level.

    Returns
    -------
    int
        The depth of the deepest tree (0: every tree is a single leaf), so a walk of that
        many levels from the roots ends at a leaf in every tree.
    """
    what = f"a {kind} head of ours" if kind else "a head of ours"
    if max_trees is not None and len(trees) > max_trees:
        raise ModelFormatError(f"{where}: {len(trees):,} trees; {what} has at most "
                               f"{max_trees:,} (MAX_TREES)")
    if not trees:
        return 0
    arrays = []
    for i, (left, right, feature) in enumerate(trees):
        n = len(left)
        if n > max_nodes:
            raise ModelFormatError(f"{where} tree {i}: {n:,} nodes; a tree of {what} has at "
                                   f"most {max_nodes:,} (MAX_TREE_NODES)")
        if not 1 <= n == len(right) == len(feature):
            raise ModelFormatError(f"{where} tree {i}: node arrays disagree on the node count {n}")
        arrays.append([np.asarray(a, dtype=np.int64) for a in (left, right, feature)])
    sizes = np.array([len(a[0]) for a in arrays], dtype=np.int64)
    starts = np.cumsum(sizes) - sizes
    tree_of = np.repeat(np.arange(len(trees)), sizes)
    n_of, start_of = sizes[tree_of], starts[tree_of]
    left, right, feature = (np.concatenate([a[k] for a in arrays]) for k in range(3))

    def refuse_first(bad: np.ndarray, why: str) -> None:
        if bad.any():
            raise ModelFormatError(f"{where} tree {int(tree_of[int(np.argmax(bad))])}: {why}")

    inner = left != -1
    refuse_first(inner != (right != -1), "a node has only one child")
    refuse_first(inner & ((left <= 0) | (left >= n_of) | (right <= 0) | (right >= n_of)),
                 "a child index is out of range")
    refuse_first(inner & ((feature < 0) | (feature >= n_features)),
                 f"a split feature index is out of range (0..{n_features - 1})")
    gleft, gright = left + start_of, right + start_of  # global node numbers
    parents = np.bincount(np.concatenate([gleft[inner], gright[inner]]), minlength=len(left))
    refuse_first(parents != (np.arange(len(left)) != start_of), "the nodes do not form a tree "
                 "(a node is the child of several nodes, of none, or the root is a child: a cycle)")
    # Walk down from every root at once, one level a step: depth, and what is reachable.
    reached = np.zeros(len(left), dtype=bool)
    frontier = starts
    depth = 0
    while frontier.size:
        reached[frontier] = True
        split = frontier[inner[frontier]]
        frontier = np.concatenate([gleft[split], gright[split]])
        if frontier.size:
            depth += 1
            if max_depth is not None and depth > max_depth:
                raise ModelFormatError(
                    f"{where} tree {int(tree_of[frontier[0]])}: deeper than {max_depth} "
                    f"(MAX_TREE_DEPTH), the deepest tree {what} can grow")
            if reached[frontier].any():  # cannot happen after the one-parent rule; never loop
                raise ModelFormatError(f"{where}: a cycle reachable from a root")
    refuse_first(~reached, "nodes unreachable from the root (a detached cycle or stray nodes)")
    return depth


def xgb_learner(booster: Any) -> dict[str, Any]:
    """The ``learner`` object of ``booster``'s JSON model (XGBoost's own serialisation)."""
    learner: dict[str, Any] = json.loads(bytes(booster.save_raw("json")))["learner"]
    return learner


def xgb_tree_model(learner: dict[str, Any]) -> dict[str, Any]:
    """The tree model of an XGBoost learner: ``trees``, ``tree_info`` (each tree's class), ...."""
    gbm = learner["gradient_booster"]
    model: dict[str, Any] = gbm["model"] if "model" in gbm else gbm["gbtree"]["model"]
    return model


def check_xgb_trees(path: Path, n_features: int | None, n_classes: int,
                    booster: Any) -> dict[str, Any]:
    """Check the trees of ``booster``, the XGBoost model just loaded from ``path``.

    Returns
    -------
    dict
        The learner read (:func:`xgb_learner`), for whoever needs its trees next.
    """
    learner = xgb_learner(booster)
    params = learner["learner_model_param"]
    declared = int(params["num_feature"])
    if declared != (declared if n_features is None else n_features):
        raise ModelFormatError(f"{path.name}: {declared} features; ours have {n_features}")
    if int(params.get("num_class", "0")) != n_classes:
        raise ModelFormatError(f"{path.name}: {params.get('num_class')} classes; expected "
                               f"{n_classes}")
    model = xgb_tree_model(learner)
    for i, tree in enumerate(model["trees"]):
        if any(int(t) != 0 for t in tree.get("split_type", [])):
            raise ModelFormatError(f"{path.name} tree {i}: categorical splits are not ours")
    check_tree_arrays(path.name, [(t["left_children"], t["right_children"], t["split_indices"])
                                  for t in model["trees"]], declared)
    return learner


def parse_lgb_model(text: str, where: str) -> LGBModel:
    """Read a LightGBM model's text (``model_to_string()`` or its file) into an :class:`LGBModel`.

    Inner nodes are 0..n-1 and leaf k is child ``~k``; leaves become nodes n..n+leaves-1
    here, so "each leaf is reached once" is the one-parent rule of :func:`check_tree_arrays`.
    A tree of one leaf is that leaf alone.

    Raises
    ------
    ModelFormatError
        Categorical splits, or node arrays that disagree with ``num_leaves``.
    """
    header: dict[str, str] = {}
    texts: list[dict[str, str]] = []
    for line in text.split("end of trees", 1)[0].splitlines():
        key, sep, value = line.partition("=")
        if key == "Tree":
            texts.append({})
        elif texts:
            if sep and key in _LGB_KEYS:
                texts[-1][key] = value
        else:
            header[key] = value
    trees = []
    for i, tree in enumerate(texts):
        leaves = int(tree["num_leaves"])
        if int(tree.get("num_cat", "0")) != 0:
            raise ModelFormatError(f"{where} tree {i}: categorical splits are not ours")
        n = leaves - 1
        values = [float(x) for x in tree["leaf_value"].split()]
        inner = {k: tree[k].split() if n > 0 else [] for k in
                 ("left_child", "right_child", "split_feature", "threshold", "decision_type")}
        if len(values) != leaves or any(len(v) != n for v in inner.values()):
            raise ModelFormatError(f"{where} tree {i}: node arrays disagree with num_leaves")
        left, right = ([int(c) for c in inner[k]] for k in ("left_child", "right_child"))
        if any(c < 0 and ~c >= leaves for c in left + right):
            raise ModelFormatError(f"{where} tree {i}: a child index is out of range")
        pad = [-1] * leaves
        trees.append(LGBTree(
            left=np.array([c if c >= 0 else n + ~c for c in left] + pad, dtype=np.int64),
            right=np.array([c if c >= 0 else n + ~c for c in right] + pad, dtype=np.int64),
            feature=np.array([int(f) for f in inner["split_feature"]] + pad, dtype=np.int64),
            threshold=np.array([float(t) for t in inner["threshold"]] + [0.0] * leaves),
            decision_type=np.array([int(d) for d in inner["decision_type"]] + [0] * leaves,
                                   dtype=np.int64),
            value=np.array([0.0] * n + values), linear=tree.get("is_linear", "0") != "0"))
    return LGBModel(header, trees)


def check_lgb_trees(path: Path, n_features: int | None, text: str | None = None) -> LGBModel:
    """Check the trees of the LightGBM model file at ``path`` (or ``text``, the loaded booster's
    ``model_to_string()``: what LightGBM parsed, so no parser difference can slip past).

    Returns
    -------
    LGBModel
        The model read (:func:`parse_lgb_model`), for whoever needs its trees next.
    """
    model = parse_lgb_model(path.read_text(encoding="utf-8") if text is None else text,
                            path.name)
    declared = int(model.header.get("max_feature_idx", "-1")) + 1
    if declared != (n_features or max(declared, 1)):
        raise ModelFormatError(f"{path.name}: max_feature_idx "
                               f"{model.header.get('max_feature_idx')}; ours is "
                               f"{(n_features or 1) - 1}")
    check_tree_arrays(path.name, [(t.left, t.right, t.feature) for t in model.trees], declared)
    return model


def check_rf_trees(estimator: Any, head: str, n_features: int | None) -> None:
    """Check the trees of a loaded scikit-learn forest (``head`` names it in messages)."""
    declared = int(getattr(estimator, "n_features_in_", 0))
    if declared < 1 or declared != (n_features or declared):
        raise ModelFormatError(f"{head}: the forest expects {declared} features")
    trees = [e.tree_ for e in estimator.estimators_]
    if any(len(tree.value) != tree.node_count for tree in trees):
        raise ModelFormatError(f"{head}: a tree's node arrays disagree on the node count")
    check_tree_arrays(head, [(t.children_left, t.children_right, t.feature) for t in trees],
                      declared)


