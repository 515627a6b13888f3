"""The text MLflow shows for a ticker's registered model and for each of its versions.

Derived, never a source of truth: a version's text from its own evaluation, the
registered model's from the version its production alias holds (rewritten each
time an alias moves).
"""

from __future__ import annotations

from .gate import serving_summary
from .lineage import training_totals
from .model import OrderFlowModel
from .records import VersionInfo

__all__ = ["model_description", "version_description"]


def version_description(ticker: str, model: OrderFlowModel) -> str:
    evaluations = "; ".join(e.summary() for e in model.evaluation_.values())
    return (f"{ticker} order-flow model ({model.config.model_type}), purged walk-forward "
            f"over {int(model.metrics_['n_train'])} rows ({int(model.metrics_['n_valid'])} "
            f"out of sample): {evaluations}. Serves {serving_summary(model)}.")


def model_description(ticker: str, production: VersionInfo | None) -> str:
    if production is None:
        return f"Order-flow model of {ticker}."
    m = production.metrics
    totals = training_totals(production)
    return (f"Order-flow model of {ticker} ({production.tags.get('model_type', '?')}). "
            f"Production: version {production.version}; flow_type accuracy "
            f"{m.get('flow_type_accuracy', float('nan')):.3f}, impact MSE "
            f"{m.get('impact_mse', float('nan')):.4g}, time_to_execution MSE "
            f"{m.get('time_to_execution_mse', float('nan')):.4g}. Trained "
            f"{totals[0]} times on {totals[1]} samples up to that version.")
