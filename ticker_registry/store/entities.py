"""MLflow entities turned into our records (:mod:`ticker_registry.records`) at the boundary."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..records import ModelRecord, RunRecord, VersionInfo, metric_tags

__all__ = ["download", "model_record", "run_record", "version_info"]


def ms_to_iso(ms: int | None) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def download(artifact_uri: str, dst: Path, tracking_uri: str) -> None:
    import mlflow.artifacts

    mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=str(dst),
                                        tracking_uri=tracking_uri, registry_uri=tracking_uri)


def model_record(rm: Any) -> ModelRecord:
    return ModelRecord(rm.name, {a: int(v) for a, v in (rm.aliases or {}).items()},
                       dict(rm.tags or {}), rm.description or "")


def version_info(mv: Any) -> VersionInfo:
    tags = dict(mv.tags or {})
    return VersionInfo(
        ticker=tags.get("ticker") or mv.name.partition(".")[2], name=mv.name,
        version=int(mv.version), run_id=mv.run_id, created_at=ms_to_iso(mv.creation_timestamp),
        aliases=tuple(mv.aliases or ()), metrics=metric_tags(tags), tags=tags,
        source=mv.source, status=str(mv.status), description=mv.description or "")


def run_record(run: Any) -> RunRecord:
    return RunRecord(run.info.run_id, str(run.info.status), int(run.info.start_time or 0),
                     dict(run.data.params), {k: float(v) for k, v in run.data.metrics.items()},
                     dict(run.data.tags))
