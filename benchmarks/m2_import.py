"""M2: what refusing a hostile bundle costs: peak resident memory and time, per case.

Each hostile case of the bad-bundle corpus (``tests/bad_bundles.py``,
``HOSTILE_IDS``: a 3-million-node XGBoost tree, a skops file whose schema.json
is 300 MiB, a 600 MiB zip entry inside a skops file, a LightGBM tree with a
cycle, a forest tree with a cycle, 30,000 metrics, a 200 MiB decompression bomb)
is imported with ``import_bundle`` in a fresh Python process into a SQLite
store. That process reports the wall time of the ``import_bundle`` call and its
peak RSS: the high-water mark (``VmHWM``) of itself and of the isolated test-load
child it starts, whichever is larger (``ru_maxrss`` is inherited across fork and
exec on Linux, so it would report the benchmark's own size). Every case must be
refused.

Baseline: the same measurement for the good bundle the cases were made from (a
legitimate import: verified, test-loaded, registered, placed on staging), so the
"speedup" column is RSS(good import) / RSS(refusal): at least about 1 when a
refusal costs no more memory than a normal import.

Target: every case refused within 10 s, with a peak RSS no larger than the legitimate
import's (the "speedup" at least 1). It was 300 MB until the importer began to import its
model library while the child checks (B6's import time): that library is 70-95 MiB of
every import, refused or not, whatever the bundle holds, so a fixed figure measured it
and not what a hostile file can make us allocate.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from .fixtures import config, store, train
from .harness import Context, Row, median

TICKER = "ETHUSDT"
REPO = Path(__file__).resolve().parent.parent
MAX_SECONDS = 10.0

# The measured process: open the store (untimed), import once, report. Peak RSS is VmHWM
# (/proc/<pid>/status) of this process and of the isolated test-load child, which appends
# its own on exit to the file $TR_M2_HWM (a line prefixed to the child's code here).
# ru_maxrss would not do: Linux carries it over fork and exec, so a child started by a
# process of 700 MB reports 700 MB whatever it does.
_CHILD = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from ticker_registry import BundleError, TickerRegistry
from ticker_registry.bundle import checker, import_bundle

def hwm_kib():
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])

# the check child (one per process, reused) appends its VmHWM when it exits; it is closed
# right after the import so that it does
checker._BOOT = ("import atexit, os; atexit.register(lambda: open(os.environ['TR_M2_HWM'], 'a')"
                 ".write(open('/proc/self/status').read().split('VmHWM:')[1].split()[0] + '\\n'))\n"
                 + checker._BOOT)
os.environ["TR_M2_HWM"] = sys.argv[5]
registry = TickerRegistry(json.loads(sys.argv[2]), models_dir=sys.argv[3])
registry.search_models()
ready = hwm_kib()
start = time.perf_counter()
try:
    import_bundle(registry, sys.argv[4])
    outcome, refused = "imported", False
except BundleError as exc:
    outcome, refused = str(exc), True
seconds = time.perf_counter() - start
checker._close_shared()
children = [int(x) for x in open(sys.argv[5]).read().split()]
print(json.dumps({"seconds": seconds, "own_kib": hwm_kib(), "children_kib": max(children or [0]),
                  "ready_kib": ready, "refused": refused, "outcome": outcome}))
"""


def _measure(cfg: dict[str, Any], models_dir: Path, bundle: Path) -> dict[str, Any]:
    hwm = models_dir.parent / f"hwm-{bundle.name}-{len(list(models_dir.parent.iterdir()))}"
    hwm.write_text("")
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(REPO), json.dumps(cfg),
                           str(models_dir), str(bundle), str(hwm)], capture_output=True,
                          text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the import process failed: {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["peak_mb"] = max(out["own_kib"], out["children_kib"]) * 1024 / 1e6
    return out


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def run(ctx: Context) -> list[Row]:
    sys.path.insert(0, str(REPO / "tests"))
    from ticker_registry.bundle import export_bundle
    from ticker_registry.registry import TickerRegistry

    import bad_bundles

    cfg = config(ctx.quick)
    result = train(cfg, ctx.pick(6_000, 20_000))
    source = TickerRegistry(cfg, models_dir=store(ctx, "source"))
    source.register(TICKER, result.model, lineage=result.lineage, idempotency_key="m2")
    good = ctx.folder("bundles") / f"{TICKER}.trbundle"
    export_bundle(source, TICKER, good, 1)
    corpus = ctx.folder("corpus")
    parsed = bad_bundles.read_good(good)
    builders = {case_id: build for case_id, _, build in bad_bundles.CASES}
    target = store(ctx, "target")
    cfg_dict = cfg.to_dict()
    repeats = ctx.pick(1, 2)

    def measure(bundle: Path) -> dict[str, Any]:
        runs = [_measure(cfg_dict, target, bundle) for _ in range(repeats)]
        return {**runs[-1], "peak_mb": max(r["peak_mb"] for r in runs),
                "seconds": median([r["seconds"] for r in runs])}

    base = _measure(cfg_dict, store(ctx, "baseline"), good)  # a fresh store: really imported
    rows = []
    for case_id in bad_bundles.HOSTILE_IDS:
        bundle = builders[case_id](parsed, corpus)
        got = measure(bundle)
        met = (got["refused"] and got["peak_mb"] <= base["peak_mb"]
               and got["seconds"] <= MAX_SECONDS)
        reason = got["outcome"].split(" is refused", 1)[-1].removeprefix(
            " by the isolated test load").removeprefix(":").strip()
        rows.append(Row(
            "M2", f"refuse {case_id} ({_size(bundle.stat().st_size)} file)",
            got["peak_mb"] / 1.048576, "MiB", "import of the good bundle",
            base["peak_mb"] / 1.048576, f"refused, <= the good import, <= {MAX_SECONDS:.0f} s",
            met, repeats=repeats,
            note=f"{got['seconds']:.2f} s (good import {base['seconds']:.2f} s); RSS before the "
                 f"import {got['ready_kib'] / 1024:.0f} MiB, test-load child peak "
                 f"{got['children_kib'] / 1024:.0f} MiB; "
                 + ("refused: " + reason[:120] if got["refused"] else "NOT REFUSED")))
    return rows
