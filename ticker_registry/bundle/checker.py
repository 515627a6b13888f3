"""The isolated check process: started once per process, reused, replaced after any failure.

Step 4 of :mod:`ticker_registry.bundle` loads and test-predicts a bundle's models in a
separate Python process, because a crafted tree file can crash, hang or exhaust the
memory of the process that loads it. Starting that Python (numpy, pandas and a native
library) takes half a second or more, the check itself tens of milliseconds, so one child
serves the checks of a whole process:

- **isolated**: a separate process, ``python -I`` (no user site, no ``PYTHON*``
  variables, no current directory on ``sys.path``), ``OMP_NUM_THREADS=1``, at ``/``
  between checks and inside the checked directory during one, its address space capped at
  :data:`CHECK_MEMORY_BYTES` (``RLIMIT_AS``);
- **lean**: it imports our check code (:mod:`.check`) without the package's
  ``__init__`` (no MLflow, no SQLAlchemy): numpy, pandas (the serving code) and the one
  native library a model needs;
- **bounded**: each check has a timeout (:data:`CHECK_TIMEOUT`), after which the child is
  killed; a reply is at most :data:`MAX_REPLY_BYTES`;
- **replaced**: a crash, a timeout, a refusal or a garbled reply ends the child (a process
  that has seen a refused bundle is not trusted with the next one), and so do
  :data:`MAX_CHECKS_PER_CHILD` checks; the next check starts a fresh one;
- **never orphaned**: it exits when its stdin closes (the parent exited, or
  :meth:`CheckWorker.close` at interpreter exit) and, mid-check, once its parent is gone.

The protocol is one JSON line each way (:func:`.check.serve`). A process forked from
the parent starts its own child rather than sharing the parent's.
"""

from __future__ import annotations

import atexit
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..exceptions import BundleError

__all__ = ["CHECK_MEMORY_BYTES", "CHECK_TIMEOUT", "MAX_CHECKS_PER_CHILD", "MAX_REPLY_BYTES",
           "CheckWorker", "check_in_subprocess", "shared_worker", "start_check_worker"]

CHECK_TIMEOUT = 120.0  #: seconds for one test load (a child's start-up included)
CHECK_MEMORY_BYTES = 8 << 30  #: address space of the child (RLIMIT_AS): 8 GiB
MAX_REPLY_BYTES = 1 << 16  #: one reply line; a longer one ends the child
MAX_CHECKS_PER_CHILD = 100  #: checks one child serves before a fresh one starts
_STDERR_TAIL = 4096  #: bytes of the child's stderr kept for a failure's message
_EXIT_GRACE = 2.0  #: seconds a closing child gets to exit on its own before it is killed

#: The child's set-up: the memory cap, then stand-ins for our two packages (their
#: ``__init__`` would import MLflow), so that only the modules :mod:`.check` needs load.
_BOOT_SETUP = """\
import os, sys, types
root, limit = sys.argv[1], int(sys.argv[2])
try:
    import resource
except ImportError:
    resource = None
if resource is not None and limit > 0:
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    limit = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
sys.path.insert(0, root)
for name in ("ticker_registry", "ticker_registry.bundle"):
    package = types.ModuleType(name)
    package.__path__ = [os.path.join(root, *name.split("."))]
    sys.modules[name] = package
"""
#: The child: its set-up, then the worker loop of :mod:`.check`.
_BOOT = _BOOT_SETUP + "from ticker_registry.bundle.check import serve\nsys.exit(serve())\n"


def child_command() -> list[str]:
    """The command line of the check child: ``python -I -c <boot> ROOT MEMORY_BYTES``."""
    # our own code, not the bundle's: the directory holding ticker_registry/bundle/check.py
    root = str(Path(__file__).resolve().parents[2])
    return [sys.executable, "-I", "-c", _BOOT, root, str(CHECK_MEMORY_BYTES)]


