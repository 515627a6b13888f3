"""Per-ticker mutual exclusion for registry writes (registration and alias moves).

MLflow offers no compare-and-set, so writes to one ticker are serialised:

- on the embedded SQLite store, with a ``filelock.FileLock`` on a file beside
  the database (``.locks/<model name>.lock``; ``flock`` on POSIX, ``msvcrt``
  on Windows), which also excludes other threads and processes on this machine;
- on any other store (a shared server), with a lock *registered model*
  ``_lock.<model name>``: creating a registered model is atomic (the name is
  unique), so exactly one writer holds it. Its ``owner`` tag (host, pid,
  thread, random token) and ``acquired_at`` tag let a lock left behind be
  broken: at once when its owner was this process (a release lost to an
  unreachable server) or a dead process on this host, after ``STALE_AFTER``
  seconds otherwise. A lock whose creation was answered by a lost response
  and re-sent by MLflow's HTTP retries is recognised as ours by its token.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock

from .exceptions import ModelNotFoundError, RegistryError

if TYPE_CHECKING:
    from .store import MlflowStore

__all__ = ["HOST_ID", "LOCK_PREFIX", "STALE_AFTER", "TickerLock", "process_gone"]

LOCK_PREFIX = "_lock."
STALE_AFTER = 60.0
#: A remote lock released within this many seconds of its taking is ours for sure.
SURE_FOR = STALE_AFTER / 3

log = logging.getLogger(__name__)


def _host_identity() -> str:
    """This host's pid space: host name, boot id and pid namespace (pids mean the same in it)."""
    parts = [socket.gethostname()]
    try:
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        parts.append("?")
    return "/".join(parts).replace(":", "_")


_HOST = _host_identity()
#: This host's pid space, for owners other modules record (training leases).
HOST_ID = _HOST
#: Owner tokens of the remote locks this process holds right now.
_HELD: set[str] = set()
_HELD_LOCK = threading.Lock()


def process_gone(owner: str) -> bool:
    """True when ``owner`` (``<HOST_ID>:<pid>:...``) was a process of this host that exited."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != HOST_ID or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        return False
    return False


class TickerLock:
    """Context manager holding the write lock of one registered model."""

    def __init__(self, store: MlflowStore, name: str, timeout: float = 60.0) -> None:
        self.store = store
        self.name = name
        self.timeout = timeout
        self._file: FileLock | None = None
        self._token: str | None = None
        self._acquired = 0.0  # time.monotonic() when the remote lock was taken

    def __enter__(self) -> TickerLock:
        if self.store.is_local:
            # thread_local=False: the lock is held by this object, whichever thread releases it
            self._file = FileLock(self.store.lock_dir() / f"{self.name}.lock",
                                  thread_local=False, is_singleton=False)
            self._file.acquire()
        else:
            self._acquire_remote()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.release()
            self._file = None
        else:
            self._release_remote()

    # -------------------------------------------------------------- remote
    @property
    def _lock_name(self) -> str:
        return f"{LOCK_PREFIX}{self.name}"

    def _acquire_remote(self) -> None:
        deadline = time.monotonic() + self.timeout
        self._token = f"{_HOST}:{os.getpid()}:{threading.get_ident()}:{uuid.uuid4().hex[:12]}"
        # registered before the create, so no other thread of ours takes it for abandoned
        with _HELD_LOCK:
            _HELD.add(self._token)
        try:
            self._acquire_loop(deadline)
        except BaseException:
            with _HELD_LOCK:
                _HELD.discard(self._token)
            self._token = None
            raise

    def _acquire_loop(self, deadline: float) -> None:
        delay = 0.02
        while True:
            try:
                self._acquired = time.monotonic()  # no later than the acquired_at written
                created = self.store.create_model(
                    self._lock_name,
                    tags={"acquired_at": repr(time.time()), "owner": str(self._token)},
                    description="transient write lock of ticker-registry; "
                                f"safe to delete when older than {STALE_AFTER:.0f} s")
            except ModelNotFoundError:
                # MLflow's create, on a name collision, reads the existing model to word its
                # error; when the holder deleted it in between, that read fails "not found".
                holder = None
            else:
                if created:
                    break
                holder = self._holder()
            if holder is not None and holder[0] == self._token:
                break  # our create went through but its response was lost, then was re-sent
            if holder is not None and self._abandoned(*holder):
                self._delete_if_owned_by(holder[0])
            if time.monotonic() > deadline:
                raise RegistryError(f"timed out after {self.timeout:.0f} s waiting for the write "
                                    f"lock of {self.name}; if no other writer is running, delete "
                                    f"the registered model {self._lock_name!r}")
            time.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, 0.5)

    def _holder(self) -> tuple[str, float] | None:
        """``(owner token, acquired_at)`` of the lock model, or None if it is gone or unreadable."""
        try:
            tags = self.store.get_model(self._lock_name).tags
            return str(tags.get("owner", "")), float(tags.get("acquired_at", "0"))
        except (RegistryError, ValueError):
            return None

    @staticmethod
    def _abandoned(owner: str, acquired: float) -> bool:
        """True when the lock's holder cannot be running any more.

        Older than ``STALE_AFTER``; or taken by this very process but not held by any
        live ``TickerLock`` in it (its release failed, e.g. while the server was down);
        or taken on this host by a process that no longer exists.
        """
        if time.time() - acquired > STALE_AFTER:
            return True
        host, _, rest = owner.partition(":")
        if host == _HOST and rest.partition(":")[0] == str(os.getpid()):
            with _HELD_LOCK:
                return owner not in _HELD
        return process_gone(owner)

    def _delete_if_owned_by(self, owner: str) -> None:
        """Delete the lock model if ``owner`` still holds it (re-read first: narrows the race)."""
        holder = self._holder()
        if holder is None or holder[0] != owner:
            return
        try:
            self.store.delete_model(self._lock_name)
        except RegistryError:
            pass

    def _release_remote(self) -> None:
        token = self._token
        if token is None:
            return
        try:
            # Held briefly (the usual registration), nobody can have taken it for stale: skip
            # the re-read (one request fewer; only clocks more than STALE_AFTER - SURE_FOR
            # apart between hosts would make another writer break it that soon).
            briefly = time.monotonic() - self._acquired < SURE_FOR
            holder = None if briefly else self._holder()
            if holder is not None and holder[0] != token:
                log.warning("the write lock of %s was taken over by %s while held (older than "
                            "%.0f s?); leaving it alone", self.name, holder[0], STALE_AFTER)
                return
            try:
                self.store.delete_model(self._lock_name)
            except ModelNotFoundError:
                pass
            except RegistryError as exc:  # unreachable server: broken later as abandoned/stale
                log.warning("could not release the write lock of %s: %s", self.name, exc)
        finally:
            # only now: until the lock model is gone, our other threads must not take it
            # for abandoned (and delete a successor's lock with ours)
            with _HELD_LOCK:
                _HELD.discard(token)
            self._token = None
