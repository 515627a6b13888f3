"""A bounded reader of the UBJSON files XGBoost writes (``<head>.ubj``).

Every count is checked before its items are read: an array longer than
``max_items`` (or a string longer than :data:`~.limits.MAX_UBJ_STRING_BYTES`,
or nesting deeper than :data:`~.limits.MAX_UBJ_NESTING`) is refused at its
header, so a 3-million-node tree costs a few bytes to refuse instead of the
gigabytes XGBoost's own JSON round trip would take. Typed numeric arrays become
numpy arrays (one read, no per-item objects). Only the subset XGBoost writes is
read (big-endian numbers, ``$``/``#`` optimised containers, keys without an
``S`` marker); anything else is refused.
"""

from __future__ import annotations

import struct
from typing import IO, Any

import numpy as np

from ..exceptions import ModelFormatError
from .limits import MAX_UBJ_NESTING, MAX_UBJ_STRING_BYTES

__all__ = ["read_ubjson"]

#: Fixed-size scalar markers: (struct format, numpy dtype of a typed array of them).
_SCALARS: dict[bytes, tuple[str, str]] = {
    b"i": (">b", ">i1"), b"U": (">B", ">u1"), b"I": (">h", ">i2"), b"l": (">i", ">i4"),
    b"L": (">q", ">i8"), b"d": (">f", ">f4"), b"D": (">d", ">f8"),
}
_INTS = (b"i", b"U", b"I", b"l", b"L")


def read_ubjson(f: IO[bytes], *, where: str, max_items: int) -> Any:
    """The document in ``f``; no container may hold more than ``max_items`` items.

    Raises
    ------
    ModelFormatError
        The file is not UBJSON of the kind XGBoost writes, is truncated, or exceeds a limit.
    """
    doc = _Reader(f, where, max_items).value(_marker(f, where), "", 0)
    if f.read(1):
        raise ModelFormatError(f"{where}: data after the end of the document")
    return doc


def _marker(f: IO[bytes], where: str) -> bytes:
    while True:
        m = f.read(1)
        if not m:
            raise ModelFormatError(f"{where}: the file ends early (truncated UBJSON)")
        if m != b"N":  # no-op
            return m


class _Reader:
    def __init__(self, f: IO[bytes], where: str, max_items: int) -> None:
        self.f, self.where, self.max_items = f, where, max_items

    def bad(self, path: str, what: str) -> ModelFormatError:
        return ModelFormatError(f"{self.where}: {what} at {path or 'the top'}")

    def read(self, n: int, path: str) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise self.bad(path, "the file ends early (truncated UBJSON)")
        return data

    def integer(self, marker: bytes, path: str) -> int:
        if marker not in _INTS:
            raise self.bad(path, f"a length of type {marker!r}, not an integer")
        fmt = _SCALARS[marker][0]
        value = int(struct.unpack(fmt, self.read(struct.calcsize(fmt), path))[0])
        if value < 0:
            raise self.bad(path, f"a negative length {value}")
        return value

    def count(self, path: str, what: str) -> int:
        n = self.integer(_marker(self.f, self.where), path)
        if n > self.max_items:
            raise self.bad(path, f"{what} of {n:,} items, above the {self.max_items:,} a model of "
                                 "ours can hold (its trees are bounded by HYPERPARAMETER_BOUNDS)")
        return n

    def string(self, path: str) -> str:
        n = self.integer(_marker(self.f, self.where), path)
        if n > MAX_UBJ_STRING_BYTES:
            raise self.bad(path, f"a string of {n:,} bytes (at most {MAX_UBJ_STRING_BYTES:,})")
        try:
            return self.read(n, path).decode("utf-8")
        except UnicodeDecodeError:
            raise self.bad(path, "a string that is not UTF-8") from None

    def value(self, marker: bytes, path: str, depth: int) -> Any:
        if marker in _SCALARS:
            fmt = _SCALARS[marker][0]
            return struct.unpack(fmt, self.read(struct.calcsize(fmt), path))[0]
        if marker in (b"S", b"H"):
            return self.string(path)
        if marker == b"C":
            return self.read(1, path).decode("latin-1")
        if marker in (b"T", b"F", b"Z"):
            return {b"T": True, b"F": False, b"Z": None}[marker]
        if marker in (b"[", b"{"):
            if depth >= MAX_UBJ_NESTING:
                raise self.bad(path, f"containers nested deeper than {MAX_UBJ_NESTING}")
            return self.container(marker == b"{", path, depth + 1)
        raise self.bad(path, f"an unknown UBJSON marker {marker!r}")

    def container(self, is_object: bool, path: str, depth: int) -> Any:
        what = "an object" if is_object else "an array"
        typed, n = None, -1
        m = _marker(self.f, self.where)
        if m == b"$":
            typed = _marker(self.f, self.where)
            if _marker(self.f, self.where) != b"#":
                raise self.bad(path, "a typed container without a count")
            m = b"#"
        if m == b"#":
            n = self.count(path, what)
            m = b""
        if typed is not None and not is_object:
            if typed not in _SCALARS:
                raise self.bad(path, f"a typed array of {typed!r}, not of numbers")
            dtype = np.dtype(_SCALARS[typed][1])
            return np.frombuffer(self.read(n * dtype.itemsize, path), dtype=dtype)
        items: Any = {} if is_object else []
        i = 0
        while n < 0 or i < n:
            if n < 0:
                m = m or _marker(self.f, self.where)
                if m == (b"}" if is_object else b"]"):
                    return items
                if i >= self.max_items:
                    raise self.bad(path, f"{what} of more than {self.max_items:,} items")
            if is_object:
                if n < 0:  # the key's length marker was read as the item marker
                    key = self.read(self.integer(m, path), path).decode("utf-8", "replace")
                else:
                    key = self.string(path)
                if len(key) > 256:
                    raise self.bad(path, "a key longer than 256 bytes")
                item_marker = typed or _marker(self.f, self.where)
                items[key] = self.value(item_marker, f"{path}.{key}" if path else key, depth)
            else:
                item_marker = typed or m or _marker(self.f, self.where)
                items.append(self.value(item_marker, f"{path}[{i}]", depth))
            m = b""
            i += 1
        return items
