"""A store the user may only read (a read-only mount, another user's files) can still be listed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ticker_registry import SyncTickerModelManager

from conftest import make_trades

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv to run a command as another user (nobody)")

CLI = Path(sys.executable).with_name("ticker-registry")
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def foreign_store(quick_config):
    """A store written by root, readable but not writable by 'nobody'."""
    base = Path(tempfile.mkdtemp(prefix="tr-readonly-", dir="/tmp"))
    try:
        base.chmod(0o755)
        manager = SyncTickerModelManager(quick_config, base / "store", auto_retrain=False)
        manager.train("ETHUSDT", make_trades(4000))
        manager.close()
        yield base / "store"
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("command", [["status"], ["versions", "ETHUSDT"], ["history", "ETHUSDT"],
                                     ["doctor"], ["metadata"]])
def test_read_commands_work_on_a_store_they_cannot_write(foreign_store, command):
    before = sorted(p.name for p in foreign_store.iterdir())
    out = subprocess.run([*NOBODY, str(CLI), "--models-dir", str(foreign_store), *command],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    if command[0] in ("status", "versions", "metadata"):
        assert "ETHUSDT" in out.stdout or "1" in out.stdout
    assert sorted(p.name for p in foreign_store.iterdir()) == before  # nothing created
