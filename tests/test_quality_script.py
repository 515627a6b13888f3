"""The quality script's tuning and transfer sections keep working (quick mode, real trades).

The figures themselves are the README's, from a full run; here only that the sections run
and print their tables and verdicts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import shared_data

ROOT = Path(__file__).resolve().parent.parent


def test_tuning_and_transfer_sections_run_on_real_trades():
    ltc = shared_data("LTCUSDT-aggTrades-2025-06-21_22.csv.gz")
    shared_data("XRPETH-aggTrades-2019-10.zip")
    env = {**os.environ, "TR_SHARED_DATA": str(ltc.parent), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.quality", "--quick", "--only",
                           "tuning,transfer"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert out.count("Final block served score: tuned") == 2
    assert "adopted" in out
    for strategy in ("scratch", "hyperparameters", "warm_start", "pooled"):
        assert f"| {strategy} |" in out
    assert "Best transfer strategy by served score" in out
