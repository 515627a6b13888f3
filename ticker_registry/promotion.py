"""The promotion gate: pure rules deciding whether a candidate replaces production.

Rules (documented in the README, "Promotion gate"):

1. A head has *skill* when it beats its naive baseline on the candidate's
   holdout: flow_type accuracy above the majority class, impact MSE below
   always-zero, time_to_execution MSE below the training median.
2. The first version of a ticker becomes production whatever its skill (there
   is nothing else to serve); heads without skill are flagged in tags.
3. A later version is promoted only when every head has skill **and** its
   skill score beats the champion's, both scored on the candidate's holdout
   window. The skill score is the mean over heads of the relative improvement
   on the baseline: ``(acc - acc0) / (1 - acc0)``, ``1 - mse / mse0``.
4. Otherwise it stays on the staging alias, with the reason logged.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["head_skill", "skill_score"]

_EPS = 1e-12


def head_skill(scores: Mapping[str, float]) -> dict[str, bool]:
    """Whether each head beats its naive baseline in ``scores`` (model and baseline_ keys)."""
    return {
        "flow_type": scores["flow_type_accuracy"] > scores["baseline_flow_type_accuracy"],
        "impact": scores["impact_mse"] < scores["baseline_impact_mse"],
        "time_to_execution": scores["time_to_execution_mse"]
        < scores["baseline_time_to_execution_mse"],
    }


def skill_score(scores: Mapping[str, float]) -> float:
    """Mean relative improvement of the three heads over their baselines (higher is better)."""
    acc, acc0 = scores["flow_type_accuracy"], scores["baseline_flow_type_accuracy"]
    parts = [(acc - acc0) / max(1.0 - acc0, _EPS)]
    for head in ("impact", "time_to_execution"):
        mse, mse0 = scores[f"{head}_mse"], scores[f"baseline_{head}_mse"]
        parts.append(1.0 - mse / max(mse0, _EPS))
    return sum(parts) / len(parts)
