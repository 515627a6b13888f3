"""Export: one model version, or every ticker's, written as deterministic bundle files."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..exceptions import (
    InvalidArgumentError,
    ModelFormatError,
    RegistryError,
    TickerRegistryError,
)
from ..model import package_versions, read_model_manifest
from ..redaction import redact_uri
from ..tickers import normalize_ticker
from .manifest import (
    _CHUNK,
    MANIFEST_NAME,
    BundleManifest,
    BundleMember,
    allowed_members,
)
from .reader import _HashingReader

if TYPE_CHECKING:
    from ..registry import TickerRegistry

#: gzip level of a bundle. Level 9 (GzipFile's default) took 22 ms of CPU for a default
#: model's 450 KB of heads, level 6 4 ms for a file 7% larger (benchmarks/RESULTS.md, B6).
#: Part of the bytes, hence of the import idempotency key: change it only with a reason.
GZIP_LEVEL = 6


@dataclass(frozen=True)
class ExportResult:
    """One bundle of :func:`export_all`: ``status`` is exported, skipped or failed."""

    ticker: str
    version: int | None
    path: Path | None
    status: str
    message: str = ""
    ok: bool = field(init=False)  #: False when this bundle failed (a field, so asdict shows it)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ok", self.status != "failed")


def export_bundle(registry: TickerRegistry, ticker: str, path: str | os.PathLike[str],
                  version_or_alias: int | str = "production") -> BundleManifest:
    """Write one version of ``ticker`` (default: production) to the bundle file ``path``.

    Raises
    ------
    ModelNotFoundError
        The ticker, version or alias does not exist.
    ModelFormatError
        The version's native model directory is not one of ours.
    """
    ticker = normalize_ticker(ticker)
    target = Path(path)
    info = registry.resolve(ticker, version_or_alias)
    if info.status != "READY":
        raise RegistryError(f"{info.name} version {info.version} is {info.status}, not READY; "
                            "only READY versions are exported")
    params: dict[str, str] = {}
    metrics: dict[str, float] = {}
    if info.run_id:
        run = registry.store.get_run(info.run_id)
        params = dict(run.params)
        # the version's own scores; stepped histories (per-fold, live) stay with the source run
        metrics = {k: v for k, v in run.metrics.items() if not k.startswith(("fold_", "live_"))}
    lineage = {k[len("lineage."):]: v for k, v in info.tags.items() if k.startswith("lineage.")}
    # A fresh download, not the shared cache: the cache is keyed by name and version, and
    # a deleted and re-created registered model starts again at version 1.
    with tempfile.TemporaryDirectory(prefix="ticker-registry-export-") as tmp:
        native = registry.download_native(info, cache_dir=Path(tmp))
        model_json = read_model_manifest(native)
        model_type = model_json["model_type"]
        files = {name: native / name.removeprefix("model/")
                 for name in allowed_members(model_type)}
        for file in files.values():
            if not file.is_file():
                raise ModelFormatError(f"{info.name} version {info.version}: {file.name} is "
                                       "missing from its native model directory")
        manifest = BundleManifest(
            ticker=ticker, model_name=info.name, model_version=info.version,
            model_type=model_type, source_registry=redact_uri(registry.tracking_uri),
            run_id=info.run_id, created_at=info.created_at,
            idempotency_key=info.tags.get("idempotency_key", ""),
            members=tuple(BundleMember(name, file.stat().st_size, _sha256_file(file))
                          for name, file in files.items()),
            params=params, metrics=metrics, tags=dict(info.tags), description=info.description,
            lineage=lineage, package_versions=dict(model_json.get("package_versions") or {}),
            exported_with=package_versions())
        _write_bundle(target, manifest, files, mtime=_iso_to_epoch(info.created_at))
    return manifest


def _write_bundle(target: Path, manifest: BundleManifest, files: dict[str, Path],
                  mtime: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # a unique sibling created with mode 0666, so the process umask decides who may read the
    # bundle (mkstemp would give 0600, and a fixed chmod would ignore a stricter umask)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part")
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as raw:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                               compresslevel=GZIP_LEVEL) as gz, \
                    tarfile.open(fileobj=gz, mode="w|", format=tarfile.USTAR_FORMAT) as tar:
                body = json.dumps(manifest.to_dict(), indent=2, sort_keys=True).encode()
                tar.addfile(_tarinfo(MANIFEST_NAME, len(body), mtime), io.BytesIO(body))
                for member in manifest.members:
                    with open(files[member.name], "rb") as f:
                        hashing = _HashingReader(f)
                        tar.addfile(_tarinfo(member.name, member.size, mtime), hashing)
                    if hashing.digest.hexdigest() != member.sha256:
                        raise ModelFormatError(f"{files[member.name]} changed while it was "
                                               "being exported; export again")
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _tarinfo(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.type = size, mtime, 0o644, tarfile.REGTYPE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def export_all(registry: TickerRegistry, directory: str | os.PathLike[str],
               which: str = "production",
               progress: Callable[[ExportResult], None] | None = None) -> list[ExportResult]:
    """Back up every ticker: its production version (``which="production"``) or all versions.

    One bundle per version, named ``<TICKER>-v<N>.trbundle``. A failure is
    recorded in its :class:`ExportResult` and the next ticker is exported.
    """
    if which not in ("production", "all"):
        raise InvalidArgumentError(f"which={which!r}; use 'production' or 'all'")
    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: list[ExportResult] = []

    def record(result: ExportResult) -> None:
        results.append(result)
        if progress is not None:
            progress(result)

    for state in sorted(registry.search_models(), key=lambda s: s.name):
        ticker = state.tags.get("ticker") or registry.ticker_of(state.name)
        try:
            if which == "production":
                prod = state.aliases.get(registry.config.production_alias)
                if prod is None:
                    record(ExportResult(ticker, None, None, "skipped",
                                        "no production version; use which='all'"))
                    continue
                versions = [prod]
            else:
                found = sorted(registry.search_versions(f"name='{state.name}'"),
                               key=lambda v: v.version)
                if not found:
                    record(ExportResult(ticker, None, None, "skipped", "no versions"))
                for info in found:
                    if info.status != "READY":
                        record(ExportResult(ticker, info.version, None, "skipped",
                                            f"version is {info.status}"))
                versions = [v.version for v in found if v.status == "READY"]
        except (TickerRegistryError, OSError) as exc:
            record(ExportResult(ticker, None, None, "failed", str(exc)))
            continue
        for version in versions:
            target = out_dir / f"{ticker}-v{version}.trbundle"
            try:
                export_bundle(registry, ticker, target, version)
            except (TickerRegistryError, OSError) as exc:
                record(ExportResult(ticker, version, None, "failed", str(exc)))
            else:
                record(ExportResult(ticker, version, target, "exported"))
    return results


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _iso_to_epoch(text: str) -> int:
    try:
        return int(datetime.fromisoformat(text).timestamp())
    except (TypeError, ValueError):
        return 0