class CheckWorker:
    """One check child at a time, started on first use and reused across checks.

    Parameters
    ----------
    command
        The child's command line; :func:`child_command` unless given (tests pass others).
    """

    def __init__(self, command: Sequence[str] | None = None) -> None:
        self.command = list(command) if command is not None else child_command()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._owner = 0  # pid of the process that started the child
        self._checks = 0
        self._next_id = 0

    @property
    def pid(self) -> int | None:
        """The running child's pid, or None."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self) -> None:
        """Start the child now if none is running, so its start-up overlaps the caller's work."""
        if self._lock.acquire(blocking=False):  # busy: a check is running, so is a child
            try:
                self._running()
            finally:
                self._lock.release()

    def check(self, directory: Path, *, label: str = "model directory",
              timeout: float = CHECK_TIMEOUT,
              meanwhile: Callable[[], object] | None = None) -> list[float]:
        """Load and test-predict the native model in ``directory`` in the child.

        Returns the predictions of a zero feature row. A crash, a timeout or a refusal in
        the child raises :class:`BundleError` and ends the child. ``meanwhile``, if given,
        runs here once the request is sent, while the child works (it must not read the
        directory); the timeout counts from the request.
        """
        with self._lock:
            proc = self._running()
            self._next_id += 1
            ident = self._next_id
            request = json.dumps({"id": ident, "check": str(Path(directory).resolve())})
            deadline = time.monotonic() + timeout
            try:
                assert proc.stdin is not None
                proc.stdin.write(request.encode() + b"\n")
            except OSError:
                pass  # it died since: reading finds the end of its output and says how
            try:
                if meanwhile is not None:
                    meanwhile()
                line, tail, timed_out = _read_reply(proc, deadline)
                return self._prediction(proc, ident, line, tail, timed_out, label, timeout)
            except BaseException:  # a refusal, an error meanwhile, an interrupt: a reply
                self._stop(kill=True)  # still to come would answer the next request
                raise

    def _prediction(self, proc: subprocess.Popen[bytes], ident: int, line: bytes | None,
                    tail: bytes, timed_out: bool, label: str, timeout: float) -> list[float]:
        if timed_out:
            raise BundleError(f"{label} is refused: loading its models did not finish within "
                              f"{timeout:.0f} s in the isolated test load")
        if line is None:  # no reply: it exited or was killed
            code = _exit_code(proc)
            if code < 0:
                try:
                    sig = signal.Signals(-code).name
                except ValueError:
                    sig = f"signal {-code}"
                raise BundleError(f"{label} is refused: the isolated test load of its models "
                                  f"crashed ({sig}); a crafted or damaged tree file can do this")
            last = tail.decode("utf-8", "replace").strip().splitlines()[-1:]
            raise BundleError(f"{label} is refused by the isolated test load: exit code "
                              f"{code}: {' '.join(last)[:300]}")
        try:
            report = json.loads(line)
        except ValueError:
            report = None
        if not isinstance(report, dict) or report.get("id") != ident or not report.get("ok"):
            reason = report.get("error") if isinstance(report, dict) else None
            raise BundleError(f"{label} is refused by the isolated test load: "
                              f"{reason or 'its reply was not one of ours'}")
        prediction = report.get("prediction")
        if not isinstance(prediction, list) or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in prediction):
            raise BundleError(f"{label} is refused: the isolated test load returned no "
                              "prediction")
        self._checks += 1
        if self._checks >= MAX_CHECKS_PER_CHILD:
            self._stop(kill=False)
        return [float(x) for x in prediction]

    def close(self) -> None:
        """End the child: close its stdin, give it :data:`_EXIT_GRACE` seconds, then kill it.

        A check still running in another thread (at interpreter exit, a daemon thread's)
        is not waited for: its child is killed, and that check reports a crash.
        """
        if self._lock.acquire(timeout=_EXIT_GRACE):
            try:
                self._stop(kill=False)
            finally:
                self._lock.release()
        elif (proc := self._proc) is not None and self._owner == os.getpid():
            proc.kill()

    def _running(self) -> subprocess.Popen[bytes]:
        """The live child of this process, started if there is none (call with the lock)."""
        proc = self._proc
        if proc is not None and self._owner != os.getpid():
            proc = self._proc = None  # inherited through a fork: the parent's child, not ours
        if proc is not None and proc.poll() is not None:
            self._stop(kill=True)  # died while idle: nothing was being checked
            proc = None
        if proc is None:
            proc = subprocess.Popen(
                self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, cwd="/", bufsize=0,
                env={**os.environ, "OMP_NUM_THREADS": "1"})
            self._proc, self._owner, self._checks = proc, os.getpid(), 0
        return proc

    def _stop(self, *, kill: bool) -> None:
        proc, self._proc = self._proc, None
        if proc is None or self._owner != os.getpid():
            return
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            try:
                if stream is not None:
                    stream.close()  # stdin's end is the child's signal to exit
            except OSError:
                pass
        if not kill:
            try:
                proc.wait(timeout=_EXIT_GRACE)
                return
            except subprocess.TimeoutExpired:
                pass
        proc.kill()
        proc.wait()


