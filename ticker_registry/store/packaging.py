"""The MLflow model directory of a version: a pyfunc saved with "models from code".

What MLflow loads, and all it needs besides mlflow, numpy, pandas and the
head's library::

    MLmodel                       python_function flavor (loader code_model, code: code),
                                  signature, model_id / run_id of the LoggedModel
    pyfunc_model.py               our wrapper (ticker_registry/store/pyfunc_model.py), run on load
    code/order_flow_portable/     the serving code: byte copies of SHIPPED_MODULES
                                  plus an __init__.py (MLflow code_paths)
    artifacts/order_flow_model/   model.json and the three native heads
    requirements.txt, python_env.yaml, conda.yaml
                                  exact pins of mlflow, numpy, pandas and the head's
                                  library only (xgboost, lightgbm, or scikit-learn +
                                  skops): all on PyPI, nothing of ours
    input_example.json, serving_input_example.json

The signature declares every column of both inputs (features, raw trades,
quotes) as optional and of any type: MLflow checks no dtype (an int64
column of a double feature would be refused) and the wrapper validates,
naming the column (:mod:`ticker_registry.served`).

Everything but the heads and ``MLmodel``'s identity is the same for every
version of a model type, and MLflow's ``save_model`` spends ~30 ms producing
it (requirement checks, YAML, example validation), so it runs once per
process and model type, in a temporary directory that is removed at once;
its files are kept in memory and written for each version. No pickle is
written and nothing is left in the temporary directory.
"""

from __future__ import annotations

import copy
import tempfile
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ..model import OrderFlowModel, package_versions

__all__ = ["ARTIFACT_KEY", "NATIVE_SUBDIR", "PORTABLE_PACKAGE", "SHIPPED_MODULES",
           "local_artifact_dir", "pip_requirements", "save_pyfunc", "shipped_files"]

# The wrapper (pyfunc_model.py) defines these too: it runs where this package is not
# installed, and importing it here would import mlflow with the package. A test keeps
# the two equal.
#: Key of the native model directory in the pyfunc's ``artifacts``.
ARTIFACT_KEY = "order_flow_model"
#: Folder name of the serving code inside a version's ``code/`` directory.
PORTABLE_PACKAGE = "order_flow_portable"

#: The package's modules that ship inside every version, as ``code/order_flow_portable/``.
SHIPPED_MODULES: tuple[str, ...] = ("exceptions.py", "timestamps.py", "live_features.py",
                                    "features.py", "tree_check.py", "flat_trees.py", "heads.py",
                                    "served.py")
#: Where the native model lives inside a version's model directory.
NATIVE_SUBDIR = f"artifacts/{ARTIFACT_KEY}"
_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # ticker_registry/
_INIT = b'''"""ticker-registry's serving code, carried by this model version (MLflow code_paths).

Byte copies of ticker_registry's exceptions, timestamps, live_features, features, tree_check,
flat_trees, heads and served modules; the version's wrapper (pyfunc_model.py) imports this
package.
"""

from . import (  # noqa: F401
    exceptions, features, flat_trees, heads, live_features, served, timestamps, tree_check)
'''
#: The pip packages each model type needs at serving time, besides mlflow, numpy and pandas.
_HEAD_PACKAGES = {"xgboost": ("xgboost",), "lightgbm": ("lightgbm",),
                  "random_forest": ("scikit-learn", "skops")}


def local_artifact_dir(artifact_uri: str) -> Path | None:
    """The folder of a ``file:`` artifact URI (the embedded store), else None."""
    if not artifact_uri.startswith("file:"):
        return None
    from mlflow.utils.file_utils import local_file_uri_to_path

    return Path(local_file_uri_to_path(artifact_uri))


def shipped_files() -> dict[str, bytes]:
    """The serving package as it ships: relative path inside ``code/`` -> bytes."""
    files = {f"{PORTABLE_PACKAGE}/__init__.py": _INIT}
    for name in SHIPPED_MODULES:
        files[f"{PORTABLE_PACKAGE}/{name}"] = (_PACKAGE_DIR / name).read_bytes()
    return files


def pip_requirements(model_type: str) -> list[str]:
    """Exact pins of what a version of ``model_type`` needs to load and serve (all on PyPI)."""
    versions = package_versions()
    names = ("mlflow", *_HEAD_PACKAGES[model_type], "numpy", "pandas")
    return [f"{n}=={versions[n]}" for n in names if versions.get(n, "not installed") != "not installed"]


