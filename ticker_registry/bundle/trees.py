"""Bounded checks of a bundle's native head files, made before a native library loads them.

Step 4 of :mod:`ticker_registry.bundle`, run in the isolated child
(:mod:`.check`). Each file is read by our own bounded code first, against the
limits of :mod:`.limits`; only a file that passes is handed to XGBoost,
LightGBM or skops:

- XGBoost (``.ubj``): read by :func:`~.ubjson.read_ubjson` (every array's length
  checked before it is read); tree count, node count, per-node array lengths,
  ``tree_info`` groups, no categorical splits;
- LightGBM (``.txt``): lines at most :data:`~.limits.MAX_LGB_LINE_BYTES`,
  ``num_leaves`` checked before a tree's arrays are split; tree count; array lengths;
- scikit-learn via skops (``.skops``, a zip): the central directory's size and
  entry count read from its end record before :mod:`zipfile` parses it, then every
  entry's declared size and compression ratio and the size of ``schema.json``
  before skops reads it; the forest's trees once loaded;
- every tree of all three (:func:`check_tree_arrays`): children in range, each
  node the child of one node (the root of none), every node reachable from the
  root (no detached cycle), depth at most :data:`~.limits.MAX_TREE_DEPTH`.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import tree_check
from ..exceptions import ModelFormatError
from ..tree_check import Tree
from .limits import (
    MAX_LGB_LINE_BYTES,
    MAX_SKOPS_DIRECTORY_BYTES,
    MAX_SKOPS_ENTRIES,
    MAX_SKOPS_SCHEMA_BYTES,
    MAX_TREE_DEPTH,
    MAX_TREE_NODES,
    MAX_TREES,
)
from .manifest import MAX_COMPRESSION_RATIO, MAX_MEMBER_BYTES, RATIO_GRACE_BYTES

__all__ = ["check_lgb_file", "check_rf_forest", "check_skops_file", "check_tree_arrays",
           "check_xgb_file"]

_XGB_NODE_ARRAYS = ("left_children", "right_children", "parents", "split_indices",
                    "split_conditions", "default_left", "base_weights", "loss_changes",
                    "sum_hessian")


def check_tree_arrays(where: str, trees: Sequence[Tree], n_features: int, model_type: str) -> None:
    """Every tree is a tree we could have grown (:func:`ticker_registry.tree_check.check_tree_arrays`
    with the limits of ``model_type``: :data:`MAX_TREES`, :data:`MAX_TREE_NODES`,
    :data:`MAX_TREE_DEPTH`)."""
    tree_check.check_tree_arrays(where, trees, n_features, max_trees=MAX_TREES[model_type],
                            max_nodes=MAX_TREE_NODES[model_type],
                            max_depth=MAX_TREE_DEPTH[model_type], kind=model_type)


# --------------------------------------------------------------------------- xgboost
def check_xgb_file(path: Path, n_features: int, n_classes: int) -> None:
    """Check an XGBoost ``.ubj`` head before XGBoost reads it."""
    from .ubjson import read_ubjson

    where = path.name
    max_items = max(MAX_TREE_NODES["xgboost"], MAX_TREES["xgboost"] + 1)
    with open(path, "rb") as f:
        doc = read_ubjson(f, where=where, max_items=max_items)
    try:
        learner = doc["learner"]
        params = learner["learner_model_param"]
        declared, classes = int(params["num_feature"]), int(params.get("num_class", "0"))
        targets = int(params.get("num_target", "1"))
        gbm = learner["gradient_booster"]
        model = gbm["model"] if "model" in gbm else gbm["gbtree"]["model"]
        trees, tree_info = model["trees"], [int(g) for g in model["tree_info"]]
        num_trees = int(model["gbtree_model_param"]["num_trees"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFormatError(f"{where}: not an XGBoost model of ours ({type(exc).__name__}: "
                               f"{exc})") from None
    if declared != n_features:
        raise ModelFormatError(f"{where}: {declared} features; ours have {n_features}")
    if classes != n_classes or targets != 1:
        raise ModelFormatError(f"{where}: {classes} classes, {targets} targets; expected "
                               f"{n_classes} classes, 1 target")
    if not isinstance(trees, list) or not len(trees) == len(tree_info) == num_trees:
        raise ModelFormatError(f"{where}: the model declares {num_trees} trees, lists "
                               f"{len(trees)} and {len(tree_info)} tree groups")
    if any(not 0 <= g < max(n_classes, 1) for g in tree_info):
        raise ModelFormatError(f"{where}: a tree writes to an output group out of range "
                               f"(0..{max(n_classes, 1) - 1})")
    arrays: list[Tree] = []
    for i, tree in enumerate(trees):
        try:
            n = int(tree["tree_param"]["num_nodes"])
            leaf_size = int(tree["tree_param"].get("size_leaf_vector", "1"))
            node_arrays = [tree[k] for k in _XGB_NODE_ARRAYS]
            categorical = [tree.get(k, ()) for k in ("categories", "categories_nodes")]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelFormatError(f"{where} tree {i}: malformed ({type(exc).__name__}: "
                                   f"{exc})") from None
        if n > MAX_TREE_NODES["xgboost"]:
            raise ModelFormatError(f"{where} tree {i}: {n:,} nodes; an xgboost tree of ours has "
                                   f"at most {MAX_TREE_NODES['xgboost']:,} (MAX_TREE_NODES)")
        if leaf_size > 1:
            raise ModelFormatError(f"{where} tree {i}: vector leaves are not ours")
        if any(len(a) != n for a in node_arrays):
            raise ModelFormatError(f"{where} tree {i}: node arrays disagree on the node count {n}")
        if any(len(c) for c in categorical) or np.any(np.asarray(tree.get("split_type", ())) != 0):
            raise ModelFormatError(f"{where} tree {i}: categorical splits are not ours")
        arrays.append((tree["left_children"], tree["right_children"], tree["split_indices"]))
    check_tree_arrays(where, arrays, n_features, "xgboost")


# --------------------------------------------------------------------------- lightgbm
def check_lgb_file(path: Path, n_features: int, n_classes: int) -> None:
    """Check a LightGBM text head before LightGBM reads it.

    Inner nodes are 0..n-1 and leaf k is child ``~k``; leaves become nodes n..n+leaves-1
    here, so "each leaf is reached once" is the one-parent rule of :func:`check_tree_arrays`.
    """
    where = path.name
    header: dict[str, str] = {}
    trees: list[dict[str, str]] = []
    with open(path, "rb") as f:
        while line := f.readline(MAX_LGB_LINE_BYTES + 1):
            if len(line) > MAX_LGB_LINE_BYTES:
                raise ModelFormatError(f"{where}: a line longer than {MAX_LGB_LINE_BYTES:,} "
                                       "bytes (MAX_LGB_LINE_BYTES)")
            key, sep, value = line.decode("utf-8", "replace").rstrip("\r\n").partition("=")
            if not sep:
                if key == "end of trees":
                    break
                continue
            if key == "Tree":
                if len(trees) >= MAX_TREES["lightgbm"]:
                    raise ModelFormatError(f"{where}: more than {MAX_TREES['lightgbm']:,} trees; "
                                           "a lightgbm head of ours has at most that (MAX_TREES)")
                trees.append({})
            elif trees:
                trees[-1][key] = value
            else:
                header[key] = value
    try:
        declared = int(header.get("max_feature_idx", "-1")) + 1
        classes = int(header.get("num_class", "1"))
    except ValueError as exc:
        raise ModelFormatError(f"{where}: a malformed header ({exc})") from None
    if declared != n_features:
        raise ModelFormatError(f"{where}: max_feature_idx {declared - 1}; ours is {n_features - 1}")
    if classes != max(n_classes, 1):
        raise ModelFormatError(f"{where}: {classes} classes; expected {max(n_classes, 1)}")
    max_leaves = (MAX_TREE_NODES["lightgbm"] + 1) // 2
    unified: list[Tree] = []
    for i, tree in enumerate(trees):
        try:
            leaves = int(tree["num_leaves"])
            if leaves > max_leaves:
                raise ModelFormatError(f"{where} tree {i}: {leaves:,} leaves; a lightgbm tree of "
                                       f"ours has at most {max_leaves:,} (num_leaves bound)")
            if int(tree.get("num_cat", "0")) != 0:
                raise ModelFormatError(f"{where} tree {i}: categorical splits are not ours")
            if leaves < 2:
                continue
            n = leaves - 1
            left, right, feature = (np.array(tree[k].split(), dtype=np.int64) for k in
                                    ("left_child", "right_child", "split_feature"))
            lengths = [len(tree[k].split()) for k in ("threshold", "decision_type")]
            lengths.append(len(tree["leaf_value"].split()) - 1)
        except (KeyError, ValueError, OverflowError) as exc:
            raise ModelFormatError(f"{where} tree {i}: malformed ({type(exc).__name__}: "
                                   f"{exc})") from None
        if not len(left) == len(right) == len(feature) == n or any(x != n for x in lengths):
            raise ModelFormatError(f"{where} tree {i}: node arrays disagree with num_leaves")
        if ((left < -leaves) | (right < -leaves)).any():
            raise ModelFormatError(f"{where} tree {i}: a child index is out of range")
        pad = np.full(leaves, -1, dtype=np.int64)
        unified.append((np.concatenate([np.where(left >= 0, left, n + ~left), pad]),
                        np.concatenate([np.where(right >= 0, right, n + ~right), pad]),
                        np.concatenate([feature, pad])))
    check_tree_arrays(where, unified, n_features, "lightgbm")


# --------------------------------------------------------------------------- skops
def check_skops_file(path: Path) -> None:
    """Check a skops zip's directory, entry sizes and ``schema.json`` before skops reads it."""
    where = path.name
    entries, directory = _zip_directory_size(path)
    if entries > MAX_SKOPS_ENTRIES or directory > MAX_SKOPS_DIRECTORY_BYTES:
        raise ModelFormatError(f"{where}: its zip directory lists {entries:,} entries in "
                               f"{directory:,} bytes; a skops file of ours has at most "
                               f"{MAX_SKOPS_ENTRIES:,} (MAX_SKOPS_ENTRIES)")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ModelFormatError(f"{where}: not a readable zip ({exc})") from None
    if len(infos) > MAX_SKOPS_ENTRIES:
        raise ModelFormatError(f"{where}: {len(infos):,} zip entries; at most "
                               f"{MAX_SKOPS_ENTRIES:,} (MAX_SKOPS_ENTRIES)")
    schema = next((i for i in infos if i.filename == "schema.json"), None)
    if schema is None:
        raise ModelFormatError(f"{where}: no schema.json; not a skops file")
    if schema.file_size > MAX_SKOPS_SCHEMA_BYTES:
        raise ModelFormatError(f"{where}: its schema.json is {schema.file_size:,} bytes; a skops "
                               f"file of ours has at most {MAX_SKOPS_SCHEMA_BYTES:,} "
                               "(MAX_SKOPS_SCHEMA_BYTES)")
    total = 0
    for info in infos:
        if (info.file_size > RATIO_GRACE_BYTES
                and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1)):
            raise ModelFormatError(f"{where}: zip entry {info.filename[:80]!r} decompresses "
                                   f"{info.compress_size:,} bytes to {info.file_size:,}, a "
                                   f"compression ratio above {MAX_COMPRESSION_RATIO}:1 (a "
                                   "decompression bomb?)")
        total += info.file_size
    if total > MAX_MEMBER_BYTES:
        raise ModelFormatError(f"{where}: its zip entries hold {total:,} bytes decompressed; at "
                               f"most {MAX_MEMBER_BYTES:,} (MAX_MEMBER_BYTES, as a head file)")


