"""The limits an imported bundle's content is held to, each derived from what we can produce.

A limit is checked before the thing it bounds is parsed or allocated (an array's
declared length before its items, a zip entry's declared size before it is
decompressed), so a hostile file is refused at the cost of reading its headers.
Each is derived from a bound we already enforce on training
(:data:`~ticker_registry.hyperparameters.HYPERPARAMETER_BOUNDS`) or from the
size of what our own writer produces, with a margin, so a model trained by
ticker-registry within its bounds always passes.

========================================  ====================================================
limit                                     derived from
========================================  ====================================================
:data:`MAX_TREES` (xgboost, lightgbm)     n_estimators <= 5000, times 3 classes: 15,000 a head
:data:`MAX_TREES` (random_forest)         n_estimators <= 2000
:data:`MAX_TREE_DEPTH` (xgboost)          max_depth <= 16
:data:`MAX_TREE_DEPTH` (lightgbm)         num_leaves <= 4096: a chain of 4095 splits at most
:data:`MAX_TREE_DEPTH` (random_forest)    max_depth <= 40
:data:`MAX_TREE_NODES` (xgboost)          2 ** (16 + 1) - 1 = 131,071 (a full tree of depth 16)
:data:`MAX_TREE_NODES` (lightgbm)         4095 splits + 4096 leaves = 8,191
:data:`MAX_TREE_NODES` (random_forest)    2 ** 20 (depth alone allows 2 ** 41: the data bounds it)
:data:`MAX_SKOPS_SCHEMA_BYTES`            32 KiB a tree (ours: ~18 KiB) x 2000 trees + 1 MiB
:data:`MAX_SKOPS_ENTRIES`                 8 entries a tree (ours: 5) x 2000 trees + 64
========================================  ====================================================
"""

from __future__ import annotations

from ..features import FLOW_TYPES
from ..hyperparameters import HYPERPARAMETER_BOUNDS

__all__ = ["MAX_KEY_CHARS", "MAX_LGB_LINE_BYTES", "MAX_METRICS", "MAX_METRIC_MAGNITUDE",
           "MAX_SKOPS_DIRECTORY_BYTES", "MAX_SKOPS_ENTRIES", "MAX_SKOPS_SCHEMA_BYTES",
           "MAX_TREES", "MAX_TREE_DEPTH", "MAX_TREE_NODES",
           "MAX_UBJ_NESTING", "MAX_UBJ_STRING_BYTES", "RESERVED_KEY_PREFIXES"]


def _upper(model_type: str, name: str) -> int:
    return int(HYPERPARAMETER_BOUNDS[model_type][name][2])


_MiB = 1 << 20
_CLASSES = len(FLOW_TYPES)  # a boosted classifier grows one tree per class and round

# --------------------------------------------------------------------------- trees
#: Most trees one head may hold, per model type.
MAX_TREES: dict[str, int] = {
    "xgboost": _upper("xgboost", "n_estimators") * _CLASSES,
    "lightgbm": _upper("lightgbm", "n_estimators") * _CLASSES,
    "random_forest": _upper("random_forest", "n_estimators"),
}
#: Deepest leaf (root at depth 0) a tree may have, per model type.
MAX_TREE_DEPTH: dict[str, int] = {
    "xgboost": _upper("xgboost", "max_depth"),
    "lightgbm": _upper("lightgbm", "num_leaves") - 1,
    "random_forest": _upper("random_forest", "max_depth"),
}
#: Most nodes (splits and leaves) one tree may have, per model type.
MAX_TREE_NODES: dict[str, int] = {
    "xgboost": 2 ** (MAX_TREE_DEPTH["xgboost"] + 1) - 1,
    "lightgbm": 2 * _upper("lightgbm", "num_leaves") - 1,
    "random_forest": 1 << 20,
}
#: Longest line of a LightGBM model file read (a 4096-leaf tree's longest line is ~100 KiB).
MAX_LGB_LINE_BYTES = _MiB
#: Deepest nesting of containers in an XGBoost UBJSON file (ours: 6).
MAX_UBJ_NESTING = 32
#: Longest string in an XGBoost UBJSON file (ours: a few hundred bytes).
MAX_UBJ_STRING_BYTES = _MiB

# --------------------------------------------------------------------------- skops (zip)
#: Largest ``schema.json`` inside a skops file; read and parsed whole by skops.
MAX_SKOPS_SCHEMA_BYTES = 32 * 1024 * MAX_TREES["random_forest"] + _MiB
#: Most entries in a skops zip.
MAX_SKOPS_ENTRIES = 8 * MAX_TREES["random_forest"] + 64
#: Largest central directory of a skops zip (read before any entry): 512 bytes an entry.
#: (All entries together, decompressed, are held to ``MAX_MEMBER_BYTES``, the cap of the
#: file itself: skops stores them uncompressed. Each entry's compression ratio is held to
#: ``MAX_COMPRESSION_RATIO``, as the bundle's.)
MAX_SKOPS_DIRECTORY_BYTES = 512 * MAX_SKOPS_ENTRIES

# --------------------------------------------------------------------------- metrics, keys
#: Most metrics a bundle may carry (manifest and model.json each); ours write about 30.
MAX_METRICS = 200
#: Largest magnitude of a metric (ours: losses, skills, counts; a z-score is clipped to 1e9).
MAX_METRIC_MAGNITUDE = 1e12
#: Longest tag, metric or param key MLflow accepts.
MAX_KEY_CHARS = 250
#: Key prefixes MLflow reserves for itself (e.g. ``mlflow.prompt.is_prompt`` turns a model
#: version into a prompt); a bundle may not write them.
RESERVED_KEY_PREFIXES = ("mlflow.",)
