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
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
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
                 peek: Callable[[str], ServedModel | None]) -> None:
        self.config = config
        self.samples = samples
        self._retrain = retrain
        self._peek = peek
        self._executor: ThreadPoolExecutor | None = None
        self._inflight: dict[str, Future[Any]] = {}
        self._retry_after: dict[str, float] = {}
        self._lock = threading.RLock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn`` on the background thread (created on first use)."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1,
                                                    thread_name_prefix="ticker-registry-bg")
            return self._executor.submit(fn, *args)

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
        self._retry_after[ticker] = time.monotonic() + RETRY_BACKOFF_S
        return None

    def wait(self, timeout: float | None = None) -> list[Any]:
        """Block until scheduled retrainings finish; return their outcomes (None dropped)."""
        with self._lock:
            futures = list(self._inflight.values())
        return [o for o in (f.result(timeout=timeout) for f in futures) if o is not None]

    def shutdown(self) -> None:
        """Let scheduled work finish, then stop the background thread."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
