"""B6: import of one default-size version from a bundle; export and the round trip.

Ours: ``export_bundle`` of one version of ETHUSDT from store A, then
``import_bundle`` of that file into store B under a new ticker, timed apart. Each
repetition takes another version (the same model registered again), so each
bundle file is new: the import is never short-cut by its idempotency key or
by the per-process memo of bundles already test-loaded, i.e. every import
pays what moving a version to another machine pays. The import verifies the
bundle, test-loads the heads in the isolated check child (started once per
process and reused: the warm-up round starts it), registers a new version and
places it on staging.

The first import of a process also starts the check child; that is measured
apart, each in a fresh process whose registry is already open (what
``ticker-registry import`` pays beyond its start-up).

Baseline: what plain MLflow offers for "move a version": ``mlflow.pyfunc.load_model``
of the version (the load check) plus ``MlflowClient.copy_model_version`` to
a new registered model, within store A (the global tracking URI is set in
this process only). It verifies nothing.

Target: import <= 0.3 s per version; export, the round trip and the first import: report.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .fixtures import config, sqlite_uri, store, train
from .harness import Context, Row, interleaved, median

TICKER = "ETHUSDT"

#: A fresh process: open the registry, then time one import_bundle (child start included).
_FIRST_IMPORT = """\
import json, sys, time
from ticker_registry import Config
from ticker_registry.bundle import import_bundle
from ticker_registry.registry import TickerRegistry
cfg, models_dir, bundle, ticker = json.loads(sys.argv[1]), *sys.argv[2:5]
registry = TickerRegistry(Config.from_dict(cfg), models_dir=models_dir)
registry.search_models()
start = time.perf_counter()
assert import_bundle(registry, bundle, as_ticker=ticker).created
print(time.perf_counter() - start)
"""


def run(ctx: Context) -> list[Row]:
    import mlflow
    import mlflow.pyfunc
    from mlflow import MlflowClient

    from ticker_registry.bundle import export_bundle, import_bundle
    from ticker_registry.registry import TickerRegistry

    cfg = config(ctx.quick)
    result = train(cfg, ctx.pick(6_000, 20_000))
    store_a = store(ctx, "a")
    source = TickerRegistry(cfg, models_dir=store_a)
    rounds, warmup, profiled, firsts = ctx.pick(1, 5), 1, ctx.pick(1, 3), ctx.pick(1, 3)
    n_versions = 2 * (rounds + warmup) + profiled + firsts
    versions = [source.register(TICKER, result.model, lineage=result.lineage,
                                idempotency_key=f"b6-{i}")[0] for i in range(n_versions)]
    store_b = store(ctx, "b")
    target = TickerRegistry(cfg, models_dir=store_b)
    bundles = ctx.folder("bundles")
    counter = itertools.count()
    parts: dict[str, list[float]] = {"export": [], "import": []}

    def export_next() -> tuple[int, Path]:
        i = next(counter)
        path = bundles / f"{TICKER}-{i}.trbundle"
        export_bundle(source, TICKER, path, versions[i].version)
        return i, path

    def ours() -> None:
        start = time.perf_counter()
        i, path = export_next()
        middle = time.perf_counter()
        imported = import_bundle(target, path, as_ticker=f"R{i:03d}USDT")
        parts["export"].append(middle - start)
        parts["import"].append(time.perf_counter() - middle)
        assert imported.created

    uri = sqlite_uri(store_a)
    mlflow.set_tracking_uri(uri)  # this benchmark process only; models:/ URIs need it
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)

    def baseline() -> None:
        i = next(counter)
        src_uri = f"models:/{versions[i].name}/{versions[i].version}"
        mlflow.pyfunc.load_model(src_uri)
        client.copy_model_version(src_uri, f"copy.R{i:03d}USDT")

    times = interleaved({"ours": ours, "baseline": baseline}, rounds=rounds, warmup=warmup)
    if ctx.profile:
        ready = [export_next() for _ in range(profiled)]
        pending = iter(ready)

        def import_one() -> None:
            i, path = next(pending)
            import_bundle(target, path, as_ticker=f"R{i:03d}USDT")

        ctx.profile_calls("B6 import_bundle (child running)", import_one, profiled)
    first = [_first_import(cfg, store_b, *export_next()) for _ in range(firsts)]

    n = len(times["ours"])
    t_import, t_export = median(parts["import"][-n:]), median(parts["export"][-n:])
    t_trip, t_base = median(times["ours"]), median(times["baseline"])
    base_name = "pyfunc.load_model + copy_model_version"
    return [
        Row("B6", "import one default-size version (child running)", t_import, "s", base_name,
            t_base, "<= 0.3 s", t_import <= 0.3, repeats=n,
            note=f"import {t_import * 1e3:.0f} ms, export {t_export * 1e3:.0f} ms, round trip "
                 f"{t_trip * 1e3:.0f} ms, first import of a process {median(first) * 1e3:.0f} "
                 "ms (medians)"),
        Row("B6", "export one version", t_export, "s", "-", None, "report", None, repeats=n),
        Row("B6", "export + import round trip, one version", t_trip, "s", base_name, t_base,
            "report", None, repeats=n),
        Row("B6", "first import of a process (check child starts)", median(first), "s", "-",
            None, "report", None, repeats=len(first)),
    ]


def _first_import(cfg: object, models_dir: Path, i: int, bundle: Path) -> float:
    """Seconds of one import_bundle in a fresh process whose registry is already open."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run(
        [sys.executable, "-c", _FIRST_IMPORT, json.dumps(cfg.to_dict()),  # type: ignore[attr-defined]
         str(models_dir), str(bundle), f"F{i:03d}USDT"],
        capture_output=True, text=True, check=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])
