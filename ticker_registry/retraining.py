"""When and where automatic retraining runs: the manager's background scheduler.

A ticker is due for training when it first has ``min_training_samples``
samples, then every ``retrain_interval`` new (unconsumed) samples, or earlier
when the serving version's live flow_type accuracy falls below
``skill_drop_threshold``. Due trainings run one at a time on a single
background thread (which also carries other slow side work such as logging
live metrics), at most one per ticker in this process; the sample store's
lease extends that to every process. A failed training is retried no sooner
than ``RETRY_BACKOFF_S`` later, so an outage does not turn every new sample
into a doomed training.

Exits. A script that stores the sample crossing ``min_training_samples`` and
then ends must still get its version: at interpreter exit, before the standard
library refuses new thread-pool work (which MLflow needs to write artifacts),
the scheduler waits up to ``close_timeout`` seconds for the in-flight training
to finish; past that it abandons it cleanly (one warning, no traceback, the
lease released), and the samples stay claimed-but-unconsumed for the next
process, which resumes every due training on first use of the ticker. The
worker is our own daemon thread rather than a ``ThreadPoolExecutor`` because
the executor's threads are joined only after that refusal flag is set, so an
abandoned training could neither finish nor be left behind.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from .cache import ServedModel
from .config import Config
from .exceptions import TickerRegistryError
from .samples import SampleStore

__all__ = ["RETRY_BACKOFF_S", "RetrainScheduler"]

log = logging.getLogger(__name__)

#: After a failed retrain (e.g. the registry is down) wait this long before the next attempt.
RETRY_BACKOFF_S = 30.0


class RetrainScheduler:
    """Decides when a ticker is due and runs its retraining in the background.

    Parameters
    ----------
    retrain
        ``retrain(ticker) -> outcome | None``: trains on the stored samples now.
    peek
        ``peek(ticker) -> ServedModel | None``: the cached serving entry, for live skill.
    """

    def __init__(self, config: Config, samples: SampleStore, retrain: Callable[[str], Any],
                 peek: Callable[[str], ServedModel | None],
                 abandon: Callable[[str, int], None] | None = None) -> None:
        self.config = config
        self.samples = samples
        self._retrain = retrain
        self._peek = peek
        self._abandon = abandon
        self._jobs: queue.Queue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None] = \
            queue.Queue()
        self._thread: threading.Thread | None = None
        self._running: str | None = None  # ticker of the training in progress
        self._inflight: dict[str, Future[Any]] = {}
        self._retry_after: dict[str, float] = {}
        self._lock = threading.RLock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn`` on the background thread (created on first use)."""
        future: Future[Any] = Future()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="ticker-registry-bg",
                                                daemon=True)
                self._thread.start()
                _at_early_exit(self)
            self._jobs.put((future, fn, args))
        return future

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, fn, args = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # the future carries it to whoever waits
                future.set_exception(exc)

    def due(self, ticker: str, entry: ServedModel | None) -> bool:
        unconsumed = self.samples.count(ticker, unconsumed=True)
        if unconsumed == 0:
            return False
        consumed = self.samples.count(ticker) - unconsumed
        if consumed == 0:
            return unconsumed >= self.config.min_training_samples
        if unconsumed >= self.config.retrain_interval:
            return True
        threshold = self.config.skill_drop_threshold
        if threshold is not None and entry is not None and entry.live is not None:
            live = entry.live.summary()
            if live and live["live_samples"] >= self.config.performance_window / 2 and \
                    live["live_flow_type_accuracy"] < threshold:
                log.info("%s live accuracy %.3f below %.3f: retraining early", ticker,
                         live["live_flow_type_accuracy"], threshold)
                return True
        return False

    def maybe_schedule(self, ticker: str, entry: ServedModel | None) -> None:
        """Schedule a retrain of ``ticker`` if it is due and none is running."""
        with self._lock:
            running = self._inflight.get(ticker)
            if running is not None and not running.done():
                return
            if time.monotonic() < self._retry_after.get(ticker, 0.0):
                return
            if not self.due(ticker, entry):
                return
            self._inflight[ticker] = self.submit(self._run, ticker)

    def _run(self, ticker: str) -> Any:
        self._running = ticker
        try:
            outcome = self._retrain(ticker)
            if self.due(ticker, self._peek(ticker)):
                # samples kept arriving while we trained: go again (this thread, in order)
                outcome = self._retrain(ticker) or outcome
            return outcome
        except TickerRegistryError as exc:
            log.warning("retraining %s failed, samples kept for the next attempt in %.0f s: %s",
                        ticker, RETRY_BACKOFF_S, exc)
        except Exception:
            log.exception("retraining %s failed, samples kept for the next attempt", ticker)
        finally:
            self._running = None
        self._retry_after[ticker] = time.monotonic() + RETRY_BACKOFF_S
        return None

    def wait(self, timeout: float | None = None) -> list[Any]:
        """Block until scheduled retrainings finish; return their outcomes (None dropped)."""
        with self._lock:
            futures = list(self._inflight.values())
        return [o for o in (f.result(timeout=timeout) for f in futures) if o is not None]

    def shutdown(self, timeout: float | None = None) -> None:
        """Let scheduled work finish (at most ``timeout`` seconds), then stop the thread.

        Work still running after ``timeout`` is abandoned: a warning names the
        ticker, its lease is released, and its samples stay for the next process.
        """
        with self._lock:
            thread, self._thread = self._thread, None
            futures = list(self._inflight.values())
        if thread is None:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        for future in futures:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                future.result(timeout=left)
            except FutureTimeout:
                break
            except BaseException:  # already logged by _run
                pass
        running = self._running
        if running is not None and thread.is_alive():
            log.warning("closing while retraining %s (over %s s): abandoned; its samples stay "
                        "unconsumed and the next process that uses %s trains them", running,
                        timeout, running)
            if self._abandon is not None and thread.ident is not None:
                self._abandon(running, thread.ident)
            return
        self._jobs.put(None)
        thread.join(timeout=5.0)


def _at_early_exit(scheduler: RetrainScheduler) -> None:
    """Close ``scheduler`` at interpreter exit, before thread pools refuse new work."""
    ref = weakref.ref(scheduler)
    # Modules that register thread-exit hooks when first imported cannot be imported once
    # shutdown has begun; a training's lazy imports (joblib/loky) would fail: import it now.
    import concurrent.futures.process  # noqa: F401

    def close() -> None:
        alive = ref()
        if alive is not None:
            alive.shutdown(timeout=alive.config.close_timeout)

    register = getattr(threading, "_register_atexit", None)  # runs before concurrent.futures'
    if register is not None:
        try:
            register(close)
            return
        except RuntimeError:  # the interpreter is already shutting down
            return
    import atexit

    atexit.register(close)
