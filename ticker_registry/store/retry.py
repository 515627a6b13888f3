"""Error translation and bounded retries for registry calls.

MLflow and SQLAlchemy errors are mapped onto our error tree at this boundary.
Transient failures are retried with exponential back-off and full jitter, for
at most ``attempts`` tries and ``deadline`` seconds (default: env
``TICKER_REGISTRY_RETRY_DEADLINE``, else 30 s); an attempt already running
when the deadline passes is allowed to finish. Transient means:

- the server cannot be reached or stopped answering: connection refused, reset
  or dropped, timeouts (MLflow's REST client reports these as an
  ``MlflowException`` wrapping a ``requests`` ``ConnectionError``);
- HTTP 408, 429, 500, 502, 503, 504 (MLflow's client retries them itself
  ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` times, then raises "too many 503 error
  responses") and the error codes ``TEMPORARILY_UNAVAILABLE``,
  ``REQUEST_LIMIT_EXCEEDED``, ``RESOURCE_EXHAUSTED``, ``DEADLINE_EXCEEDED``;
- a database that is locked (SQLite) or unreachable / restarting (PostgreSQL).

Callers that create things must make the retried call idempotent (see
``TickerRegistry.register``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import tenacity

from ..exceptions import ModelNotFoundError, RegistryError, RegistryUnavailableError
from ..redaction import redact_text, redact_uri

__all__ = ["DEADLINE_ENV", "TransientRegistryError", "default_deadline", "translate_errors",
           "with_retries"]

T = TypeVar("T")

#: Environment variable: the default retry deadline of :func:`with_retries`, in seconds.
DEADLINE_ENV = "TICKER_REGISTRY_RETRY_DEADLINE"
_DEFAULT_DEADLINE = 30.0

_TRANSIENT_CODES = frozenset({"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED",
                              "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"})
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# "too many 503 error responses" (urllib3 after MLflow's retries), "error code 503 != 200"
_STATUS_RE = re.compile(r"(?:too many|error code|status(?: code)?:?) (\d{3})\b")
# (text, short reason) in order of precedence; matched against the lower-cased message
_TRANSIENT_TEXT = (
    ("connection refused", "connection refused"),
    ("failed to establish a new connection", "connection refused"),
    ("name or service not known", "unknown host"),
    ("temporary failure in name resolution", "unknown host"),
    ("read timed out", "no answer within the timeout"),
    ("connect timeout", "no answer within the timeout"),
    ("timed out", "no answer within the timeout"),
    ("remote end closed connection", "connection dropped"),
    ("remotedisconnected", "connection dropped"),
    ("connection aborted", "connection dropped"),
    ("connection reset", "connection dropped"),
    ("broken pipe", "connection dropped"),
    ("database is locked", "database is locked"),
    ("could not connect to server", "database unreachable"),
    ("connection to server at", "database unreachable"),
    ("server closed the connection unexpectedly", "database connection lost"),
    ("terminating connection due to administrator command", "database restarting"),
    ("the database system is starting up", "database restarting"),
    ("the database system is shutting down", "database restarting"),
)


class TransientRegistryError(RegistryUnavailableError):
    """A failure worth retrying (marked so the retry loop can tell)."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _transient_reason(exc: BaseException) -> str | None:
    """A short reason when ``exc`` (or what it wraps) is a transient failure, else None."""
    import requests

    for err in _chain(exc):
        code = getattr(err, "error_code", None)
        if code in _TRANSIENT_CODES:
            return str(code).lower().replace("_", " ")
        lowered = str(err).lower()
        match = _STATUS_RE.search(lowered)
        if match and int(match.group(1)) in _TRANSIENT_STATUS:
            return f"HTTP {match.group(1)}"
        for text, reason in _TRANSIENT_TEXT:
            if text in lowered:
                return reason
        if isinstance(err, requests.exceptions.Timeout | TimeoutError):
            return "no answer within the timeout"
        if isinstance(err, requests.exceptions.ConnectionError | ConnectionError):
            return "connection failed"
    return None


