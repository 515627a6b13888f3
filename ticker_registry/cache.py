"""The in-process model cache: a bounded LRU that follows production moves.

Predictions read the cache without taking a lock (a dict lookup and an
attribute read); loading, eviction and swapping hold ``_lock``. A background
thread checks the registry every ``refresh_interval`` seconds with **one**
search over all registered models, and when a cached ticker's production
alias moved (a promotion or rollback from another process or the CLI) or was
removed, it loads what production is now (possibly nothing) and swaps the entry
in one assignment. If the registry
cannot be reached, cached models keep serving and a warning is logged once
per interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .exceptions import RegistryError
from .model import OrderFlowModel

__all__ = ["ServedModel", "ModelCache"]

log = logging.getLogger(__name__)


@dataclass
class ServedModel:
    """A ticker's serving model (or its absence: ``model is None`` means untrained)."""

    ticker: str
    version: int | None
    model: OrderFlowModel | None
    loaded_at: float
    created_at: float | None = None
    live: Any = field(default=None, repr=False)  # LivePerformance of this version
    run_id: str | None = None


class ModelCache:
    """LRU of :class:`ServedModel`, bounded by ``max_size``, refreshed in the background.

    Parameters
    ----------
    loader
        ``loader(ticker) -> ServedModel``: loads the production version (slow path).
    production_versions
        ``() -> dict[ticker, version]`` from one registry search (refresh path).
    """

    def __init__(self, loader: Callable[[str], ServedModel],
                 production_versions: Callable[[], dict[str, int]], *, max_size: int,
                 refresh_interval: float) -> None:
        self._loader = loader
        self._production_versions = production_versions
        self.max_size = max_size
        self.refresh_interval = refresh_interval
        self._entries: OrderedDict[str, ServedModel] = OrderedDict()
        self._lock = threading.RLock()
        self._ticker_locks: dict[str, threading.Lock] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_warning = 0.0
        self.refreshes = 0

    def peek(self, ticker: str) -> ServedModel | None:
        """The cached entry without loading (the hot path: no lock, no I/O)."""
        return self._entries.get(ticker)

    def get(self, ticker: str) -> ServedModel:
        """The cached entry, loading it (once, even from several threads) on a miss."""
        entry = self._entries.get(ticker)
        if entry is not None:
            self._touch(ticker)
            return entry
        with self._lock:
            ticker_lock = self._ticker_locks.setdefault(ticker, threading.Lock())
        with ticker_lock:
            entry = self._entries.get(ticker)
            if entry is None:
                entry = self._loader(ticker)
                self.put(entry)
        self._ensure_refresher()
        return entry

    def put(self, entry: ServedModel) -> None:
        with self._lock:
            self._entries[entry.ticker] = entry
            self._entries.move_to_end(entry.ticker)
            while len(self._entries) > self.max_size:
                evicted, _ = self._entries.popitem(last=False)
                log.debug("evicted %s from the model cache", evicted)

    def invalidate(self, ticker: str) -> None:
        with self._lock:
            self._entries.pop(ticker, None)

    def _touch(self, ticker: str) -> None:
        try:
            self._entries.move_to_end(ticker)
        except KeyError:
            pass

    def tickers(self) -> list[str]:
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    # ------------------------------------------------------------------ refresh
    def refresh(self) -> list[str]:
        """Check production versions once; reload and swap entries that moved."""
        if not self._entries:
            return []
        try:
            versions = self._production_versions()
        except RegistryError as exc:
            now = time.monotonic()
            if now - self._last_warning >= max(self.refresh_interval, 1.0):
                log.warning("registry unreachable, serving cached models: %s", exc)
                self._last_warning = now
            return []
        moved = []
        for ticker, entry in list(self._entries.items()):
            target = versions.get(ticker)  # None: the alias was removed (doctor, by hand)
            if target != entry.version:
                try:
                    fresh = self._loader(ticker)
                except Exception as exc:  # keep serving the old model
                    log.warning("cannot load %s production version %s: %s", ticker, target, exc)
                    continue
                with self._lock:
                    if ticker in self._entries:
                        self._entries[ticker] = fresh  # atomic swap
                moved.append(ticker)
                log.info("%s now serves version %s (was %s)", ticker, fresh.version,
                         entry.version)
        self.refreshes += 1
        return moved

    def _ensure_refresher(self) -> None:
        if self.refresh_interval <= 0 or (self._thread and self._thread.is_alive()):
            return
        with self._lock:
            if self._thread and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="ticker-registry-refresh",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.refresh_interval):
            try:
                self.refresh()
            except Exception:  # never let the refresher die
                log.exception("model cache refresh failed")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
