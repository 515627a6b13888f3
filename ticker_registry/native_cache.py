"""The on-disk cache of versions' native model files: one layout, one module.

A version's files are downloaded once into
``<models_dir>/cache/<model name>/<version>-<run id>/`` (keyed by run too: a
deleted and re-created registered model restarts at version 1), through a
temporary folder renamed into place, so a reader never sees half a download.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .records import VersionInfo
from .store.packaging import ARTIFACT_KEY, NATIVE_SUBDIR

if TYPE_CHECKING:
    from .store import MlflowStore

__all__ = ["cache_root", "drop", "entry_dir", "fetch"]


def cache_root(models_dir: Path) -> Path:
    return Path(models_dir) / "cache"


def entry_dir(root: Path, name: str, version: int, run_id: str | None) -> Path:
    """Where version ``version`` (made by ``run_id``) of model ``name`` is cached."""
    return Path(root) / name / f"{int(version)}-{run_id}"


def fetch(store: MlflowStore, info: VersionInfo, root: Path) -> Path:
    """The local folder of ``info``'s native model, downloaded into ``root`` once.

    Read from the version's source (its LoggedModel's artifacts; for versions
    registered before LoggedModels, the run's ``model/`` artifact): the native
    files are at ``<source>/artifacts/order_flow_model`` in both.
    """
    target = entry_dir(root, info.name, info.version, info.run_id)
    if (target / "model.json").is_file():
        return target
    Path(root).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=root))
    try:
        store.download(f"{info.source.rstrip('/')}/{NATIVE_SUBDIR}", tmp)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(tmp / ARTIFACT_KEY, target)
        except OSError:
            if not (target / "model.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def drop(models_dir: Path, name: str, version: int | None = None,
         run_id: str | None = None) -> None:
    """Forget a cached version (or, without ``version``, every version of ``name``)."""
    root = cache_root(models_dir)
    folder = root / name if version is None else entry_dir(root, name, version, run_id)
    shutil.rmtree(folder, ignore_errors=True)
