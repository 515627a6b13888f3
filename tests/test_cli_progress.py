"""Progress: on a terminal, stderr shows what a long command is doing; piped or -q, nothing."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import QUICK, make_trades

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "ticker_registry"]


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture
def job(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**QUICK, "refresh_interval": 0}))
    trades = tmp_path / "ETHUSDT-trades.csv"
    make_trades(4000, seed=3).to_csv(trades, index=False)
    return ["evaluate", "ETHUSDT", "--trades", str(trades), "--config", str(config)]


def test_a_terminal_sees_the_steps(job, tmp_path):
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([*CLI, *job], stdout=subprocess.PIPE, stderr=slave,
                                cwd=tmp_path, env={**os.environ, "COLUMNS": "100"})
        os.close(slave)
        stderr = _read_all(master).decode(errors="replace")
        stdout = proc.communicate(timeout=600)[0].decode()
    finally:
        os.close(master)
    assert proc.returncode == 0, stderr
    assert "purged walk-forward" in stderr  # the step, drawn on the terminal
    assert "flow_type" in stdout and "\x1b" not in stdout  # the table itself stays plain


@pytest.mark.parametrize("quiet", [False, True])
def test_a_pipe_or_quiet_sees_nothing_but_the_output(job, tmp_path, quiet):
    args = [*CLI, *(["-q"] if quiet else []), *job]
    if quiet:  # on a terminal, -q silences the steps too
        master, slave = pty.openpty()
        try:
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=slave, cwd=tmp_path)
            os.close(slave)
            stderr = _read_all(master).decode(errors="replace")
            proc.communicate(timeout=600)
        finally:
            os.close(master)
    else:
        done = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=600)
        stderr = done.stderr
    assert "walk-forward over" not in stderr and "\x1b" not in stderr, stderr
    assert not Path(tmp_path, "mlruns").exists()  # evaluate registers nothing
