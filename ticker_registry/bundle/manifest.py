"""The bundle format: constants, caps, member allow-lists and the strict manifest records.

The layout of a bundle and the order of its checks are drawn in
:mod:`ticker_registry.bundle`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from ..exceptions import BundleError, TickerRegistryError
from ..heads import HEAD_SUFFIX
from ..served import HEADS
from ..tickers import normalize_ticker
from .keys import first_bad_key, metrics_problem

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
_CHUNK = 64 * 1024
_CODE_NAMES = frozenset({"mlmodel", "python_model.pkl", "conda.yaml", "python_env.yaml",
                         "requirements.txt", "__init__.py"})
_CODE_SUFFIXES = (".py", ".pyc", ".pyo", ".pyw", ".pyz", ".so", ".dll", ".dylib", ".sh", ".exe")
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".cloudpickle", ".dill", ".pt", ".pth",
                    ".npy", ".npz")
_TAG_KEY = re.compile(r"^[A-Za-z0-9_.\-/ ]{1,250}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


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
            manifest = cls(
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
        # the keys an import writes from these (verbatim, or under lineage.), checked now
        problem = (first_bad_key(manifest.tags, "manifest tag")
                   or first_bad_key((f"lineage.{k}" for k in manifest.lineage), "manifest lineage")
                   or first_bad_key(manifest.params, "manifest param"))
        if problem:
            raise bad(problem)
        return manifest


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


# --------------------------------------------------------------------------- helpers
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
    if not isinstance(value, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()):
        raise ValueError(f"manifest {key!r} is not a map of numbers")
    problem = metrics_problem(value, f"manifest {key!r}")
    if problem:
        raise ValueError(problem)
    return {k: float(v) for k, v in value.items()}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _human(n: int) -> str:
    return f"{n // _MiB} MiB" if n >= _MiB else f"{n} bytes"
