"""B10: time until ``ticker-registry demo`` prints its first line.

Ours: ``ticker-registry demo --workdir <tmp>`` started as a subprocess; the time from
the start until its first line on stdout or stderr, after which it is killed (the rest
of the demo is not timed: B5 times training).

Baseline: ``python -c "import ticker_registry.cli"`` in a subprocess, to its exit: the
floor any command pays before its first line.

Target: the first line within 2 s.
"""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .harness import Context, Row, interleaved, median

TARGET_S = 2.0


def _command() -> list[str]:
    script = Path(sys.executable).with_name("ticker-registry")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from ticker_registry.cli import main; main()"]


def first_line_seconds(argv: list[str], env: dict[str, str]) -> float:
    """Seconds from starting ``argv`` until it writes a line on stdout or stderr; then kill it."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        with selectors.DefaultSelector() as selector:
            assert proc.stdout is not None and proc.stderr is not None
            for stream in (proc.stdout, proc.stderr):
                selector.register(stream, selectors.EVENT_READ)
            while True:
                ready = selector.select(timeout=120)
                if not ready:
                    raise TimeoutError(f"no line within 120 s from {argv}")
                for key, _events in ready:
                    if os.read(key.fd, 65536):  # the demo writes whole lines
                        return time.perf_counter() - start
                    selector.unregister(key.fileobj)
                if not selector.get_map():
                    raise RuntimeError(f"{argv} exited (code {proc.wait()}) without a line")
    finally:
        proc.kill()
        proc.wait()


def run(ctx: Context) -> list[Row]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    counter = iter(range(1_000_000))
    root = ctx.folder("demo")

    def ours() -> None:
        workdir = root / f"run-{next(counter)}"
        first_line_seconds([*_command(), "demo", "--workdir", str(workdir)], env)
        shutil.rmtree(workdir, ignore_errors=True)

    def baseline() -> None:
        subprocess.run([sys.executable, "-c", "import ticker_registry.cli"], env=env, check=True)

    times = interleaved({"ours": ours, "baseline": baseline}, rounds=ctx.pick(2, 5), warmup=1)
    t_ours, t_base = median(times["ours"]), median(times["baseline"])
    return [Row("B10", "demo: first line on stdout/stderr", t_ours, "s",
                "python -c 'import ticker_registry.cli'", t_base, f"<= {TARGET_S:g} s",
                t_ours <= TARGET_S, repeats=len(times["ours"]),
                note="the demo is killed after its first line")]
