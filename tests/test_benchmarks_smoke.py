"""The benchmarks keep working: ``python -m benchmarks --quick`` prints its table.

Timings are never asserted here (a loaded CI machine would make that a
coin toss); only that every benchmark ran and reported numbers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # benchmarks/ is a top-level folder, not part of the package
    sys.path.insert(0, str(REPO))
#: The benchmarks that need neither the PostgreSQL server nor worker processes (B8 starts
#: two local `mlflow models serve` processes of its own).
SMOKE = ("B1", "B2", "B3", "B4", "B8")


def _table_rows(stdout: str) -> list[list[str]]:
    rows = []
    for line in stdout.splitlines():
        if line.startswith("| ") and not line.startswith("| id "):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def test_format_table_has_one_row_per_result_and_a_speedup():
    from benchmarks.harness import Row, format_table

    rows = [Row("B9", "a | b", 0.5, "s", "base", 2.0, ">= 2x", True),
            Row("B9", "rate", 4e6, "trades/s", "base", 1e5, ">= 10x", True,
                higher_is_better=True)]
    parsed = _table_rows(format_table(rows))
    assert [r[0] for r in parsed] == ["B9", "B9"]
    assert [float(r[5].rstrip("x")) for r in parsed] == [4.0, 40.0]
    assert all(len(r) == 8 for r in parsed)  # a "|" inside a cell does not split it


def test_unknown_benchmark_id_is_refused():
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--only", "B1,Z9"],
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert "Z9" in proc.stderr and "B1" in proc.stderr


@pytest.mark.slow
def test_quick_run_prints_every_row_with_a_numeric_speedup(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    repo_mlruns = sorted(p.name for p in (REPO / "mlruns").iterdir()) \
        if (REPO / "mlruns").is_dir() else []
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--only",
                           ",".join(SMOKE)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rows = _table_rows(proc.stdout)
    assert sorted({r[0] for r in rows}) == list(SMOKE), proc.stdout
    for row in rows:
        speedup = row[5]
        assert speedup.endswith("x"), row
        assert float(speedup[:-1]) > 0, row
        assert row[7] in ("yes", "NO", "report"), row
    # every store lived in a temporary folder: nothing new in the repository's mlruns/
    after = sorted(p.name for p in (REPO / "mlruns").iterdir()) \
        if (REPO / "mlruns").is_dir() else []
    assert after == repo_mlruns
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlflow.db").exists()
