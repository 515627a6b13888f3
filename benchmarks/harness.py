"""Timing, result rows, table formatting and machine details shared by the benchmarks.

A benchmark module exposes ``run(ctx: Context) -> list[Row]``. It measures
its own code and its baseline in the same process, interleaving repetitions
(ours, baseline, ours, baseline, ...) so that a change in machine load during
the run hits both sides alike, and reports medians.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["Context", "Row", "format_table", "interleaved", "machine_info", "median",
           "percentile", "quiet", "rss_mb"]

#: Packages whose versions go with every result.
PACKAGES = ("ticker-registry", "mlflow", "xgboost", "lightgbm", "scikit-learn", "pandas", "numpy",
            "sqlalchemy", "psycopg2-binary", "pyinstrument")


@dataclass(frozen=True)
class Row:
    """One line of the results table.

    ``ours`` and ``baseline`` are in ``unit``; ``speedup`` is
    ``baseline / ours`` for durations and ``ours / baseline`` for rates
    (``higher_is_better``), so above 1 always means ours is better.
    ``met`` is None where the target is "report" or the row was skipped.
    """

    id: str
    what: str
    ours: float
    unit: str
    baseline_name: str
    baseline: float | None
    target: str
    met: bool | None
    higher_is_better: bool = False
    repeats: int = 0
    note: str = ""

    @property
    def speedup(self) -> float | None:
        if self.baseline is None or not _finite(self.ours) or not _finite(self.baseline):
            return None
        if self.higher_is_better:
            return self.ours / self.baseline if self.baseline else None
        return self.baseline / self.ours if self.ours else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "speedup": self.speedup}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Row:
        data = {k: v for k, v in data.items() if k != "speedup"}
        return cls(**data)


@dataclass
class Context:
    """What a benchmark needs: its size setting, its private folder, its profiling switch."""

    quick: bool
    workdir: Path
    profile: bool = False
    profiles: dict[str, str] = field(default_factory=dict)

    def pick(self, quick: Any, full: Any) -> Any:
        """The quick-mode value or the full-run value."""
        return quick if self.quick else full

    def folder(self, name: str) -> Path:
        """A fresh subfolder of the benchmark's temporary folder."""
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=False)
        return path

    def profile_calls(self, label: str, fn: Callable[[], Any], calls: int) -> None:
        """With ``--profile``: run ``fn`` ``calls`` times under pyinstrument and keep the tree."""
        if not self.profile:
            return
        try:
            from pyinstrument import Profiler
        except ImportError:
            raise SystemExit("--profile needs pyinstrument: pip install -e '.[bench]'") from None

        profiler = Profiler(interval=0.0005)
        profiler.start()
        for _ in range(calls):
            fn()
        profiler.stop()
        self.profiles[label] = profiler.output_text(unicode=False, color=False)

    def breakdown_calls(self, label: str, fn: Callable[[], Any], calls: int,
                        targets: Sequence[tuple[Any, Sequence[str]]]) -> None:
        """With ``--profile``: wall time per call of the named methods while ``fn`` runs.

        ``targets`` pairs an object (a module, an ``MlflowClient``) with the
        attribute names to time; they are patched on that object only for the
        duration and restored afterwards.
        """
        if not self.profile:
            return
        spent: dict[str, list[float]] = {}
        saved = []
        for obj, names in targets:
            for name in names:
                original = getattr(obj, name)
                saved.append((obj, name, original, name in vars(obj)))

                def timed(*a: Any, _f: Any = original, _n: str = name, **k: Any) -> Any:
                    start = time.perf_counter()
                    try:
                        return _f(*a, **k)
                    finally:
                        spent.setdefault(_n, []).append(time.perf_counter() - start)

                setattr(obj, name, timed)
        try:
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            total = time.perf_counter() - start
        finally:
            for obj, name, original, own in reversed(saved):
                if own:
                    setattr(obj, name, original)
                else:
                    delattr(obj, name)
        lines = [f"{calls} calls, {total / calls * 1e3:.1f} ms per call; per call of the outer "
                 "operation (nested timings overlap):",
                 f"{'method':34s} {'calls':>6s} {'ms':>8s} {'ms each':>8s}"]
        for name, xs in sorted(spent.items(), key=lambda kv: -sum(kv[1])):
            lines.append(f"{name:34s} {len(xs) / calls:6.1f} {sum(xs) / calls * 1e3:8.2f} "
                         f"{median(xs) * 1e3:8.2f}")
        self.profiles[label] = "\n".join(lines)


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else math.nan


