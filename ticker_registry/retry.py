"""Error translation and bounded retries for registry calls.

MLflow and SQLAlchemy errors are mapped onto our error tree at this boundary.
Transient failures (connection refused or reset, HTTP 5xx and 429, SQLite
"database is locked") are retried with exponential back-off and full jitter,
for at most ``attempts`` tries and ``deadline`` seconds. Callers that create
things must make the retried call idempotent (see ``TickerRegistry.register``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from .exceptions import ModelNotFoundError, RegistryError, RegistryUnavailableError

__all__ = ["translate_errors", "with_retries"]

T = TypeVar("T")

_TRANSIENT_TEXT = ("database is locked", "connection refused", "connection reset",
                   "max retries exceeded", "failed to establish", "timed out", "read timed out",
                   "remote end closed", "connection aborted", "503", "502", "504", "429",
                   "too many requests", "could not connect to server", "server closed the connection",
                   "busy")


class TransientRegistryError(RegistryUnavailableError):
    """A failure worth retrying (marked so the retry loop can tell)."""


def _classify(exc: BaseException, uri: str) -> RegistryError:
    from mlflow.exceptions import MlflowException

    text = str(exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    lowered = text.lower()
    if isinstance(exc, MlflowException):
        code = getattr(exc, "error_code", "")
        if code == "RESOURCE_DOES_NOT_EXIST":
            return ModelNotFoundError(first)
        if code == "RESOURCE_ALREADY_EXISTS":
            error = RegistryError(first)
            error.already_exists = True  # type: ignore[attr-defined]
            return error
    if any(t in lowered for t in _TRANSIENT_TEXT) or isinstance(exc, (ConnectionError, TimeoutError)):
        return TransientRegistryError(f"cannot reach the model registry at {uri}: {first[:300]}; "
                                      "check that the tracking server / database is up")
    return RegistryError(f"registry error at {uri}: {first[:500]}")


@contextmanager
def translate_errors(uri: str) -> Iterator[None]:
    """Re-raise MLflow / SQLAlchemy / connection errors as ``RegistryError`` subclasses."""
    try:
        yield
    except RegistryError:
        raise
    except Exception as exc:
        from mlflow.exceptions import MlflowException

        if isinstance(exc, (MlflowException, ConnectionError, TimeoutError, OSError)) or \
                type(exc).__module__.split(".")[0] in ("sqlalchemy", "requests", "urllib3"):
            raise _classify(exc, uri) from exc
        raise


def with_retries(fn: Callable[..., T], *args: Any, uri: str, attempts: int = 6,
                 deadline: float = 30.0, base_delay: float = 0.05, **kwargs: Any) -> T:
    """Call ``fn`` and retry transient registry failures with jittered back-off."""
    start = time.monotonic()
    for attempt in range(1, attempts + 1):
        try:
            with translate_errors(uri):
                return fn(*args, **kwargs)
        except TransientRegistryError:
            elapsed = time.monotonic() - start
            if attempt == attempts or elapsed >= deadline:
                raise
            delay = random.uniform(0, min(2.0, base_delay * 2 ** attempt))
            time.sleep(min(delay, max(0.0, deadline - elapsed)))
    raise AssertionError("unreachable")
