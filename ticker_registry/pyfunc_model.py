"""The MLflow pyfunc wrapper of an order-flow model, saved with "models from code".

MLflow copies this file into each model version and executes it when the
version is loaded with ``mlflow.pyfunc.load_model``; no cloudpickle is
involved. It only delegates to the installed ``ticker_registry`` package, so a
bundle's copy of this file is never needed: on import we write our own.
"""

from __future__ import annotations

from typing import Any

import mlflow.models
import pandas as pd
from mlflow.pyfunc import PythonModel

from ticker_registry.model import OrderFlowModel

#: Key of the native model directory in the pyfunc's ``artifacts``.
ARTIFACT_KEY = "order_flow_model"


class OrderFlowPyfunc(PythonModel):
    """Predicts flow_type, class probabilities, impact and time_to_execution."""

    def load_context(self, context: Any) -> None:
        self.model = OrderFlowModel.load(context.artifacts[ARTIFACT_KEY])

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return self.model.predict(pd.DataFrame(model_input)).reset_index(drop=True)


mlflow.models.set_model(OrderFlowPyfunc())
