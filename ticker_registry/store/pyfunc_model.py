"""The MLflow pyfunc wrapper of an order-flow model, saved with "models from code".

MLflow copies this file into each model version and executes it when the
version is loaded with ``mlflow.pyfunc.load_model`` (no cloudpickle). It
imports only the standard library, mlflow, pandas and the serving code the
version carries in ``code/order_flow_portable`` (MLflow ``code_paths``: a
copy of :mod:`ticker_registry.served` and the modules it imports), so the
version loads and serves where ticker-registry is not installed.

The shipped package is imported from the version's own folder under a name
made from its content, not as ``order_flow_portable`` from ``sys.path``: two
versions carrying different code can be loaded in one process and each runs
its own. A bundle's copy of this file is never used: on import we write ours.

Input: a frame of the feature columns, or of raw trades (see
:mod:`ticker_registry.served`). A request that does not fit raises an
``MlflowException`` (``INVALID_PARAMETER_VALUE``, HTTP 400 from ``mlflow
models serve``) whose message is one line naming the column.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import mlflow.models
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel

#: Key of the native model directory in the pyfunc's ``artifacts``.
ARTIFACT_KEY = "order_flow_model"
#: Folder name of the serving code inside the version's ``code/`` directory.
PORTABLE_PACKAGE = "order_flow_portable"


class OrderFlowPyfunc(PythonModel):
    """Predicts flow_type, class probabilities, impact and time_to_execution."""

    def load_context(self, context: Any) -> None:
        native = Path(context.artifacts[ARTIFACT_KEY])
        self.portable = import_portable(native.parent.parent / "code" / PORTABLE_PACKAGE)
        self.model = self.portable.served.ServedModel.load(native)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        try:
            return self.model.predict(pd.DataFrame(model_input)).reset_index(drop=True)
        except self.portable.exceptions.TickerRegistryError as exc:
            raise MlflowException.invalid_parameter_value(str(exc)) from None


def import_portable(folder: Path) -> ModuleType:
    """The shipped package in ``folder``, imported once per distinct content."""
    files = sorted(folder.glob("*.py"))
    if not (folder / "__init__.py").is_file():
        raise MlflowException(f"{folder} is missing: this model version carries no serving code; "
                              "register it again with ticker-registry")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    name = f"{PORTABLE_PACKAGE}_{digest.hexdigest()[:16]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


mlflow.models.set_model(OrderFlowPyfunc())
