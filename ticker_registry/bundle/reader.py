"""Streaming verification of a bundle file: file kind, manifest, every member, sha256.

Steps 1-3 of :mod:`ticker_registry.bundle`: the tar is read member by member
and never extracted by :mod:`tarfile`; members are written, when asked, by our
code under our own names.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..exceptions import BundleError, ModelFormatError
from ..model import manifest_config
from ..served import check_manifest
from .keys import metrics_problem, spec_problem
from .manifest import (
    _CHUNK,
    MANIFEST_NAME,
    MAX_BUNDLE_BYTES,
    MAX_COMPRESSION_RATIO,
    MAX_MANIFEST_BYTES,
    RATIO_GRACE_BYTES,
    BundleManifest,
    BundleMember,
    _first_line,
    _human,
    unsafe_name,
)

_EXPECTED = ("expected a bundle written by `ticker-registry export` / export_bundle(): a tar "
             "archive (optionally gzip-compressed) whose first member is manifest.json")
_MAGIC = {".json": (b"{",), ".ubj": (b"{",), ".txt": (b"tree\n",), ".skops": (b"PK\x03\x04",)}


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
        stream: Any = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw  # type: ignore[call-overload]
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
    tar = tarfile.open(fileobj=budget, mode="r|")  # type: ignore[call-overload]  # noqa: SIM115
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
    """The OrderFlowModel manifest, parsed here (cheap, no code) and checked as the loader does,
    and its metrics and feature spec as an import would write and use them."""
    where = "model/model.json"
    doc = _parse_json(data, where, "")
    try:
        doc = check_manifest(doc, where)
        manifest_config(doc, where)
    except ModelFormatError as exc:
        raise bad(str(exc)) from None
    problem = (metrics_problem(doc["metrics"], f"{where} 'metrics'")
               or spec_problem(doc["feature_spec"], doc["config"], where))
    if problem:
        raise bad(problem)
    if doc["model_type"] != manifest.model_type:
        raise bad(f"{where} says model_type {doc['model_type']!r}, the manifest "
                  f"{manifest.model_type!r}")
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