def _read_reply(proc: subprocess.Popen[bytes],
                deadline: float) -> tuple[bytes | None, bytes, bool]:
    """The child's next reply line, its stderr's tail, and whether the deadline passed first.

    The line is None when the child's output ended without one (it exited or was killed;
    its stderr is then read to the end for the message), and empty when it ran over
    :data:`MAX_REPLY_BYTES`. Reads stderr as it comes, so the child never blocks on it.
    """
    assert proc.stdout is not None and proc.stderr is not None
    out, tail, ended, last = b"", b"", False, False
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        selector.register(proc.stderr, selectors.EVENT_READ)
        while True:
            if b"\n" in out:
                return out.split(b"\n", 1)[0], tail, False
            if len(out) > MAX_REPLY_BYTES:
                return b"", tail, False
            if not selector.get_map() or last:
                return None, tail, last and not ended
            left = deadline - time.monotonic()
            last = left <= 0  # past the deadline, one look at what is already there
            for key, _ in selector.select(max(left, 0.0)):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    ended = ended or key.fileobj is proc.stdout
                elif key.fileobj is proc.stdout:
                    out += chunk
                else:
                    tail = (tail + chunk)[-_STDERR_TAIL:]


def _exit_code(proc: subprocess.Popen[bytes]) -> int:
    """The return code of a child whose output has ended (killed if it does not exit)."""
    try:
        return proc.wait(timeout=_EXIT_GRACE)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


_SHARED: CheckWorker | None = None
_SHARED_LOCK = threading.Lock()


def shared_worker() -> CheckWorker:
    """The process's check worker (created on first use; its child starts on first check)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = CheckWorker()
        return _SHARED


def start_check_worker() -> None:
    """Start the shared child now if none runs (import does this before reading a bundle)."""
    shared_worker().start()


def check_in_subprocess(directory: Path, *, label: str = "model directory",
                        timeout: float = CHECK_TIMEOUT,
                        meanwhile: Callable[[], object] | None = None) -> list[float]:
    """Load and test-predict the native model in ``directory`` in the isolated child.

    Returns the predictions of a zero feature row. A crash, a timeout or a
    refusal in the child raises :class:`BundleError`. ``meanwhile`` runs here while
    the child works (:meth:`CheckWorker.check`).
    """
    return shared_worker().check(directory, label=label, timeout=timeout, meanwhile=meanwhile)


def _close_shared() -> None:
    if _SHARED is not None:
        _SHARED.close()


def _forget_after_fork() -> None:
    """In a forked child: a new lock, and a worker of its own when it first checks."""
    global _SHARED, _SHARED_LOCK
    _SHARED, _SHARED_LOCK = None, threading.Lock()


atexit.register(_close_shared)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
