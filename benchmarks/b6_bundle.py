"""B6: export + import round trip of one version.

Ours: ``export_bundle`` of one version of ETHUSDT from store A, then
``import_bundle`` of that file into store B under a new ticker. Each
repetition takes another version (the same model registered again), so each
bundle file is new: the import is never short-cut by its idempotency key or
by the per-process memo of bundles already test-loaded, i.e. every round
trip pays what moving a version to another machine pays. The import
verifies the bundle, test-loads the heads in a subprocess, registers a new
version and applies the promotion gate.

Baseline: what plain MLflow offers for "move a version": ``mlflow.pyfunc.load_model``
of the version (the load check) plus ``MlflowClient.copy_model_version`` to
a new registered model, within store A (the global tracking URI is set in
this process only).

Target: report; under 0.3 s per version.
"""

from __future__ import annotations

import itertools
import time

from .fixtures import config, sqlite_uri, store, train
from .harness import Context, Row, interleaved, median

TICKER = "ETHUSDT"


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
    rounds, warmup = ctx.pick(1, 5), 1
    versions = [source.register(TICKER, result.model, lineage=result.lineage,
                                idempotency_key=f"b6-{i}")[0]
                for i in range(2 * (rounds + warmup) + ctx.pick(1, 3))]
    target = TickerRegistry(cfg, models_dir=store(ctx, "b"))
    bundles = ctx.folder("bundles")
    counter = itertools.count()
    parts: dict[str, list[float]] = {"export": [], "import": []}

    def ours() -> None:
        i = next(counter)
        path = bundles / f"{TICKER}-{i}.trbundle"
        start = time.perf_counter()
        export_bundle(source, TICKER, path, versions[i].version)
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
    ctx.profile_calls("B6 export_bundle + import_bundle", ours, ctx.pick(1, 3))
    t_ours, t_base = median(times["ours"]), median(times["baseline"])
    n = len(times["ours"])
    return [Row("B6", "export + import round trip, one version", t_ours, "s",
                "pyfunc.load_model + copy_model_version", t_base, "report; < 0.3 s",
                t_ours < 0.3, repeats=n,
                note=f"export {median(parts['export'][-n:]) * 1e3:.0f} ms, import "
                     f"{median(parts['import'][-n:]) * 1e3:.0f} ms (medians)")]