def percentile(xs: Sequence[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(xs, dtype=float), q)) if len(xs) else math.nan


def interleaved(variants: dict[str, Callable[[], Any]], *, rounds: int,
                warmup: int | dict[str, int] = 1,
                per_round: dict[str, int] | None = None,
                setup: Callable[[str], Any] | None = None,
                cpu: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Wall-clock seconds of each call of each variant, round-robin over ``rounds``.

    ``warmup`` rounds run first and are not recorded (a dict gives each
    variant its own count, e.g. none for a slow baseline in quick mode).
    ``per_round`` gives how many calls a variant makes in each round (default
    1). ``setup(name)``, if given, runs untimed before each call. ``cpu``, if
    given, also receives this process's CPU seconds per call (a figure that a
    busy machine inflates far less than wall time, for single-process code).
    """
    per_round = per_round or {}
    warm = warmup if isinstance(warmup, dict) else dict.fromkeys(variants, warmup)
    most = max(warm.values(), default=0)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(most + rounds):
        for name, fn in variants.items():
            if r < most - warm.get(name, 0):
                continue  # this variant warms up for fewer rounds
            for _ in range(per_round.get(name, 1)):
                if setup is not None:
                    setup(name)
                start, start_cpu = time.perf_counter(), time.process_time()
                fn()
                elapsed = time.perf_counter() - start
                if r >= most:
                    times[name].append(elapsed)
                    if cpu is not None:
                        cpu.setdefault(name, []).append(time.process_time() - start_cpu)
        gc.collect()
    return times


def rss_mb() -> float:
    """Resident set size of this process in MiB (``VmRSS`` of /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS line in /proc/self/status")


def quiet() -> None:
    """Silence MLflow's per-call INFO logs and deprecation chatter in a benchmark process."""
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="mlflow")


# --------------------------------------------------------------------------- reporting
def format_duration(seconds: float) -> str:
    if not _finite(seconds):
        return "-"
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def format_value(value: float | None, unit: str) -> str:
    if value is None or not _finite(value):
        return "-"
    if unit == "s":
        return format_duration(value)
    if unit in ("trades/s", "versions/s"):
        if value >= 1e6:
            return f"{value / 1e6:.2f} M {unit}"
        return f"{value:.2f} {unit}" if value < 1e3 else f"{value:,.0f} {unit}"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    return f"{value:.4g} {unit}"


def format_table(rows: Sequence[Row]) -> str:
    """The results as one Markdown table."""
    header = ("id", "measurement", "ours (median)", "baseline", "baseline (median)",
              "speedup", "target", "met")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        speed = row.speedup
        met = {True: "yes", False: "NO", None: "report"}[row.met]
        if not _finite(row.ours):
            met = "skipped" if "skipped" in row.note else "error"
        cells = (row.id, row.what, format_value(row.ours, row.unit), row.baseline_name,
                 format_value(row.baseline, row.unit),
                 f"{speed:.3g}x" if speed is not None else "-", row.target, met)
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def machine_info() -> dict[str, str]:
    """Where and with what the benchmarks ran."""
    info: dict[str, str] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "nproc": str(len(os.sched_getaffinity(0))),
    }
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in lscpu.splitlines()
                      if ln.startswith("Model name")), "?")
    except OSError:
        model = "?"
    info["cpu"] = model
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            info["ram"] = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    info["loadavg"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    info["omp"] = ", ".join(f"{k}={os.environ[k]}" for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS",
                                                           "GOMP_SPINCOUNT") if k in os.environ) \
        or "OMP_WAIT_POLICY, OMP_NUM_THREADS unset"
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    info["packages"] = ", ".join(versions)
    return info


def write_child_result(path: Path, rows: Sequence[Row], profiles: dict[str, str],
                       seconds: float) -> None:
    path.write_text(json.dumps({"rows": [r.to_dict() for r in rows], "profiles": profiles,
                                "seconds": seconds}, indent=1))
