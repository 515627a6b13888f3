"""Per-ticker mutual exclusion for registry writes (registration and alias moves).

MLflow offers no compare-and-set, so writes to one ticker are serialised:

- on the embedded SQLite store, with an ``flock`` on a file beside the
  database (``.locks/<model name>.lock``), which also excludes other threads
  and processes on this machine;
- on any other store (a shared server), with a lock *registered model*
  ``_lock.<model name>``: creating a registered model is atomic (the name is
  unique), so exactly one writer holds it. Its ``acquired_at`` tag lets a lock
  left by a crashed process be broken after ``STALE_AFTER`` seconds.
"""

from __future__ import annotations

import fcntl
import os
import random
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .exceptions import RegistryError

if TYPE_CHECKING:
    from .registry import TickerRegistry

__all__ = ["LOCK_PREFIX", "STALE_AFTER", "TickerLock"]

LOCK_PREFIX = "_lock."
STALE_AFTER = 60.0


class TickerLock:
    """Context manager holding the write lock of one registered model."""

    def __init__(self, registry: TickerRegistry, name: str, timeout: float = 60.0) -> None:
        self.registry = registry
        self.name = name
        self.timeout = timeout
        self._file: IO[Any] | None = None

    def __enter__(self) -> TickerLock:
        if self.registry.is_local:
            db = Path(self.registry.tracking_uri.removeprefix("sqlite:///"))
            folder = db.parent / ".locks"
            folder.mkdir(parents=True, exist_ok=True)
            self._file = open(folder / f"{self.name}.lock", "a+")  # noqa: SIM115
            fcntl.flock(self._file, fcntl.LOCK_EX)
        else:
            self._acquire_remote()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        else:
            self._release_remote()

    # -------------------------------------------------------------- remote
    @property
    def _lock_name(self) -> str:
        return f"{LOCK_PREFIX}{self.name}"

    def _acquire_remote(self) -> None:
        reg = self.registry
        deadline = time.monotonic() + self.timeout
        delay = 0.02
        while True:
            try:
                reg._call(reg.client.create_registered_model, self._lock_name,
                          tags={"acquired_at": repr(time.time()), "owner": f"{os.getpid()}"},
                          description="transient write lock of ticker-registry; "
                                      f"safe to delete when older than {STALE_AFTER:.0f} s")
                return
            except RegistryError as exc:
                if not getattr(exc, "already_exists", False):
                    raise
            self._break_if_stale()
            if time.monotonic() > deadline:
                raise RegistryError(f"timed out after {self.timeout:.0f} s waiting for the write "
                                    f"lock of {self.name}; if no other writer is running, delete "
                                    f"the registered model {self._lock_name!r}")
            time.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, 0.5)

    def _break_if_stale(self) -> None:
        reg = self.registry
        try:
            rm = reg._call(reg.client.get_registered_model, self._lock_name)
            acquired = float((rm.tags or {}).get("acquired_at", "0"))
        except (RegistryError, ValueError):
            return
        if time.time() - acquired > STALE_AFTER:
            self._release_remote()

    def _release_remote(self) -> None:
        reg = self.registry
        try:
            reg._call(reg.client.delete_registered_model, self._lock_name)
        except RegistryError:
            pass
