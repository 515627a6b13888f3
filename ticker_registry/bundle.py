"""Export and import of one model version as a self-contained bundle file.

A bundle is a tar archive, gzip-compressed when we write it (an uncompressed
tar is read too). Its file name is the user's choice; the content decides::

    ETHUSDT-v3.trbundle                 (or ethusdt_model_backup.pkl: any name)
    └── gzip ─ tar, read member by member ("r|"), never extracted by tarfile
        ├── manifest.json               first member, JSON, at most 1 MiB:
        │     format, format_version, ticker, model_name, model_version,
        │     model_type, source_registry (no password), run_id, created_at,
        │     params, metrics, tags, description, lineage, idempotency_key,
        │     package_versions, exported_with,
        │     members: [{name, size, sha256}, ...]   (every other member)
        ├── model/model.json            the OrderFlowModel manifest (metrics travel here)
        ├── model/flow_type.<ext>       native heads: .ubj (XGBoost), .txt (LightGBM)
        ├── model/impact.<ext>          or .skops (random forest); never a pickle,
        └── model/time_to_execution.<ext>   never MLmodel or a .py wrapper

Writing is deterministic (fixed order, fixed mtime, no owner, no export
time), so exporting the same version twice gives the same bytes and the same
sha256, which is the import idempotency key (``import-<first 24 hex>``).

Import verifies everything before anything reaches the registry:

1. the file: a regular file of at most :data:`MAX_BUNDLE_BYTES`; anything
   else (a pickle, a zip, text, nothing) is named and refused;
2. the manifest: our format and :data:`BUNDLE_FORMAT_VERSION`, strict fields
   (an unknown one, e.g. a trust list, is refused), at most
   :data:`MAX_MEMBERS` members whose names come from our own allow-list for
   the model type, sizes within :data:`MAX_MEMBER_BYTES` / :data:`MAX_TOTAL_BYTES`;
3. each tar member as it streams: a regular file (no link, device, FIFO or
   directory), a safe relative name listed in the manifest and seen once, the
   declared size, no pickle header, the expected magic bytes, the manifest's
   sha256. Decompressed bytes are counted as they are read (headers can lie):
   never more than the manifest declares, never more than
   :data:`MAX_COMPRESSION_RATIO` times the compressed bytes read;
4. the files, written by our code under our own names into a fresh private
   (0700) temporary directory, are loaded and test-predicted on a zero
   feature row in a subprocess with a timeout, after tree sanity checks
   (child and feature indices in range; skops types within
   :data:`~ticker_registry.heads.SKOPS_TRUSTED`): a crafted tree file can
   crash the process that predicts with it.

Only then is a new version registered (with our own pyfunc wrapper, never a
file of the bundle) and the promotion gate applied.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import tempfile
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from .config import Config
from .exceptions import (
    BundleError,
    ConfigError,
    ModelFormatError,
    ModelNotFoundError,
    RegistryError,
    TickerRegistryError,
)
from .features import FEATURE_NAMES
from .heads import HEAD_SUFFIX
from .model import (
    HEADS,
    MODEL_FORMAT_VERSION,
    OrderFlowModel,
    package_versions,
    read_model_manifest,
)
from .records import PromotionDecision, TrainingLineage, VersionInfo
from .tickers import normalize_ticker

if TYPE_CHECKING:
    from .registry import TickerRegistry

__all__ = [
    "BUNDLE_FORMAT_VERSION", "MAX_BUNDLE_BYTES", "MAX_COMPRESSION_RATIO", "MAX_MEMBERS",
    "MAX_MEMBER_BYTES", "MAX_TOTAL_BYTES", "BundleManifest", "BundleMember", "ExportResult",
    "ImportResult", "export_all", "export_bundle", "import_bundle", "verify_bundle",
]

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "ticker-registry-bundle"
BUNDLE_FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
_MiB = 1 << 20
MAX_MEMBERS = 16                 #: members listed in a manifest (we write 4)
MAX_MANIFEST_BYTES = _MiB        #: manifest.json and model/model.json
MAX_MEMBER_BYTES = 512 * _MiB    #: one native head file
MAX_TOTAL_BYTES = 1024 * _MiB    #: all members, uncompressed
MAX_BUNDLE_BYTES = 1024 * _MiB   #: the bundle file itself
MAX_COMPRESSION_RATIO = 100      #: decompressed / compressed bytes read so far ...
RATIO_GRACE_BYTES = _MiB         #: ... checked once this much was decompressed
CHECK_TIMEOUT = 120.0            #: seconds for the subprocess test load
_CHUNK = 64 * 1024
_EXPECTED = ("expected a bundle written by `ticker-registry export` / export_bundle(): a tar "
             "archive (optionally gzip-compressed) whose first member is manifest.json")
_MODEL_JSON_KEYS = frozenset({"format_version", "model_type", "heads", "feature_spec", "config",
                              "metrics", "baselines", "validation_start", "package_versions"})
_CODE_NAMES = frozenset({"mlmodel", "python_model.pkl", "conda.yaml", "python_env.yaml",
                         "requirements.txt", "__init__.py"})
_CODE_SUFFIXES = (".py", ".pyc", ".pyo", ".pyw", ".pyz", ".so", ".dll", ".dylib", ".sh", ".exe")
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".cloudpickle", ".dill", ".pt", ".pth",
                    ".npy", ".npz")
_MAGIC = {".json": (b"{",), ".ubj": (b"{",), ".txt": (b"tree\n",), ".skops": (b"PK\x03\x04",)}
_TAG_KEY = re.compile(r"^[A-Za-z0-9_.\-/ ]{1,250}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: Version tags the importing registry computes itself; a source value is kept as ``source.<key>``.
_OWN_TAGS = ("idempotency_key", "ticker", "created_at", "model_type", "imported_from")
_OWN_TAG_PREFIXES = ("metric.", "skill.", "gate.", "import.", "source.")


# --------------------------------------------------------------------------- records
@dataclass(frozen=True)
class BundleMember:
    """One file of a bundle, as the manifest declares it."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class BundleManifest:
    """What a bundle says about itself (``manifest.json``)."""

    ticker: str
    model_name: str
    model_version: int
    model_type: str
    source_registry: str
    run_id: str | None
    created_at: str
    idempotency_key: str
    members: tuple[BundleMember, ...]
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""
    lineage: dict[str, str] = field(default_factory=dict)
    package_versions: dict[str, str] = field(default_factory=dict)
    exported_with: dict[str, str] = field(default_factory=dict)
    format_version: int = BUNDLE_FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["members"] = [asdict(m) for m in self.members]
        return {"format": BUNDLE_FORMAT, **data}

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "manifest.json") -> BundleManifest:
        """Validate a parsed manifest strictly; raise :class:`BundleError` naming the problem."""
        def bad(what: str) -> BundleError:
            return BundleError(f"{source} is refused: {what}")

        if not isinstance(data, dict):
            raise bad(f"manifest.json holds a {type(data).__name__}, not a JSON object")
        if data.get("format") != BUNDLE_FORMAT:
            raise bad(f"manifest format is {data.get('format')!r}, not {BUNDLE_FORMAT!r}")
        version = data.get("format_version")
        if version != BUNDLE_FORMAT_VERSION or isinstance(version, bool):
            raise bad(f"bundle format version {version!r}; this ticker-registry reads version "
                      f"{BUNDLE_FORMAT_VERSION}: upgrade ticker-registry or re-export the model")
        known = {f for f in cls.__dataclass_fields__} | {"format"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise bad(f"manifest has unknown field(s) {unknown}; a bundle carries no trust "
                      "lists, code paths or other instructions, only the fields we write")
        missing = sorted(known - set(data))
        if missing:
            raise bad(f"manifest lacks field(s) {missing}")
        model_type = data["model_type"]
        if model_type not in HEAD_SUFFIX:
            raise bad(f"unknown model_type {model_type!r}; expected one of {sorted(HEAD_SUFFIX)}")
        raw_members = data["members"]
        if not isinstance(raw_members, list):
            raise bad("manifest 'members' is not a list")
        if len(raw_members) > MAX_MEMBERS:
            raise bad(f"manifest lists {len(raw_members)} members; a bundle has at most "
                      f"{MAX_MEMBERS}")
        allowed = set(allowed_members(model_type))
        members: list[BundleMember] = []
        for entry in raw_members:
            if not isinstance(entry, dict) or set(entry) != {"name", "size", "sha256"}:
                raise bad(f"manifest member {entry!r} is not {{name, size, sha256}}")
            name, size, digest = entry["name"], entry["size"], entry["sha256"]
            if not isinstance(name, str):
                raise bad(f"manifest member name {name!r} is not a string")
            problem = unsafe_name(name)
            if problem:
                raise bad(f"manifest lists member {name!r}, which {problem}")
            if name not in allowed:
                raise bad(f"manifest lists member {name!r}, which is not part of a {model_type} "
                          f"bundle; the only files allowed are {sorted(allowed)}")
            if any(m.name == name for m in members):
                raise bad(f"manifest lists member {name!r} twice")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise bad(f"manifest size of {name!r} is {size!r}, not a byte count")
            cap = MAX_MANIFEST_BYTES if name.endswith(".json") else MAX_MEMBER_BYTES
            if size > cap:
                raise bad(f"manifest declares {size} bytes for {name!r}, above the "
                          f"{_human(cap)} cap")
            if not isinstance(digest, str) or not _SHA256.match(digest):
                raise bad(f"manifest sha256 of {name!r} is {digest!r}, not 64 lowercase hex digits")
            members.append(BundleMember(name, size, digest))
        absent = sorted(allowed - {m.name for m in members})
        if absent:
            raise bad(f"manifest does not list {absent}; a {model_type} bundle needs all of "
                      f"{sorted(allowed)}")
        total = sum(m.size for m in members)
        if total > MAX_TOTAL_BYTES:
            raise bad(f"members total {total} bytes, above the {_human(MAX_TOTAL_BYTES)} cap")
        try:
            ticker = normalize_ticker(_text(data, "ticker", 64))
        except TickerRegistryError as exc:
            raise bad(f"manifest ticker: {exc}") from None
        run_id = data["run_id"]
        if run_id is not None and not isinstance(run_id, str):
            raise bad(f"manifest run_id {run_id!r} is not a string")
        model_version = data["model_version"]
        if not isinstance(model_version, int) or isinstance(model_version, bool):
            raise bad(f"manifest model_version {model_version!r} is not an integer")
        try:
            return cls(
                ticker=ticker, model_name=_text(data, "model_name", 500),
                model_version=model_version, model_type=model_type,
                source_registry=_text(data, "source_registry", 2000),
                run_id=run_id, created_at=_text(data, "created_at", 64),
                idempotency_key=_text(data, "idempotency_key", 250),
                members=tuple(members),
                params=_str_map(data, "params", 1000, 6000),
                metrics=_metric_map(data, "metrics"),
                tags=_str_map(data, "tags", 500, 5000, keys=_TAG_KEY),
                description=_text(data, "description", 5000),
                lineage=_str_map(data, "lineage", 100, 5000, keys=_TAG_KEY),
                package_versions=_str_map(data, "package_versions", 50, 100),
                exported_with=_str_map(data, "exported_with", 50, 100),
                format_version=version)
        except ValueError as exc:
            raise bad(str(exc)) from None


@dataclass(frozen=True)
class ImportResult:
    """The version an import produced (``created``) or found (same bundle imported before)."""

    version: VersionInfo
    created: bool
    manifest: BundleManifest
    decision: PromotionDecision | None = None


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


def allowed_members(model_type: str) -> tuple[str, ...]:
    """The member names of a bundle of ``model_type``, besides manifest.json (our allow-list)."""
    suffix = HEAD_SUFFIX[model_type]
    return ("model/model.json", *(f"model/{head}{suffix}" for head in HEADS))


def unsafe_name(name: str) -> str | None:
    """Why ``name`` may not be a bundle member, or None when it is a safe relative name."""
    if not name:
        return "is empty"
    if "\x00" in name:
        return "contains a NUL byte"
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "is an absolute path"
    parts = name.split("/")
    if ".." in parts:
        return "climbs out of the bundle with '..'"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "contains a control character"
    if len(name) > 200 or "" in parts or "." in parts:
        return "is not a plain relative path"
    base = parts[-1].lower()
    if base in _CODE_NAMES or base.endswith(_CODE_SUFFIXES) or "code" in parts[:-1]:
        return ("is code or an MLflow model definition; bundles carry data only and the "
                "importer writes its own pyfunc wrapper")
    if base.endswith(_PICKLE_SUFFIXES):
        return "is named like a pickle/joblib payload; pickles are never loaded"
    return None


# --------------------------------------------------------------------------- export
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
    info = _resolve(registry, ticker, version_or_alias)
    if info.status != "READY":
        raise RegistryError(f"{info.name} version {info.version} is {info.status}, not READY; "
                            "only READY versions are exported")
    params: dict[str, str] = {}
    metrics: dict[str, float] = {}
    if info.run_id:
        run = registry._call(registry.client.get_run, info.run_id)
        params = dict(run.data.params)
        metrics = {k: float(v) for k, v in run.data.metrics.items()}
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


def _resolve(registry: TickerRegistry, ticker: str, ref: int | str) -> VersionInfo:
    """``registry.resolve``, reporting a missing model or alias as :class:`ModelNotFoundError`.

    (MLflow answers a missing alias with INVALID_PARAMETER_VALUE, which the
    registry adapter maps to a plain RegistryError.)
    """
    if isinstance(ref, str) and not ref.isdigit():
        try:
            rm = registry._call(registry.client.get_registered_model, registry.model_name(ticker))
        except ModelNotFoundError:
            rm = None
        if rm is None or ref not in (rm.aliases or {}):
            raise ModelNotFoundError(f"{ticker} has no {ref!r} version; see `ticker-registry "
                                     f"versions {ticker}` or export a version number")
    return registry.resolve(ticker, ref)


def _write_bundle(target: Path, manifest: BundleManifest, files: dict[str, Path],
                  mtime: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
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
        os.chmod(tmp, 0o644)
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
        raise RegistryError(f"which={which!r}; use 'production' or 'all'")
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


# --------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class _Verified:
    manifest: BundleManifest
    sha256: str


def verify_bundle(path: str | os.PathLike[str]) -> BundleManifest:
    """Check a bundle completely (format, names, types, caps, sha256) without writing anything.

    The models are not loaded; :func:`import_bundle` also test-loads them in a subprocess.
    """
    return _read_bundle(Path(path), dest=None).manifest


class _HashingReader:
    """Hashes and counts what passes through ``read``."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner = inner
        self.digest = hashlib.sha256()
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.inner.read(n)
        self.digest.update(data)
        self.count += len(data)
        return data


class _RawSource(_HashingReader):
    """The bundle file: hashed and counted; never read past ``MAX_BUNDLE_BYTES``."""

    def __init__(self, inner: IO[bytes], label: str) -> None:
        super().__init__(inner)
        self.label = label

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = _CHUNK
        data = super().read(min(n, MAX_BUNDLE_BYTES + 1 - self.count))
        if self.count > MAX_BUNDLE_BYTES:
            raise BundleError(f"{self.label} is refused: the file is larger than the "
                              f"{_human(MAX_BUNDLE_BYTES)} cap of a bundle")
        return data


class _Budget:
    """The decompressed tar stream: counted against a byte budget and the compression ratio."""

    def __init__(self, inner: Any, raw: _RawSource, compressed: bool, label: str) -> None:
        self.inner, self.raw, self.compressed, self.label = inner, raw, compressed, label
        self.count = 0
        self.limit = MAX_MANIFEST_BYTES + 64 * 1024  # until the manifest declares more

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = _CHUNK
        data = self.inner.read(min(n, self.limit + 1 - self.count))
        self.count += len(data)
        if self.count > self.limit:
            raise BundleError(f"{self.label} is refused: it holds more data than its manifest "
                              f"declares (over {self.limit} bytes); a bundle is read only as far "
                              "as declared")
        if (self.compressed and self.count > RATIO_GRACE_BYTES
                and self.count > MAX_COMPRESSION_RATIO * max(self.raw.count, 1)):
            raise BundleError(f"{self.label} is refused: {self.count} bytes decompressed from "
                              f"{self.raw.count}, a compression ratio above "
                              f"{MAX_COMPRESSION_RATIO}:1 (a decompression bomb?)")
        return data


def _read_bundle(path: Path, dest: Path | None) -> _Verified:
    """Stream-verify the bundle at ``path``; write its members into ``dest`` when given."""
    label = f"bundle {path.name!r}"
    with _open_regular(path) as f:
        head = f.read(1024)
        f.seek(0)
        compressed = _sniff(path, head, f)
        raw = _RawSource(f, label)
        stream: Any = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        budget = _Budget(stream, raw, compressed, label)
        try:
            verified = _read_members(budget, label, dest)
        except BundleError:
            raise
        except (EOFError, tarfile.ReadError) as exc:
            raise BundleError(f"{label} is truncated or corrupt ({type(exc).__name__}: "
                              f"{_first_line(exc)}); export it again") from None
        except OSError as exc:
            if exc.errno is not None:  # our own writes failed (disk full, ...): not the bundle
                raise
            raise BundleError(f"{label} is corrupt and cannot be read ({type(exc).__name__}: "
                              f"{_first_line(exc)})") from None
        except Exception as exc:  # gzip/tarfile raise many types on hostile input
            raise BundleError(f"{label} is corrupt and cannot be read ({type(exc).__name__}: "
                              f"{_first_line(exc)})") from None
        while raw.read(_CHUNK):  # the sha256 covers the whole file, trailing padding included
            pass
        return _Verified(verified, raw.digest.hexdigest())


@contextmanager
def _open_regular(path: Path) -> Iterator[IO[bytes]]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block us
    except FileNotFoundError:
        raise BundleError(f"bundle file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise BundleError(f"cannot open bundle {str(path)!r}: {exc.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise BundleError(f"{str(path)!r} is not a regular file; {_EXPECTED}")
        os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield f


def _sniff(path: Path, head: bytes, f: IO[bytes]) -> bool:
    """True for gzip, False for plain tar; otherwise say what the file is and refuse it."""
    name = repr(path.name)

    def refuse(what: str) -> BundleError:
        return BundleError(f"{name} is {what}, not a ticker-registry bundle; {_EXPECTED}")

    if not head:
        raise refuse("empty (0 bytes)")
    if _is_pickle(head):
        raise BundleError(f"{name} is a Python pickle, not a ticker-registry bundle; pickles "
                          f"are never loaded because they can run code; {_EXPECTED}")
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        raise refuse("a ZIP archive (perhaps a skops/joblib/Keras file)")
    if head[:2] == b"\x1f\x8b":
        try:
            inner = gzip.GzipFile(fileobj=io.BytesIO(f.read(64 * 1024))).read(512)
        except (OSError, EOFError, ValueError, zlib.error):
            inner = b""
        finally:
            f.seek(0)
        if _is_pickle(inner):
            raise BundleError(f"{name} is a gzip-compressed Python pickle (joblib?), not a "
                              "ticker-registry bundle; pickles are never loaded because they "
                              f"can run code; {_EXPECTED}")
        if len(inner) == 512 and inner[257:262] == b"ustar":
            return True
        raise refuse("gzip-compressed data that is not a tar archive")
    if len(head) >= 262 and head[257:262] == b"ustar":
        return False
    for magic, kind in ((b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd")):
        if head.startswith(magic):
            raise refuse(f"{kind}-compressed data (bundles are tar, plain or gzip)")
    if head[:4] == b"\x89HDF":
        raise refuse("an HDF5 file")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\r\n\t" for c in text):
        kind = "a JSON text file" if text.lstrip()[:1] in ("{", "[") else "a text file"
        raise refuse(kind)
    raise refuse(f"binary data of an unknown kind (starts with {head[:8]!r})")


def _is_pickle(head: bytes) -> bool:
    """A pickle of protocol 2 or later starts with PROTO (0x80) and the protocol number."""
    return head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5


def _read_members(budget: _Budget, label: str, dest: Path | None) -> BundleManifest:
    def bad(what: str) -> BundleError:
        return BundleError(f"{label} is refused: {what}")

    manifest: BundleManifest | None = None
    expected: dict[str, BundleMember] = {}
    seen: set[str] = set()
    tar = tarfile.open(fileobj=budget, mode="r|")  # noqa: SIM115 (stream mode; closed below)
    try:
        for info in tar:
            name = info.name
            problem = _member_type_problem(info)
            if problem:
                raise bad(f"member {name!r} is {problem}; a bundle holds regular files only")
            problem = unsafe_name(name)
            if problem:
                raise bad(f"member {name!r} {problem}")
            if manifest is None:
                if name != MANIFEST_NAME:
                    raise bad(f"the first member is {name!r}; a bundle starts with "
                              f"{MANIFEST_NAME}")
                if info.size > MAX_MANIFEST_BYTES:
                    raise bad(f"{MANIFEST_NAME} is {info.size} bytes, above the "
                              f"{_human(MAX_MANIFEST_BYTES)} cap")
                body = _read_all(tar, info)
                manifest = BundleManifest.from_dict(_parse_json(body, MANIFEST_NAME, label),
                                                    source=label)
                expected = {m.name: m for m in manifest.members}
                # Never read more than the manifest declares, plus tar headers and padding.
                budget.limit = budget.count + sum(m.size for m in manifest.members) + \
                    4096 * (len(expected) + 1) + 2 * tarfile.RECORDSIZE
                if dest is not None:
                    dest.mkdir(mode=0o700)
                continue
            if name == MANIFEST_NAME or name in seen:
                raise bad(f"member {name!r} appears twice")
            member = expected.get(name)
            if member is None:
                raise bad(f"member {name!r} is not listed in the manifest (not in its "
                          f"allow-list: {sorted(expected)})")
            seen.add(name)
            if info.size != member.size:
                raise bad(f"the manifest declares {member.size} bytes for {name!r} but the "
                          f"archive holds {info.size}")
            keep = name.endswith(".json")
            data = _copy_member(tar, info, member, dest, keep, bad)
            if keep:
                _check_model_json(data, manifest, bad)
        if manifest is None:
            raise bad(f"it holds no members; a bundle starts with {MANIFEST_NAME}")
        missing = sorted(set(expected) - seen)
        if missing:
            raise bad(f"the archive ends before member(s) {missing} listed in the manifest; "
                      "the file is truncated or incomplete")
    finally:
        tar.close()
    return manifest


def _member_type_problem(info: tarfile.TarInfo) -> str | None:
    if info.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
        return None
    if info.issym():
        return f"a symbolic link (to {info.linkname!r})"
    if info.islnk():
        return f"a hard link (to {info.linkname!r})"
    if info.ischr() or info.isblk():
        return "a device"
    if info.isfifo():
        return "a FIFO"
    if info.isdir():
        return "a directory"
    return f"a tar member of type {info.type!r}"


def _read_all(tar: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
    f = tar.extractfile(info)
    assert f is not None  # a regular file
    data = f.read(info.size + 1)
    if len(data) != info.size:
        raise EOFError(f"{info.name} ends after {len(data)} of {info.size} bytes")
    return data


def _copy_member(tar: tarfile.TarFile, info: tarfile.TarInfo, member: BundleMember,
                 dest: Path | None, keep: bool, bad: Callable[[str], BundleError]) -> bytes:
    """Stream one member: content checks, sha256 and size; write it under our own name."""
    src = tar.extractfile(info)
    assert src is not None
    digest = hashlib.sha256()
    kept = bytearray()
    count = 0
    out: IO[bytes] | None = None
    if dest is not None:
        local = dest / member.name.removeprefix("model/")  # a name from our allow-list
        out = open(os.open(local, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")  # noqa: SIM115
    try:
        while True:
            chunk = src.read(_CHUNK)
            if not chunk:
                break
            if count == 0:
                _check_content(member.name, chunk, bad)
            count += len(chunk)
            if count > member.size:
                raise bad(f"member {member.name!r} holds more than the declared {member.size} bytes")
            digest.update(chunk)
            if keep:
                kept += chunk
            if out is not None:
                out.write(chunk)
    finally:
        if out is not None:
            out.close()
    if count != member.size:
        raise bad(f"member {member.name!r} ends after {count} of {member.size} bytes; the file "
                  "is truncated")
    if digest.hexdigest() != member.sha256:
        raise bad(f"sha256 of {member.name!r} is {digest.hexdigest()[:16]}..., the manifest "
                  f"says {member.sha256[:16]}...; the file was altered or damaged")
    if member.size == 0:
        _check_content(member.name, b"", bad)
    return bytes(kept)


def _check_content(name: str, head: bytes, bad: Callable[[str], BundleError]) -> None:
    if _is_pickle(head):
        raise bad(f"member {name!r} is a Python pickle payload (protocol {head[1]} header); "
                  "pickles are never loaded because they can run code")
    suffix = Path(name).suffix
    if not head.startswith(_MAGIC[suffix]):
        raise bad(f"member {name!r} does not start like a {suffix} model file of ours "
                  f"(expected {_MAGIC[suffix][0]!r}, got {head[:8]!r})")


def _check_model_json(data: bytes, manifest: BundleManifest,
                      bad: Callable[[str], BundleError]) -> dict[str, Any]:
    """The OrderFlowModel manifest, parsed here (cheap, no code) and checked strictly."""
    doc = _parse_json(data, "model/model.json", "")
    if not isinstance(doc, dict):
        raise bad("model/model.json is not a JSON object")
    unknown = sorted(set(doc) - _MODEL_JSON_KEYS)
    if unknown:
        raise bad(f"model/model.json has unknown field(s) {unknown}; our loader takes its trust "
                  "lists and code from ticker-registry itself, never from a bundle")
    if doc.get("format_version") != MODEL_FORMAT_VERSION:
        raise bad(f"model/model.json has format_version {doc.get('format_version')!r}; this "
                  f"ticker-registry reads version {MODEL_FORMAT_VERSION}")
    if doc.get("model_type") != manifest.model_type:
        raise bad(f"model/model.json says model_type {doc.get('model_type')!r}, the manifest "
                  f"{manifest.model_type!r}")
    suffix = HEAD_SUFFIX[manifest.model_type]
    if doc.get("heads") != {h: f"{h}{suffix}" for h in HEADS}:
        raise bad(f"model/model.json names head files {doc.get('heads')!r}; expected "
                  f"{ {h: f'{h}{suffix}' for h in HEADS} }")
    if not isinstance(doc.get("config"), dict):
        raise bad("model/model.json has no config")
    try:
        config = Config.from_dict(doc["config"], source="model/model.json")
    except (ConfigError, TypeError, AttributeError) as exc:
        raise bad(f"model/model.json has a bad config: {exc}") from None
    if config.model_type != manifest.model_type:
        raise bad(f"model/model.json config says model_type {config.model_type!r}")
    spec = doc.get("feature_spec")
    if not isinstance(spec, dict) or tuple(spec.get("feature_names") or ()) != FEATURE_NAMES:
        raise bad("model/model.json uses features this version of ticker-registry does not "
                  "compute")
    metrics = doc.get("metrics")
    if not isinstance(metrics, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values()):
        raise bad("model/model.json 'metrics' is not a map of numbers")
    baselines = doc.get("baselines")
    if not isinstance(baselines, dict) or set(baselines) != {"majority_class",
                                                             "median_time_to_execution"}:
        raise bad("model/model.json 'baselines' is malformed")
    return doc


def _parse_json(data: bytes, name: str, label: str) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise ValueError(f"duplicate key {key!r}")
            out[key] = value
        return out

    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        where = f"{label} is refused: " if label else "bundle refused: "
        raise BundleError(f"{where}{name} is not valid JSON ({_first_line(exc)})") from None


# --------------------------------------------------------------------------- import
#: sha256 of bundles whose exact bytes passed the isolated test load in this
#: process (kept in memory only): importing them again (force, as_ticker,
#: another store) skips the subprocess, not the verification.
_TEST_LOADED: dict[str, list[float]] = {}


def import_bundle(registry: TickerRegistry, path: str | os.PathLike[str],
                  as_ticker: str | None = None, force: bool = False) -> ImportResult:
    """Verify a bundle, test-load its models in a subprocess, register and gate a new version.

    Importing the same file again returns the version it created (``created``
    False) unless ``force`` is true. ``as_ticker`` registers it under another
    ticker. Nothing is written to the registry unless every check passes.

    Raises
    ------
    BundleError
        The file is not a bundle, or fails a check (the message says which).
    """
    path = Path(path)
    target = normalize_ticker(as_ticker) if as_ticker else None
    workdir = Path(tempfile.mkdtemp(prefix="ticker-registry-import-"))  # 0700, ours alone
    try:
        model_dir = workdir / "model"
        verified = _read_bundle(path, dest=model_dir)
        manifest = verified.manifest
        ticker = target or manifest.ticker
        lineage = _lineage(manifest, path.name)
        key = f"import-{verified.sha256[:24]}"
        if force:
            key = f"{key}-{uuid.uuid4().hex[:12]}"
        else:
            existing = registry.find_by_idempotency_key(ticker, key)
            if existing is not None:
                return ImportResult(existing, False, manifest)
        expected = _TEST_LOADED.get(verified.sha256)
        if expected is None:
            expected = check_in_subprocess(model_dir, label=f"bundle {path.name!r}")
            if len(_TEST_LOADED) < 256:
                _TEST_LOADED[verified.sha256] = expected
        try:
            model = OrderFlowModel.load(model_dir)
        except ModelFormatError as exc:
            raise BundleError(f"bundle {path.name!r} is refused: {exc}") from None
        _check_same_prediction(model, expected, path.name)
        _warn_on_version_mismatch(manifest, path.name)
        info, created = registry.register(
            ticker, model, lineage=lineage, idempotency_key=key,
            extra_tags=_import_tags(manifest, path.name, verified.sha256),
            description=_description(manifest, path.name))
        decision = registry.apply_gate(ticker, info.version, model) if created else None
        return ImportResult(registry.get_version(ticker, info.version), created, manifest,
                            decision)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _lineage(manifest: BundleManifest, file_name: str) -> TrainingLineage:
    lin = manifest.lineage
    try:
        n_samples = int(lin.get("n_samples", "0") or 0)
    except ValueError:
        raise BundleError(f"bundle {file_name!r} is refused: lineage n_samples "
                          f"{lin.get('n_samples')!r} is not an integer") from None
    core = ("n_samples", "first_trade", "last_trade", "fingerprint", "source")
    return TrainingLineage(n_samples=n_samples, first_trade=lin.get("first_trade") or None,
                           last_trade=lin.get("last_trade") or None,
                           fingerprint=lin.get("fingerprint", ""),
                           source=lin.get("source", "import"),
                           extra={k: v for k, v in lin.items() if k not in core})


def _import_tags(manifest: BundleManifest, file_name: str, sha256: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for key, value in manifest.tags.items():
        if key.startswith("lineage."):
            continue  # travels in the lineage
        if key in _OWN_TAGS or key.startswith(_OWN_TAG_PREFIXES):
            key = f"source.{key}"  # a chain of imports nests: source.source.ticker, ...
        if len(key) <= 250:
            tags[key] = value
    tags.update({
        "imported_from": file_name[:250],
        "import.source_model": manifest.model_name,
        "import.source_version": str(manifest.model_version),
        "import.source_registry": manifest.source_registry,
        "import.bundle_sha256": sha256,
    })
    return tags


def _description(manifest: BundleManifest, file_name: str) -> str:
    note = (f"Imported from {file_name} ({manifest.model_name} version "
            f"{manifest.model_version} of {manifest.source_registry}).")
    return f"{manifest.description}\n\n{note}" if manifest.description else note


def _warn_on_version_mismatch(manifest: BundleManifest, file_name: str) -> None:
    ours = package_versions()
    for pkg in ("xgboost", "lightgbm", "scikit-learn", "skops", "numpy"):
        theirs = manifest.package_versions.get(pkg)
        if theirs and ours.get(pkg) and theirs.split(".")[:2] != ours[pkg].split(".")[:2]:
            log.warning("%s was trained with %s %s; this process has %s", file_name, pkg,
                        theirs, ours[pkg])


def _check_same_prediction(model: OrderFlowModel, expected: list[float], file_name: str) -> None:
    import numpy as np

    got = model.predict_matrix(np.zeros((1, len(FEATURE_NAMES))))[0]
    if not np.allclose(got, expected, rtol=1e-9, atol=1e-12, equal_nan=False):
        raise BundleError(f"bundle {file_name!r} is refused: the model predicts differently "
                          "here than in the isolated test load")


# --------------------------------------------------------------------------- subprocess check
_CHILD = ("import sys; sys.path.insert(0, sys.argv[1]); "
          "from ticker_registry.bundle import _check_main; sys.exit(_check_main(sys.argv[2:]))")


def check_in_subprocess(directory: Path, *, label: str = "model directory",
                        timeout: float = CHECK_TIMEOUT) -> list[float]:
    """Load and test-predict the native model in ``directory`` in a separate Python process.

    Returns the predictions of a zero feature row. A crash, a timeout or a
    refusal in the child raises :class:`BundleError`.
    """
    root = str(Path(__file__).resolve().parent.parent)  # our own code, not the bundle's
    cmd = [sys.executable, "-I", "-c", _CHILD, root, "--check", str(directory)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, cwd=directory, env=env,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise BundleError(f"{label} is refused: loading its models did not finish within "
                          f"{timeout:.0f} s in the isolated test load") from None
    lines = proc.stdout.decode("utf-8", "replace").strip().splitlines()
    try:
        report = json.loads(lines[-1]) if lines else {}
    except ValueError:
        report = {}
    if proc.returncode < 0:
        try:
            sig = signal.Signals(-proc.returncode).name
        except ValueError:
            sig = f"signal {-proc.returncode}"
        raise BundleError(f"{label} is refused: the isolated test load of its models crashed "
                          f"({sig}); a crafted or damaged tree file can do this")
    if not isinstance(report, dict) or not report.get("ok"):
        reason = report.get("error") if isinstance(report, dict) else None
        if not reason:
            tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
            reason = f"exit code {proc.returncode}: {' '.join(tail)[:300]}"
        raise BundleError(f"{label} is refused by the isolated test load: {reason}")
    prediction = report.get("prediction")
    if not isinstance(prediction, list):
        raise BundleError(f"{label} is refused: the isolated test load returned no prediction")
    return [float(x) for x in prediction]


def _check_main(argv: list[str]) -> int:
    """Entry point of the child: ``--check DIR``; prints one JSON line."""
    if len(argv) != 2 or argv[0] != "--check":
        print(json.dumps({"ok": False, "error": "usage: python -m ticker_registry.bundle "
                                                "--check DIR"}))
        return 2
    try:
        prediction = check_model_directory(Path(argv[1]))
    except Exception as exc:  # report every failure as data; the parent decides
        print(json.dumps({"ok": False, "error": f"{_first_line(exc)}"}))
        return 3
    print(json.dumps({"ok": True, "prediction": prediction}))
    return 0


def check_model_directory(directory: Path) -> list[float]:
    """Tree sanity checks, load, and a prediction on a zero row (run in the child process)."""
    import numpy as np

    manifest = read_model_manifest(directory)
    model_type = manifest["model_type"]
    n_features = len(FEATURE_NAMES)
    for head in HEADS:
        path = directory / f"{head}{HEAD_SUFFIX[model_type]}"
        n_classes = 3 if head == "flow_type" else 0
        if model_type == "xgboost":
            _check_xgb_trees(path, n_features, n_classes)
        elif model_type == "lightgbm":
            _check_lgb_trees(path, n_features)
        else:
            _check_skops_file(path)
    model = OrderFlowModel.load(directory, n_jobs=1)
    if model_type == "random_forest":
        for head in HEADS:
            _check_rf_trees(model.heads_[head].estimator, head, n_features)  # type: ignore[attr-defined]
    out = model.predict_matrix(np.zeros((1, n_features)))
    if out.shape != (1, 5) or not np.isfinite(out).all():
        raise ModelFormatError(f"the model predicts {out!r} for a zero row; expected 5 finite "
                               "numbers")
    return [float(x) for x in out[0]]


def _check_index_arrays(where: str, left: Any, right: Any, feature: Any, n_nodes: int,
                        n_features: int, leaf: int) -> None:
    import numpy as np

    left, right, feature = (np.asarray(a, dtype=np.int64) for a in (left, right, feature))
    if not (len(left) == len(right) == len(feature) == n_nodes) or n_nodes < 1:
        raise ModelFormatError(f"{where}: node arrays disagree on the node count {n_nodes}")
    is_leaf = left == leaf
    if not np.array_equal(is_leaf, right == leaf):
        raise ModelFormatError(f"{where}: a node has only one child")
    inner = ~is_leaf
    if ((left[inner] <= 0) | (left[inner] >= n_nodes) | (right[inner] <= 0)
            | (right[inner] >= n_nodes)).any():
        raise ModelFormatError(f"{where}: a child index is out of range (0..{n_nodes - 1})")
    if ((feature[inner] < 0) | (feature[inner] >= n_features)).any():
        raise ModelFormatError(f"{where}: a split feature index is out of range "
                               f"(0..{n_features - 1})")


def _check_xgb_trees(path: Path, n_features: int, n_classes: int) -> None:
    import xgboost as xgb

    doc = json.loads(bytes(xgb.Booster(model_file=str(path)).save_raw("json")))
    learner = doc["learner"]
    params = learner["learner_model_param"]
    if int(params["num_feature"]) != n_features:
        raise ModelFormatError(f"{path.name}: {params['num_feature']} features; ours have "
                               f"{n_features}")
    if int(params.get("num_class", "0")) != n_classes:
        raise ModelFormatError(f"{path.name}: {params.get('num_class')} classes; expected "
                               f"{n_classes}")
    booster = learner["gradient_booster"]
    model = booster["model"] if "model" in booster else booster["gbtree"]["model"]
    for i, tree in enumerate(model["trees"]):
        n = int(tree["tree_param"]["num_nodes"])
        if any(int(t) != 0 for t in tree.get("split_type", [])):
            raise ModelFormatError(f"{path.name} tree {i}: categorical splits are not ours")
        _check_index_arrays(f"{path.name} tree {i}", tree["left_children"],
                            tree["right_children"], tree["split_indices"], n, n_features, -1)


def _check_lgb_trees(path: Path, n_features: int) -> None:
    header: dict[str, str] = {}
    trees: list[dict[str, str]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            key, sep, value = line.rstrip("\n").partition("=")
            if not sep:
                if key == "end of trees":
                    break
                continue
            if key == "Tree":
                trees.append({})
            elif trees:
                trees[-1][key] = value
            else:
                header[key] = value
    if int(header.get("max_feature_idx", "-1")) != n_features - 1:
        raise ModelFormatError(f"{path.name}: max_feature_idx {header.get('max_feature_idx')}; "
                               f"ours is {n_features - 1}")
    for i, tree in enumerate(trees):
        leaves = int(tree["num_leaves"])
        if int(tree.get("num_cat", "0")) != 0:
            raise ModelFormatError(f"{path.name} tree {i}: categorical splits are not ours")
        if leaves < 2:
            continue
        ints = {k: [int(x) for x in tree[k].split()] for k in
                ("split_feature", "left_child", "right_child")}
        n = leaves - 1
        if not all(len(v) == n for v in ints.values()):
            raise ModelFormatError(f"{path.name} tree {i}: node arrays disagree with num_leaves")
        for child in ints["left_child"] + ints["right_child"]:
            if not (0 < child < n if child >= 0 else ~child < leaves):
                raise ModelFormatError(f"{path.name} tree {i}: a child index is out of range")
        if any(not 0 <= s < n_features for s in ints["split_feature"]):
            raise ModelFormatError(f"{path.name} tree {i}: a split feature index is out of range")


def _check_skops_file(path: Path) -> None:
    import zipfile

    import skops.io as sio

    from .heads import SKOPS_TRUSTED

    with zipfile.ZipFile(path) as archive:
        entries = archive.infolist()
    if len(entries) > 100_000 or sum(e.file_size for e in entries) > 4 * MAX_MEMBER_BYTES:
        raise ModelFormatError(f"{path.name}: its zip holds too many or too large entries")
    untrusted = set(sio.get_untrusted_types(file=path))
    unexpected = sorted(untrusted - set(SKOPS_TRUSTED))
    if unexpected:
        raise ModelFormatError(f"{path.name} contains types outside our allow-list "
                               f"(SKOPS_TRUSTED): {unexpected}")


def _check_rf_trees(estimator: Any, head: str, n_features: int) -> None:
    if getattr(estimator, "n_features_in_", None) != n_features:
        raise ModelFormatError(f"{head}: the forest expects {estimator.n_features_in_} features")
    for i, tree_estimator in enumerate(estimator.estimators_):
        tree = tree_estimator.tree_
        _check_index_arrays(f"{head} tree {i}", tree.children_left, tree.children_right,
                            tree.feature, int(tree.node_count), n_features, -1)


# --------------------------------------------------------------------------- helpers
def redact_uri(uri: str) -> str:
    """``uri`` without a password (in the netloc or as a password/token query parameter)."""
    parts = urlsplit(uri)
    out = uri
    if parts.password is not None:
        host = parts.netloc.rpartition("@")[2]
        out = out.replace(parts.netloc, f"{parts.username}@{host}" if parts.username else host, 1)
    if parts.query:
        pairs = [(k, "***" if re.search(r"pass|token|secret|key", k, re.I) else v)
                 for k, v in parse_qsl(parts.query, keep_blank_values=True)]
        out = out.replace(f"?{parts.query}", f"?{urlencode(pairs)}", 1)
    return out


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


def _text(data: dict[str, Any], key: str, limit: int) -> str:
    value = data[key]
    if not isinstance(value, str) or len(value) > limit:
        raise ValueError(f"manifest {key!r} is not a string of at most {limit} characters")
    return value


def _str_map(data: dict[str, Any], key: str, max_items: int, max_len: int,
             keys: re.Pattern[str] | None = None) -> dict[str, str]:
    value = data[key]
    if not isinstance(value, dict) or len(value) > max_items:
        raise ValueError(f"manifest {key!r} is not a map of at most {max_items} entries")
    for k, v in value.items():
        if not isinstance(v, str) or len(v) > max_len or (keys is not None and not keys.match(k)):
            raise ValueError(f"manifest {key!r} entry {k[:60]!r} is not a safe string pair")
    return dict(value)


def _metric_map(data: dict[str, Any], key: str) -> dict[str, float]:
    value = data[key]
    if not isinstance(value, dict) or len(value) > 1000 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()):
        raise ValueError(f"manifest {key!r} is not a map of numbers")
    return {k: float(v) for k, v in value.items()}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _human(n: int) -> str:
    return f"{n // _MiB} MiB" if n >= _MiB else f"{n} bytes"


if __name__ == "__main__":
    sys.exit(_check_main(sys.argv[1:]))
