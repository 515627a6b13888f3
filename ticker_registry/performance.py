"""Live performance: how the serving version scores on labelled samples as they arrive.

For each labelled sample of a ticker whose model is cached, the serving
version's prediction is scored next to the same naive baselines as at
training time (majority class, zero impact, training-median time), over the
last ``window`` samples. The manager logs these figures as MLflow metrics
(``live_*``, with a step) on the serving version's run every ``log_every``
samples, shows them in ``status``, and triggers an early retrain when live
flow_type accuracy falls below ``skill_drop_threshold``.
"""

from __future__ import annotations

from collections import deque

import numpy as np

__all__ = ["LivePerformance"]


class LivePerformance:
    """Rolling scores of one model version over its last ``window`` labelled samples."""

    def __init__(self, baselines: dict, window: int) -> None:
        self.majority = int(baselines["majority_class"])
        self.median_tte = float(baselines["median_time_to_execution"])
        self._rows: deque[tuple[float, ...]] = deque(maxlen=window)
        self.seen = 0

    def update(self, prediction: np.ndarray, flow_code: int, impact: float, tte: float) -> None:
        """Add one sample; ``prediction`` is a row of ``OrderFlowModel.predict_matrix``."""
        self._rows.append((
            float(int(np.argmax(prediction[:3])) == flow_code),
            float(self.majority == flow_code),
            (impact - prediction[3]) ** 2, impact ** 2,
            (tte - prediction[4]) ** 2, (tte - self.median_tte) ** 2,
        ))
        self.seen += 1

    def summary(self) -> dict[str, float]:
        if not self._rows:
            return {}
        m = np.asarray(self._rows).mean(axis=0)
        return {"live_flow_type_accuracy": float(m[0]),
                "live_baseline_flow_type_accuracy": float(m[1]),
                "live_impact_mse": float(m[2]), "live_baseline_impact_mse": float(m[3]),
                "live_time_to_execution_mse": float(m[4]),
                "live_baseline_time_to_execution_mse": float(m[5]),
                "live_samples": float(len(self._rows))}
