"""Plots logged with a model version when ``log_plots`` is on (MLflow UI friendly).

``feature_importance_<head>.png`` for each head and ``confusion_matrix.png``
of the flow_type head on its holdout, drawn with matplotlib's Agg backend
(no display needed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .features import FLOW_TYPES
from .model import HEADS, OrderFlowModel

__all__ = ["write_plots"]


def write_plots(model: OrderFlowModel, directory: Path, X_valid=None, y_valid=None) -> list[Path]:
    """Write the PNGs for ``model`` into ``directory``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    importances = model.feature_importances()
    for head in HEADS:
        values = importances[head].sort_values()
        fig, ax = plt.subplots(figsize=(6, 4.5), dpi=80)
        ax.barh(values.index, values.to_numpy(), color="#3b75af")
        ax.set_title(f"{head}: feature importance ({model.config.model_type})")
        ax.set_xlabel("importance (gain)")
        fig.tight_layout()
        path = directory / f"feature_importance_{head}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    if X_valid is not None and y_valid is not None and len(X_valid):
        from .model import flow_codes

        true = flow_codes(y_valid["flow_type"])
        pred = np.argmax(model.predict_matrix(X_valid.to_numpy(np.float64))[:, :3], axis=1)
        matrix = np.zeros((len(FLOW_TYPES), len(FLOW_TYPES)), dtype=int)
        np.add.at(matrix, (true, pred), 1)
        fig, ax = plt.subplots(figsize=(4.5, 4), dpi=80)
        ax.imshow(matrix, cmap="Blues")
        ax.set_xticks(range(3), FLOW_TYPES, rotation=20)
        ax.set_yticks(range(3), FLOW_TYPES)
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual")
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(j, i, str(count), ha="center", va="center")
        ax.set_title("flow_type confusion matrix (holdout)")
        fig.tight_layout()
        path = directory / "confusion_matrix.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths
