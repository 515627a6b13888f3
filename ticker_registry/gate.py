"""The promotion gate: does a candidate version replace production?

Design (README, "Promotion gate"):

1. The first version of a ticker becomes production: there is nothing else to
   serve, and each of its heads already serves its model only where the purged
   walk-forward found significant skill, its naive baseline elsewhere.
2. A later candidate is compared with production **on the same rows, which
   neither was trained on**: the test block of the candidate's last
   walk-forward fold (its recipe was fitted only on rows before it, purged),
   restricted to events after production's last training event plus the label
   horizon. Both are scored with what they *serve* there (model or baseline per
   head), by the paired, time-clustered test of
   :func:`~ticker_registry.evaluation.compare_losses`.
3. The candidate wins when it is significantly better on at least one head and
   significantly worse on none (level ``skill_alpha``). Otherwise, or when no
   such common rows exist, or when the two versions compute features or
   labels differently, it stays on staging with the reason.

Pure: the registry loads production and writes the decision; nothing here talks
to MLflow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .evaluation import HEADS, HeadComparison, compare_losses, gate_verdict, take_head
from .exceptions import TrainingDataError
from .records import PromotionDecision

if TYPE_CHECKING:
    from .config import Config
    from .model import OrderFlowModel

__all__ = ["MIN_GATE_ROWS", "decide", "decision_tags", "serving_summary"]

#: Fewer common out-of-sample rows than this: no comparison, the candidate stays on staging.
MIN_GATE_ROWS = 30


def serving_summary(model: OrderFlowModel) -> str:
    """'flow_type=model [skill +0.0632, z=4.09], impact=baseline(zero) [...], ...'."""
    parts = []
    for head in HEADS:
        source = model.serving_[head]
        evaluation = getattr(model, "evaluation_", {}).get(head)
        if source == "baseline" and evaluation is not None:
            source = f"baseline({evaluation.baseline})"
        if evaluation is not None:
            source += (f" [skill {evaluation.skill:+.4f}, z={evaluation.z:.2f}]"
                       if evaluation.evaluable else " [not evaluable]")
        parts.append(f"{head}={source}")
    return ", ".join(parts)


def _spec_key(model: OrderFlowModel) -> dict:
    spec = model.spec_.to_dict()
    spec.pop("version", None)
    return spec


def decide(candidate: OrderFlowModel, *, champion: OrderFlowModel | None,
           champion_version: int | None, champion_last_event: str | None,
           X_holdout: pd.DataFrame | None, y_holdout: pd.DataFrame | None,
           cfg: Config) -> tuple[PromotionDecision, list[HeadComparison]]:
    """Decide where the candidate goes; see the module docstring for the rules."""
    skill = {h: getattr(candidate, "evaluation_", {}).get(h) is not None
             and candidate.evaluation_[h].has_skill for h in HEADS}
    prod, stage = cfg.production_alias, cfg.staging_alias

    def result(promoted: bool, reason: str, comparisons: list[HeadComparison]
               ) -> tuple[PromotionDecision, list[HeadComparison]]:
        cand = {f"{c.head}_loss": c.candidate_loss for c in comparisons}
        champ = {f"{c.head}_loss": c.production_loss for c in comparisons}
        return (PromotionDecision(promoted, prod if promoted else stage, reason, cand, champ,
                                  champion_version, skill), comparisons)

    if champion is None:
        return result(True, f"first version of this ticker; serves {serving_summary(candidate)}", [])
    if _spec_key(champion) != _spec_key(candidate):
        return result(False, f"production v{champion_version} computes features or labels with "
                      f"another spec ({_spec_key(champion)} vs {_spec_key(candidate)}); their "
                      "scores are not comparable: compare by hand and promote explicitly", [])
    holdout = getattr(candidate, "gate_holdout_", None)
    if holdout is None or X_holdout is None or y_holdout is None:
        return result(False, "the candidate has no out-of-sample predictions (it was not trained "
                      "in this process); promote explicitly", [])
    if len(X_holdout) != holdout.positions.size or len(y_holdout) != holdout.positions.size:
        raise TrainingDataError(
            f"the gate's holdout has {len(X_holdout)} feature rows and {len(y_holdout)} label rows "
            f"but the candidate predicted {holdout.positions.size}; pass TrainingResult.X_valid "
            "and y_valid of the same training")
    if not champion_last_event:
        return result(False, f"production v{champion_version} records no training period "
                      "(lineage.last_trade), so no rows are known to be out of its sample; "
                      "promote explicitly", [])
    after = pd.Timestamp(champion_last_event)
    after = after.tz_localize("UTC") if after.tzinfo is None else after
    cutoff = int(after.as_unit("ns").value) + candidate.spec_.horizon_ns
    common = holdout.event_ns > cutoff
    n_common = int(common.sum())
    if n_common < MIN_GATE_ROWS:
        return result(False, f"only {n_common} rows of the candidate's last test block lie after "
                      f"production v{champion_version}'s training data (at least {MIN_GATE_ROWS} "
                      "are needed to compare them out of sample); stays on staging", [])
    from .model import feature_matrix, flow_codes

    features = feature_matrix(X_holdout)[common]
    labels = {"flow_type": flow_codes(y_holdout["flow_type"])[common],
              "impact": y_holdout["impact"].to_numpy(np.float64)[common],
              "time_to_execution": y_holdout["time_to_execution"].to_numpy(np.float64)[common]}
    champ_served = champion.predict_matrix(features)
    cand_served = holdout.served[common]
    comparisons = [compare_losses(h, labels[h], take_head(cand_served, h),
                                  take_head(champ_served, h), holdout.event_ns[common],
                                  candidate.spec_.horizon_ns, cfg.skill_alpha) for h in HEADS]
    wins, why = gate_verdict(comparisons)
    why = f"vs production v{champion_version} on {n_common} common out-of-sample rows: {why}"
    if wins and not cfg.auto_promote:
        return result(False, f"auto_promote is off; {why}", comparisons)
    return result(wins, why, comparisons)


def decision_tags(decision: PromotionDecision, comparisons: list[HeadComparison]) -> dict[str, str]:
    """The ``gate.*`` version tags recording a decision (the one place they are written)."""
    tags = {"gate.decision": "production" if decision.promoted else "staging",
            "gate.reason": decision.reason[:4900],
            "gate.champion_version": str(decision.champion_version or "")}
    for c in comparisons:
        tags[f"gate.{c.head}.verdict"] = c.verdict
        tags[f"gate.{c.head}.improvement"] = repr(round(c.improvement, 6))
        tags[f"gate.{c.head}.z"] = repr(round(c.z, 3)) if np.isfinite(c.z) else str(c.z)
        tags[f"gate.{c.head}.candidate_loss"] = repr(c.candidate_loss)
        tags[f"gate.{c.head}.production_loss"] = repr(c.production_loss)
    return tags
