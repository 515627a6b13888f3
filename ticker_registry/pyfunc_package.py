"""The MLflow model directory of a version: a pyfunc saved with "models from code".

The directory holds MLflow's ``MLmodel``, our wrapper file
(:mod:`ticker_registry.pyfunc_model`, executed by MLflow on load), the
signature and input example, pinned pip requirements (given explicitly: no
inference at log time) and the three native heads under
``artifacts/order_flow_model``. No pickle is written.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from .model import OrderFlowModel, package_versions

__all__ = ["local_artifact_dir", "save_pyfunc"]


def local_artifact_dir(artifact_uri: str) -> Path | None:
    """The folder of a ``file:`` artifact URI (the embedded store), else None."""
    if not artifact_uri.startswith("file:"):
        return None
    from mlflow.utils.file_utils import local_file_uri_to_path

    return Path(local_file_uri_to_path(artifact_uri))


_SKELETONS: dict[tuple[str, ...], Path] = {}
_SKELETON_LOCK = threading.Lock()


def save_pyfunc(model: OrderFlowModel, path: Path) -> Path:
    """Save ``model`` as an MLflow pyfunc directory ("models from code", no pickle).

    Everything but the native heads is the same for every version (our
    wrapper file, signature, input example, pinned requirements), and MLflow's
    ``save_model`` spends ~30 ms producing it (requirement checks against the
    installed packages, YAML, example validation, an artifact copy). So it
    runs once per process and requirement set; each version copies that
    skeleton, writes its own heads and gets a fresh ``MLmodel`` identity.
    """
    from mlflow.models import Model

    from . import pyfunc_model

    key = (model.config.model_type, *_pip_requirements())
    with _SKELETON_LOCK:
        skeleton = _SKELETONS.get(key)
        if skeleton is None or not (skeleton / "MLmodel").is_file():
            skeleton = Path(tempfile.mkdtemp(prefix="ticker-registry-pyfunc-")) / "model"
            _save_pyfunc_with_mlflow(model, skeleton)
            _SKELETONS[key] = skeleton
    native = skeleton / "artifacts" / pyfunc_model.ARTIFACT_KEY
    shutil.copytree(skeleton, path, ignore=lambda d, names: names if Path(d) == native else [])
    model.save(path / "artifacts" / pyfunc_model.ARTIFACT_KEY)
    meta = Model.load(str(path / "MLmodel"))
    meta.model_uuid = uuid.uuid4().hex
    meta.utc_time_created = str(datetime.now(UTC).replace(tzinfo=None))
    meta.model_size_bytes = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    meta.save(str(path / "MLmodel"))
    return path


def _save_pyfunc_with_mlflow(model: OrderFlowModel, path: Path) -> Path:
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from . import pyfunc_model
    from .evaluation import HEADS
    from .features import FEATURE_NAMES, FLOW_TYPES

    with tempfile.TemporaryDirectory(prefix="ticker-registry-stage-") as stage:
        native = Path(stage) / pyfunc_model.ARTIFACT_KEY  # fixed folder name inside the model
        model.save(native)
        signature = ModelSignature(
            inputs=Schema([ColSpec("double", n) for n in FEATURE_NAMES]),
            outputs=Schema([ColSpec("string", "flow_type"),
                            *[ColSpec("double", f"p_{c}") for c in FLOW_TYPES],
                            ColSpec("double", "impact"), ColSpec("double", "time_to_execution"),
                            *[ColSpec("string", f"{h}_source") for h in HEADS]]))
        example = pd.DataFrame([[0.0] * len(FEATURE_NAMES)], columns=list(FEATURE_NAMES))
        mlflow.pyfunc.save_model(str(path), python_model=pyfunc_model.__file__,
                                 artifacts={pyfunc_model.ARTIFACT_KEY: str(native)},
                                 signature=signature, input_example=example,
                                 pip_requirements=_pip_requirements())
    return path


def _pip_requirements() -> list[str]:
    versions = package_versions()
    pins = {"mlflow": "mlflow", "xgboost": "xgboost", "lightgbm": "lightgbm",
            "scikit-learn": "scikit-learn", "skops": "skops", "pandas": "pandas", "numpy": "numpy"}
    reqs = [f"{pkg}=={versions[key]}" for key, pkg in pins.items()
            if versions.get(key, "not installed") != "not installed"]
    return [f"ticker-registry=={versions['ticker-registry']}", *reqs]
