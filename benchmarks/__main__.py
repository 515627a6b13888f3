"""``python -m benchmarks``: run the benchmarks and print one results table.

Each benchmark runs in a child process (``--child ID``) whose working
directory is a fresh temporary folder, so stores, artifacts and stray files
never touch the repository, a crash costs one row rather than the table, and
memory figures are not polluted by other benchmarks.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import BENCHMARKS
from .fixtures import SHARED_ENV
from .harness import Context, Row, format_table, machine_info, write_child_result

REPO = Path(__file__).resolve().parent.parent


def _parse_ids(text: str | None) -> list[str]:
    if not text:
        return list(BENCHMARKS)
    ids = [t.strip().upper() for t in text.split(",") if t.strip()]
    unknown = [i for i in ids if i not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark id(s) {unknown}; use some of {', '.join(BENCHMARKS)}")
    return ids


def _child(bench_id: str, out: Path, quick: bool, profile: bool) -> int:
    from .harness import quiet

    quiet()
    module = importlib.import_module(f"benchmarks.{BENCHMARKS[bench_id]}")
    ctx = Context(quick=quick, workdir=Path.cwd(), profile=profile)
    start = time.perf_counter()
    rows = module.run(ctx)
    write_child_result(out, rows, ctx.profiles, time.perf_counter() - start)
    return 0


def _error_row(bench_id: str, message: str) -> Row:
    return Row(bench_id, "failed", math.nan, "s", "-", None, "-", None, note=message)


def _run_one(bench_id: str, root: Path, *, quick: bool, profile: bool,
             timeout: float) -> tuple[list[Row], dict[str, str], float]:
    workdir = root / bench_id
    workdir.mkdir()
    out = workdir / "result.json"
    log = workdir / "child.log"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env[SHARED_ENV] = str(root)
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("DO_NOT_TRACK", "true")
    cmd = [sys.executable, "-m", "benchmarks", "--child", bench_id, "--out", str(out)]
    cmd += ["--quick"] if quick else []
    cmd += ["--profile"] if profile else []
    start = time.perf_counter()
    try:
        with open(log, "wb") as sink:
            proc = subprocess.run(cmd, cwd=workdir, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=timeout, check=False)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        code = None
    elapsed = time.perf_counter() - start
    if code == 0 and out.is_file():
        data = json.loads(out.read_text())
        return [Row.from_dict(r) for r in data["rows"]], data.get("profiles", {}), elapsed
    tail = log.read_text(errors="replace").strip().splitlines()[-15:]
    why = "timed out" if code is None else f"exit code {code}"
    print(f"{bench_id} failed ({why}); last lines of its log:\n  " + "\n  ".join(tail),
          file=sys.stderr)
    return [_error_row(bench_id, f"{why}: {tail[-1] if tail else ''}"[:200])], {}, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run ticker-registry's benchmarks and print one table (median of several "
                    "repetitions after a warm-up, the baseline from the same run, the speedup).")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and 1-2 repetitions: a smoke run that keeps them working")
    parser.add_argument("--only", metavar="IDS",
                        help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    parser.add_argument("--profile", action="store_true",
                        help="also profile our side with pyinstrument and print the trees")
    parser.add_argument("--json", metavar="PATH", type=Path,
                        help="also write rows, profiles and machine details as JSON")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folder of stores and logs (path printed)")
    parser.add_argument("--child", metavar="ID", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        return _child(args.child, args.out, args.quick, args.profile)

    ids = _parse_ids(args.only)
    machine = machine_info()
    root = Path(tempfile.mkdtemp(prefix="ticker-registry-bench-"))
    rows: list[Row] = []
    profiles: dict[str, str] = {}
    timings: dict[str, float] = {}
    total = time.perf_counter()
    try:
        for bench_id in ids:
            print(f"{bench_id} ({BENCHMARKS[bench_id]}) ...", file=sys.stderr, flush=True)
            module = importlib.import_module(f"benchmarks.{BENCHMARKS[bench_id]}")
            full_timeout = float(getattr(module, "TIMEOUT", 900))  # a module may need longer
            got, prof, elapsed = _run_one(bench_id, root, quick=args.quick, profile=args.profile,
                                          timeout=180 if args.quick else full_timeout)
            print(f"{bench_id} done in {elapsed:.1f} s", file=sys.stderr, flush=True)
            rows.extend(got)
            profiles.update(prof)
            timings[bench_id] = elapsed
    finally:
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    machine["loadavg_end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    machine["mode"] = "quick" if args.quick else "full"
    machine["wall"] = f"{time.perf_counter() - total:.0f} s"

    print("\n".join(f"{k}: {v}" for k, v in machine.items()))
    print()
    print(format_table(rows))
    notes = [f"- {r.id} {r.what}: {r.note}" for r in rows if r.note]
    if notes:
        print("\nNotes:\n" + "\n".join(notes))
    if args.profile:
        for label, text in profiles.items():
            print(f"\n### profile: {label}\n{text}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "rows": [r.to_dict() for r in rows],
                                         "seconds": timings, "profiles": profiles}, indent=1))
    failed = [r.id for r in rows if not math.isfinite(r.ours) and "skipped" not in r.note]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