def _zip_directory_size(path: Path) -> tuple[int, int]:
    """``(entries, central directory bytes)`` from the zip's end records, as zipfile finds them."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(size - (1 << 16) - 22, 0))
        tail = f.read()
    # zipfile's own search: the last 22 bytes, else the last end-record signature
    at = len(tail) - 22 if tail[-22:-18] == b"PK\x05\x06" else tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise ModelFormatError(f"{path.name}: not a zip (no end of central directory record)")
    entries, directory = struct.unpack("<2xHL", tail[at + 8:at + 16])
    locator = at - 20
    if locator >= 0 and tail[locator:locator + 4] == b"PK\x06\x07":  # zip64: just before
        record = locator - 56
        if record < 0 or tail[record:record + 4] != b"PK\x06\x06":
            raise ModelFormatError(f"{path.name}: a zip64 end record that cannot be read here")
        entries, directory = struct.unpack("<QQ", tail[record + 32:record + 48])
    return entries, directory


def check_rf_forest(estimator: Any, head: str, n_features: int) -> None:
    """Check the trees of a loaded scikit-learn forest (``head`` names it in messages)."""
    if getattr(estimator, "n_features_in_", None) != n_features:
        raise ModelFormatError(f"{head}: the forest expects "
                               f"{getattr(estimator, 'n_features_in_', None)} features")
    trees = [e.tree_ for e in estimator.estimators_]
    if any(len(t.value) != t.node_count for t in trees):
        raise ModelFormatError(f"{head}: a tree's node arrays disagree on the node count")
    check_tree_arrays(head, [(t.children_left, t.children_right, t.feature) for t in trees],
                      n_features, "random_forest")
