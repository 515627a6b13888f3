"""Due training survives an ordinary exit, and a new process resumes what was abandoned."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ticker_registry import ModelNotFoundError, SyncTickerModelManager

from conftest import QUICK

WORKER = Path(__file__).parent / "_exit_worker.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(WORKER), *args], capture_output=True, text=True,
                          timeout=900)


@pytest.mark.slow
def test_a_script_that_ends_after_the_threshold_still_gets_its_version(tmp_path):
    proc = _run(str(tmp_path), "300", "600")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "cannot schedule new futures" not in proc.stderr
    manager = SyncTickerModelManager(QUICK, tmp_path, auto_retrain=False)
    versions = manager.registry.list_versions("ETHUSDT")
    assert [v.version for v in versions] == [1]
    assert manager.samples.count("ETHUSDT", unconsumed=True) == 0
    manager.close()


@pytest.mark.slow
def test_an_abandoned_training_is_resumed_by_the_next_process(tmp_path):
    proc = _run(str(tmp_path), "300", "0.2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "abandoned" in proc.stderr
    manager = SyncTickerModelManager(QUICK, tmp_path, auto_retrain=False)
    try:
        assert manager.registry.list_versions("ETHUSDT") == []  # nothing half-registered
    except ModelNotFoundError:
        pass
    assert manager.samples.lease_holder("ETHUSDT") is None  # released, not left for 15 min
    manager.close()
    resumed = _run(str(tmp_path), "predict")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.strip().endswith("versions [1]"), resumed.stdout
