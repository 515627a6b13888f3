"""The isolated test load: tree sanity checks, load and predict, in a child process.

Step 4 of :mod:`ticker_registry.bundle`. A crafted tree file can crash the
process that predicts with it, so the parent only reads the child's one-line
JSON report.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..exceptions import BundleError, ModelFormatError
from ..features import FEATURE_NAMES
from ..heads import HEAD_SUFFIX, skops_trusted
from ..model import HEADS, OrderFlowModel, read_model_manifest
from .manifest import MAX_MEMBER_BYTES, _first_line

CHECK_TIMEOUT = 120.0  #: seconds for the subprocess test load

_CHILD = ("import sys; sys.path.insert(0, sys.argv[1]); "
          "from ticker_registry.bundle.check import _check_main; "
          "sys.exit(_check_main(sys.argv[2:]))")


def check_in_subprocess(directory: Path, *, label: str = "model directory",
                        timeout: float = CHECK_TIMEOUT) -> list[float]:
    """Load and test-predict the native model in ``directory`` in a separate Python process.

    Returns the predictions of a zero feature row. A crash, a timeout or a
    refusal in the child raises :class:`BundleError`.
    """
    # our own code, not the bundle's: the directory holding ticker_registry/bundle/check.py
    root = str(Path(__file__).resolve().parents[2])
    cmd = [sys.executable, "-I", "-c", _CHILD, root, "--check", str(directory)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, cwd=directory, env=env,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise BundleError(f"{label} is refused: loading its models did not finish within "
                          f"{timeout:.0f} s in the isolated test load") from None
    lines = proc.stdout.decode("utf-8", "replace").strip().splitlines()
    try:
        report = json.loads(lines[-1]) if lines else {}
    except ValueError:
        report = {}
    if proc.returncode < 0:
        try:
            sig = signal.Signals(-proc.returncode).name
        except ValueError:
            sig = f"signal {-proc.returncode}"
        raise BundleError(f"{label} is refused: the isolated test load of its models crashed "
                          f"({sig}); a crafted or damaged tree file can do this")
    if not isinstance(report, dict) or not report.get("ok"):
        reason = report.get("error") if isinstance(report, dict) else None
        if not reason:
            tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
            reason = f"exit code {proc.returncode}: {' '.join(tail)[:300]}"
        raise BundleError(f"{label} is refused by the isolated test load: {reason}")
    prediction = report.get("prediction")
    if not isinstance(prediction, list):
        raise BundleError(f"{label} is refused: the isolated test load returned no prediction")
    return [float(x) for x in prediction]


def _check_main(argv: list[str]) -> int:
    """Entry point of the child: ``--check DIR``; prints one JSON line."""
    if len(argv) != 2 or argv[0] != "--check":
        print(json.dumps({"ok": False, "error": "usage: python -m ticker_registry.bundle "
                                                "--check DIR"}))
        return 2
    try:
        prediction = check_model_directory(Path(argv[1]))
    except Exception as exc:  # report every failure as data; the parent decides
        print(json.dumps({"ok": False, "error": f"{_first_line(exc)}"}))
        return 3
    print(json.dumps({"ok": True, "prediction": prediction}))
    return 0


def check_model_directory(directory: Path) -> list[float]:
    """Tree sanity checks, load, and a prediction on a zero row (run in the child process)."""
    import numpy as np

    manifest = read_model_manifest(directory)
    model_type = manifest["model_type"]
    n_features = len(FEATURE_NAMES)
    for head in HEADS:
        path = directory / f"{head}{HEAD_SUFFIX[model_type]}"
        n_classes = 3 if head == "flow_type" else 0
        if model_type == "xgboost":
            _check_xgb_trees(path, n_features, n_classes)
        elif model_type == "lightgbm":
            _check_lgb_trees(path, n_features)
        else:
            _check_skops_file(path)
    model = OrderFlowModel.load(directory, n_jobs=1)
    if model_type == "random_forest":
        for head in HEADS:
            _check_rf_trees(model.heads_[head].estimator, head, n_features)  # type: ignore[attr-defined]
    out = model.predict_matrix(np.zeros((1, n_features)))
    if out.shape != (1, 5) or not np.isfinite(out).all():
        raise ModelFormatError(f"the model predicts {out!r} for a zero row; expected 5 finite "
                               "numbers")
    return [float(x) for x in out[0]]


def _check_index_arrays(where: str, left: Any, right: Any, feature: Any, n_nodes: int,
                        n_features: int, leaf: int) -> None:
    import numpy as np

    left, right, feature = (np.asarray(a, dtype=np.int64) for a in (left, right, feature))
    if not (len(left) == len(right) == len(feature) == n_nodes) or n_nodes < 1:
        raise ModelFormatError(f"{where}: node arrays disagree on the node count {n_nodes}")
    is_leaf = left == leaf
    if not np.array_equal(is_leaf, right == leaf):
        raise ModelFormatError(f"{where}: a node has only one child")
    inner = ~is_leaf
    if ((left[inner] <= 0) | (left[inner] >= n_nodes) | (right[inner] <= 0)
            | (right[inner] >= n_nodes)).any():
        raise ModelFormatError(f"{where}: a child index is out of range (0..{n_nodes - 1})")
    if ((feature[inner] < 0) | (feature[inner] >= n_features)).any():
        raise ModelFormatError(f"{where}: a split feature index is out of range "
                               f"(0..{n_features - 1})")
    _check_single_parents(where, np.concatenate([left[inner], right[inner]]), n_nodes)


#: Most nodes one tree may have: far above what the hyperparameter bounds can grow
#: (xgboost depth <= 16, lightgbm <= 4096 leaves) and what a default forest holds.
MAX_TREE_NODES = 1 << 20


def _check_single_parents(where: str, children: Any, n_nodes: int) -> None:
    """Every node but the root is the child of exactly one node; the root of none.

    With that, following children from the root can never come back to a node, so a
    crafted cycle (a child pointing at an ancestor) cannot make a prediction loop for ever.
    """
    import numpy as np

    if n_nodes > MAX_TREE_NODES:
        raise ModelFormatError(f"{where}: {n_nodes:,} nodes; a tree of ours has at most "
                               f"{MAX_TREE_NODES:,}")
    parents = np.bincount(np.asarray(children, dtype=np.int64), minlength=n_nodes)
    if parents[0] != 0 or (parents[1:] != 1).any():
        raise ModelFormatError(f"{where}: the nodes do not form a tree (a node is the child of "
                               "several nodes, of none, or the root is a child: a cycle)")


def _check_xgb_trees(path: Path, n_features: int, n_classes: int) -> None:
    import xgboost as xgb

    doc = json.loads(bytes(xgb.Booster(model_file=str(path)).save_raw("json")))
    learner = doc["learner"]
    params = learner["learner_model_param"]
    if int(params["num_feature"]) != n_features:
        raise ModelFormatError(f"{path.name}: {params['num_feature']} features; ours have "
                               f"{n_features}")
    if int(params.get("num_class", "0")) != n_classes:
        raise ModelFormatError(f"{path.name}: {params.get('num_class')} classes; expected "
                               f"{n_classes}")
    booster = learner["gradient_booster"]
    model = booster["model"] if "model" in booster else booster["gbtree"]["model"]
    for i, tree in enumerate(model["trees"]):
        n = int(tree["tree_param"]["num_nodes"])
        if any(int(t) != 0 for t in tree.get("split_type", [])):
            raise ModelFormatError(f"{path.name} tree {i}: categorical splits are not ours")
        _check_index_arrays(f"{path.name} tree {i}", tree["left_children"],
                            tree["right_children"], tree["split_indices"], n, n_features, -1)


def _check_lgb_trees(path: Path, n_features: int) -> None:
    header: dict[str, str] = {}
    trees: list[dict[str, str]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            key, sep, value = line.rstrip("\n").partition("=")
            if not sep:
                if key == "end of trees":
                    break
                continue
            if key == "Tree":
                trees.append({})
            elif trees:
                trees[-1][key] = value
            else:
                header[key] = value
    if int(header.get("max_feature_idx", "-1")) != n_features - 1:
        raise ModelFormatError(f"{path.name}: max_feature_idx {header.get('max_feature_idx')}; "
                               f"ours is {n_features - 1}")
    for i, tree in enumerate(trees):
        leaves = int(tree["num_leaves"])
        if int(tree.get("num_cat", "0")) != 0:
            raise ModelFormatError(f"{path.name} tree {i}: categorical splits are not ours")
        if leaves < 2:
            continue
        ints = {k: [int(x) for x in tree[k].split()] for k in
                ("split_feature", "left_child", "right_child")}
        n = leaves - 1
        if not all(len(v) == n for v in ints.values()):
            raise ModelFormatError(f"{path.name} tree {i}: node arrays disagree with num_leaves")
        for child in ints["left_child"] + ints["right_child"]:
            if not (0 < child < n if child >= 0 else ~child < leaves):
                raise ModelFormatError(f"{path.name} tree {i}: a child index is out of range")
        children = ints["left_child"] + ints["right_child"]
        _check_single_parents(f"{path.name} tree {i} (inner nodes)",
                              [c for c in children if c >= 0], n)
        leaf_refs = sorted(~c for c in children if c < 0)
        if leaf_refs != list(range(leaves)):
            raise ModelFormatError(f"{path.name} tree {i}: the leaves are not each reached once")
        if any(not 0 <= s < n_features for s in ints["split_feature"]):
            raise ModelFormatError(f"{path.name} tree {i}: a split feature index is out of range")


def _check_skops_file(path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(path) as archive:
        entries = archive.infolist()
    if len(entries) > 100_000 or sum(e.file_size for e in entries) > 4 * MAX_MEMBER_BYTES:
        raise ModelFormatError(f"{path.name}: its zip holds too many or too large entries")
    skops_trusted(path)  # the loader's own allow-list decision, before anything is loaded


def _check_rf_trees(estimator: Any, head: str, n_features: int) -> None:
    if getattr(estimator, "n_features_in_", None) != n_features:
        raise ModelFormatError(f"{head}: the forest expects {estimator.n_features_in_} features")
    for i, tree_estimator in enumerate(estimator.estimators_):
        tree = tree_estimator.tree_
        _check_index_arrays(f"{head} tree {i}", tree.children_left, tree.children_right,
                            tree.feature, int(tree.node_count), n_features, -1)
