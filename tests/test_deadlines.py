"""A dead tracking server fails the library and the seed script within registry_timeout."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ticker_registry import RegistryUnavailableError, SyncTickerModelManager

from conftest import QUICK

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "manage_ticker_models.py"
# MLflow's own default (7 re-sends with back-off, 120 s per request) takes about 4 minutes;
# a bound far below that and far above registry_timeout proves the deadline applies.
GENEROUS = 90.0


def _dead_uri() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there any more


@pytest.fixture
def clean_env(monkeypatch):
    for key in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
                "TICKER_REGISTRY_RETRY_DEADLINE"):
        monkeypatch.delenv(key, raising=False)
    yield
    for key in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
                "TICKER_REGISTRY_RETRY_DEADLINE"):
        os.environ.pop(key, None)


def test_the_library_fails_within_its_registry_timeout(tmp_path, clean_env):
    manager = SyncTickerModelManager({**QUICK, "registry_timeout": 2}, tmp_path,
                                     tracking_uri=_dead_uri(), auto_retrain=False)
    start = time.monotonic()
    with pytest.raises(RegistryUnavailableError, match="cannot reach the model registry"):
        manager.status()
    assert time.monotonic() - start < GENEROUS
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
    manager.close()


def test_the_seed_script_fails_in_one_line_within_its_deadline(tmp_path, clean_env):
    config = tmp_path / "c.yaml"
    config.write_text("registry_timeout: 2\n")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    start = time.monotonic()
    proc = subprocess.run([sys.executable, str(SCRIPT), "--action", "status", "--tracking-uri",
                           _dead_uri(), "--config", str(config)], capture_output=True, text=True,
                          timeout=GENEROUS * 2, env=env)
    assert time.monotonic() - start < GENEROUS
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: cannot reach the model registry"), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