def _classify(exc: BaseException, uri: str) -> RegistryError:
    from mlflow.exceptions import MlflowException

    uri = redact_uri(uri)
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    if isinstance(exc, MlflowException):
        code = getattr(exc, "error_code", "")
        if code == "RESOURCE_DOES_NOT_EXIST":
            return ModelNotFoundError(
                f"not found in the registry at {uri}: {redact_text(first[:300])} (MLflow); "
                "`ticker-registry status` lists the tickers and versions there")
        if code == "RESOURCE_ALREADY_EXISTS":
            error = RegistryError(first)
            error.already_exists = True  # type: ignore[attr-defined]
            return error
    reason = _transient_reason(exc)
    if reason is not None:
        return TransientRegistryError(
            f"cannot reach the model registry at {uri} ({reason}); check that the tracking "
            "server and its database are up and that the URI is right (--tracking-uri / "
            "MLFLOW_TRACKING_URI)")
    return RegistryError(f"registry error at {uri}: {redact_text(first[:500])}")


@contextmanager
def translate_errors(uri: str) -> Iterator[None]:
    """Re-raise MLflow / SQLAlchemy / connection errors as ``RegistryError`` subclasses."""
    try:
        yield
    except RegistryError:
        raise
    except Exception as exc:
        from mlflow.exceptions import MlflowException

        if isinstance(exc, MlflowException | ConnectionError | TimeoutError | OSError) or \
                type(exc).__module__.split(".")[0] in ("sqlalchemy", "requests", "urllib3"):
            raise _classify(exc, uri) from exc
        raise


def http_deadlines(timeout: float) -> dict[str, str]:
    """The environment that bounds a request to an ``http(s)://`` registry (one rule for the
    library, the CLI and the seed script): ``timeout`` seconds per HTTP attempt, no blind
    re-sends by MLflow (ours are idempotent), and no new attempt after ``timeout`` seconds."""
    return {"MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, int(round(timeout)))),
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", DEADLINE_ENV: f"{timeout:g}"}


def apply_http_deadlines(timeout: float) -> list[str]:
    """Set :func:`http_deadlines` in the environment where the user has not; return the keys set.

    MLflow reads these variables at each request and has no per-client setting, so the
    process environment is the only place; a value the user set always wins.
    """
    added = [k for k in http_deadlines(timeout) if k not in os.environ]
    os.environ.update({k: v for k, v in http_deadlines(timeout).items() if k in added})
    return added


def default_deadline() -> float:
    """The retry deadline: env ``TICKER_REGISTRY_RETRY_DEADLINE`` (seconds), else 30."""
    raw = os.environ.get(DEADLINE_ENV, "").strip()
    if not raw:
        return _DEFAULT_DEADLINE
    try:
        value = float(raw)
    except ValueError:
        raise RegistryError(f"{DEADLINE_ENV} must be a number of seconds, got {raw!r}") from None
    return max(0.0, value)


def with_retries(fn: Callable[..., T], *args: Any, uri: str, attempts: int = 6,
                 deadline: float | None = None, base_delay: float = 0.05, **kwargs: Any) -> T:
    """Call ``fn`` and retry transient registry failures with jittered back-off (tenacity).

    At most ``attempts`` tries; no new attempt starts once ``deadline`` seconds
    (default :func:`default_deadline`) have passed; the last transient error is raised.
    Only the registry adapter calls this, once per operation: retries never nest.
    """
    limit = default_deadline() if deadline is None else deadline
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(TransientRegistryError),
        stop=tenacity.stop_after_attempt(attempts) | tenacity.stop_after_delay(limit),
        wait=tenacity.wait_random_exponential(multiplier=base_delay, max=2.0),
        reraise=True)
    for attempt in retrying:
        with attempt, translate_errors(uri):
            return fn(*args, **kwargs)
    raise AssertionError("unreachable")  # reraise=True: tenacity raises the last error