@dataclass(frozen=True)
class _Skeleton:
    """Every file of a model directory but the native heads, and MLmodel as a dict."""

    files: dict[str, bytes]
    mlmodel: dict[str, Any]


_SKELETONS: dict[tuple[str, ...], _Skeleton] = {}
_SKELETON_LOCK = threading.Lock()


def save_pyfunc(model: OrderFlowModel, path: Path, *, model_id: str | None = None,
                run_id: str | None = None, artifact_uri: str | None = None) -> Path:
    """Write ``model`` as an MLflow pyfunc directory at ``path`` ("models from code", no pickle).

    ``model_id``, ``run_id`` and ``artifact_uri`` (the LoggedModel's artifact
    location) go into ``MLmodel`` as MLflow's own ``log_model`` records them.
    """
    from mlflow.models import Model

    key = (model.config.model_type, *pip_requirements(model.config.model_type))
    with _SKELETON_LOCK:
        skeleton = _SKELETONS.get(key)
        if skeleton is None:
            skeleton = _SKELETONS[key] = _build_skeleton(model, list(key[1:]))
    path.mkdir(parents=True, exist_ok=True)
    made: set[Path] = set()
    for rel, data in skeleton.files.items():
        target = path / rel
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        target.write_bytes(data)
    model.save(path / NATIVE_SUBDIR)
    meta = Model.from_dict(copy.deepcopy(skeleton.mlmodel))
    meta.model_uuid = model_id or uuid.uuid4().hex
    meta.model_id = model_id
    meta.run_id = run_id
    meta.artifact_path = artifact_uri
    meta.utc_time_created = str(datetime.now(UTC).replace(tzinfo=None))
    meta.model_size_bytes = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    meta.save(str(path / "MLmodel"))
    return path


def _build_skeleton(model: OrderFlowModel, requirements: list[str]) -> _Skeleton:
    """Save one version with MLflow in a temporary directory and keep its files in memory."""
    import mlflow.pyfunc
    from mlflow.models import Model

    from . import pyfunc_model

    with tempfile.TemporaryDirectory(prefix="ticker-registry-pyfunc-") as tmp:
        stage = Path(tmp)
        native = stage / ARTIFACT_KEY  # the artifact folder keeps this (fixed) name
        model.save(native)
        for rel, data in shipped_files().items():
            (stage / "code_paths" / rel).parent.mkdir(parents=True, exist_ok=True)
            (stage / "code_paths" / rel).write_bytes(data)
        target = stage / "model"
        mlflow.pyfunc.save_model(str(target), python_model=pyfunc_model.__file__,
                                 artifacts={ARTIFACT_KEY: str(native)},
                                 code_paths=[str(stage / "code_paths" / PORTABLE_PACKAGE)],
                                 signature=_signature(), input_example=_input_example(),
                                 pip_requirements=requirements)
        files = {}
        for file in sorted(target.rglob("*")):
            rel = file.relative_to(target).as_posix()
            if (not file.is_file() or rel == "MLmodel" or rel.startswith(f"{NATIVE_SUBDIR}/")
                    or "__pycache__" in file.parts):
                continue
            files[rel] = file.read_bytes()
        mlmodel = Model.load(str(target / "MLmodel")).to_dict()
    return _Skeleton(files, mlmodel)


def _signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    from mlflow.types.schema import AnyType

    from ..features import FEATURE_NAMES, FLOW_TYPES
    from ..served import HEADS, QUOTE_COLUMNS, TRADE_COLUMNS

    inputs: list[Any] = [ColSpec(AnyType(), name, required=False)
                         for name in (*FEATURE_NAMES, *TRADE_COLUMNS, *QUOTE_COLUMNS)]
    return ModelSignature(
        inputs=Schema(inputs),
        outputs=Schema([ColSpec("string", "flow_type"),
                        *[ColSpec("double", f"p_{c}") for c in FLOW_TYPES],
                        ColSpec("double", "impact"), ColSpec("double", "time_to_execution"),
                        *[ColSpec("string", f"{h}_source") for h in HEADS]]))


def _input_example() -> pd.DataFrame:
    from ..features import FEATURE_NAMES

    return pd.DataFrame([[0.0] * len(FEATURE_NAMES)], columns=list(FEATURE_NAMES))
