"""Fixtures for tests against the real PostgreSQL-backed mlflow server (marker ``server``).

Where the server comes from:

- ``TR_SERVER_ENV`` names the env file written by ``scripts/start_tracking_server.sh``
  (``scripts/test.sh`` starts one and sets it): the tests use that server;
- otherwise, under ``CI=true``, the server tests FAIL (CI must run them);
- otherwise a private server is started for this pytest session under a temporary
  state dir and stopped at the end (``pytest -m server`` just works), or the tests
  are skipped when the PostgreSQL server binaries are missing.

Fixtures:

``tracking_server`` (session)
    :class:`TrackingServer`: ``.uri``, ``.state_dir``, ``.env`` (the env file as a dict),
    ``.env_file``, ``.reload()``.
``crashable_server`` (module)
    A private :class:`TrackingServer` of its own (own PostgreSQL, own port) for tests
    that kill and restart mlflow, so they never disturb ``tracking_server``;
    ``.kill_mlflow()`` and ``.restart_mlflow()``.
``server_namespace``
    A unique registered-model namespace per test (config key ``namespace``).
``server_config``
    The quick test config with that namespace.
``server_registry``
    A :class:`~ticker_registry.registry.TickerRegistry` on ``tracking_server``.
``make_server_manager`` / ``server_manager``
    :class:`~ticker_registry.SyncTickerModelManager` on ``tracking_server`` (same namespace;
    sample store in SQLite under ``tmp_path``); all are closed at teardown.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
START = REPO / "scripts" / "start_tracking_server.sh"
STOP = REPO / "scripts" / "stop_tracking_server.sh"
SERVER_ENV = "TR_SERVER_ENV"


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of a server env file."""
    out = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.lstrip().startswith("#"):
            out[key.strip()] = value.strip()
    return out


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def _unavailable(reason: str) -> None:
    """Fail under CI (the server tests must run there), skip elsewhere."""
    if _in_ci():
        pytest.fail(f"server tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _pg_binaries() -> bool:
    if os.environ.get("TR_PG_BIN"):
        return (Path(os.environ["TR_PG_BIN"]) / "initdb").is_file()
    return any(Path("/usr/lib/postgresql").glob("*/bin/initdb")) if \
        Path("/usr/lib/postgresql").is_dir() else False


@dataclass
class TrackingServer:
    """A running ``mlflow server`` described by its env file."""

    env_file: Path
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.env:
            self.reload()

    @property
    def uri(self) -> str:
        return self.env["MLFLOW_TRACKING_URI"]

    @property
    def state_dir(self) -> Path:
        return Path(self.env.get("TR_STATE_DIR") or self.env_file.parent)

    @property
    def mlflow_pgid(self) -> int:
        """Process group of ``mlflow server`` and its uvicorn worker (``TR_MLFLOW_PID``)."""
        return int(self.env["TR_MLFLOW_PID"])

    def reload(self) -> TrackingServer:
        """Re-read the env file (the pid changes when mlflow is restarted)."""
        self.env = read_env_file(self.env_file)
        return self

    def healthy(self, timeout: float = 2.0) -> bool:
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=timeout) as response:
                return response.status == 200
        except OSError:
            return False

    def kill_mlflow(self) -> None:
        """SIGKILL the whole mlflow process group (a crash), and wait until the port refuses."""
        try:
            os.killpg(self.mlflow_pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while self.healthy(timeout=0.5) and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart_mlflow(self) -> None:
        """``start_tracking_server.sh --mlflow-only STATE_DIR``: same port, database, artifacts."""
        _run_script([str(START), "--mlflow-only", str(self.state_dir)])
        self.reload()

    def log_tail(self, lines: int = 30) -> str:
        log = Path(self.env.get("TR_MLFLOW_LOG", self.state_dir / "mlflow.log"))
        try:
            return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _run_script(argv: list[str], timeout: float = 180) -> str:
    proc = subprocess.run(["bash", *argv], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


def start_private_server(label: str) -> TrackingServer:
    """Start a PostgreSQL + mlflow server in a new state dir, on free ports.

    The state dir is made under ``${TMPDIR:-/tmp}``, not under pytest's base temp: pytest
    resets ``/tmp/pytest-of-<user>`` to mode 0700 whenever a session starts, which would
    lock the ``postgres`` OS user (root runs PostgreSQL as it) out of its data directory.
    """
    if not _pg_binaries():
        _unavailable("PostgreSQL server binaries not found; run scripts/install_system_deps.sh "
                     "or use scripts/test.sh")
    state = Path(tempfile.mkdtemp(prefix=f"ticker-registry-{label}-")) / "server"
    try:
        _run_script([str(START), str(state), "0"])
    except BaseException:
        _stop_and_remove(state)
        raise
    return TrackingServer(state / "env")


def stop_private_server(server: TrackingServer) -> None:
    """Stop a server of :func:`start_private_server` and delete its state."""
    _stop_and_remove(server.env_file.parent)


def _stop_and_remove(state: Path) -> None:
    subprocess.run(["bash", str(STOP), str(state)], capture_output=True, timeout=120,
                   stdin=subprocess.DEVNULL, check=False)
    shutil.rmtree(state.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def tracking_server() -> Iterator[TrackingServer]:
    """The shared server of this test session (see the module docstring)."""
    env_path = os.environ.get(SERVER_ENV)
    if env_path:
        path = Path(env_path)
        if not path.is_file():
            pytest.fail(f"{SERVER_ENV}={env_path} does not exist; start the server with "
                        "scripts/start_tracking_server.sh STATE_DIR (it writes STATE_DIR/env)",
                        pytrace=False)
        server = TrackingServer(path)
        if not server.healthy(timeout=10):
            pytest.fail(f"the tracking server of {SERVER_ENV}={env_path} ({server.uri}) does "
                        f"not answer /health; log:\n{server.log_tail()}", pytrace=False)
        yield server
        return
    if _in_ci():
        pytest.fail(f"CI=true but {SERVER_ENV} is not set: the server tests must run in CI "
                    "against the server started by scripts/test.sh", pytrace=False)
    server = start_private_server("server")
    try:
        yield server
    finally:
        stop_private_server(server)


@pytest.fixture(scope="module")
def crashable_server() -> Iterator[TrackingServer]:
    """A private server for tests that kill mlflow (never the shared one)."""
    server = start_private_server("crashable")
    try:
        yield server
    finally:
        stop_private_server(server)


@pytest.fixture
def server_namespace() -> str:
    """A registered-model namespace no other test uses."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def server_config(quick_config: Any, server_namespace: str) -> Any:
    return quick_config.replace(namespace=server_namespace)


@pytest.fixture
def server_registry(tracking_server: TrackingServer, server_config: Any, tmp_path: Path) -> Any:
    from ticker_registry.registry import TickerRegistry

    return TickerRegistry(server_config, tracking_uri=tracking_server.uri,
                          models_dir=tmp_path / "registry")


@pytest.fixture
def make_server_manager(tracking_server: TrackingServer, server_config: Any,
                        tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``make_server_manager(**config_changes)``: a new manager on the shared server.

    Each manager gets its own models dir (its own sample store and model cache), like a
    separate process on another machine; all share this test's namespace.
    """
    from ticker_registry import SyncTickerModelManager

    managers: list[Any] = []

    def make(*, auto_retrain: bool = False, **changes: Any) -> Any:
        manager = SyncTickerModelManager(server_config.replace(**changes),
                                         tmp_path / f"manager{len(managers)}",
                                         tracking_server.uri, auto_retrain=auto_retrain)
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        manager.close()


@pytest.fixture
def server_manager(make_server_manager: Callable[..., Any]) -> Any:
    return make_server_manager()
