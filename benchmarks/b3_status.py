"""B3: ``status`` over 1,000 and 10,000 tickers x 3 versions on SQLite (B3S: on the server).

The store holds what the library itself writes: one ticker, the template, is
trained once and registered three times through ``TickerRegistry`` (runs,
LoggedModels, model files, every version tag the registry writes, the gate's
tags, the audit run), with ``production`` on v2 and ``staging`` on v3. Its rows
in MLflow's five registry tables are then copied in SQL for the other tickers,
the ticker's name replaced (training 30,000 models would measure training, not
``status``); the copies share the template's runs and files.

Ours: ``ticker_registry.views.status(registry)`` (one SQL read of the registry
tables on SQLite; through the server, the paged searches).
Baseline: for each ticker, one alias look-up (``get_model_version_by_alias``)
and one run look-up (``get_run``) for the production metrics.

Targets (SQLite): at least 4x faster than the baseline; at most 0.5 s at 1,000
tickers and 3 s at 10,000. The server's figures are reported beside them, and
the peak Python memory of one ``status`` (tracemalloc, in a separate call).
The server's rows are benchmark B3S (:mod:`.b3s_status_server`).
"""

from __future__ import annotations

import math
import shutil
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .fixtures import config, sqlite_uri, train
from .harness import Context, Row, interleaved, median

NAMESPACE = "order_flow"
TEMPLATE = "T0000USDT"
#: MLflow's registry tables, parents first; every row of the template is copied.
_TABLES = ("registered_models", "registered_model_tags", "registered_model_aliases",
           "model_versions", "model_version_tags")


def _ticker(i: int) -> str:
    return f"T{i:04d}USDT"


def register_template(cfg: Any, uri: str, models_dir: Path) -> None:
    """The template ticker, registered three times by the library (prod v2, staging v3)."""
    from ticker_registry.aliases import apply_gate, promote
    from ticker_registry.registry import TickerRegistry

    registry = TickerRegistry(cfg, tracking_uri=uri, models_dir=models_dir)
    for v in (1, 2, 3):
        result = train(cfg, 3_000 + 500 * v)
        info, _ = registry.register(TEMPLATE, result.model, lineage=result.lineage,
                                    idempotency_key=f"b3-template-{v}")
        apply_gate(registry, TEMPLATE, info.version, result.model)
    for alias, v in ((cfg.production_alias, 2), (cfg.staging_alias, 3)):
        if registry.model(TEMPLATE).aliases.get(alias) != v:
            promote(registry, TEMPLATE, v, to=alias, reason="b3 layout")


def _peak_mib(fn: Callable[[], Any]) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def _compare(ctx: Context, label: str, uri: str, cfg: Any, n_tickers: int, *,
             target: tuple[float, str] | None, rounds: int, base_rounds: int,
             bench_id: str = "B3") -> list[Row]:
    from mlflow import MlflowClient

    from ticker_registry.registry import TickerRegistry
    from ticker_registry.views import status

    registry = TickerRegistry(cfg, tracking_uri=uri, models_dir=ctx.folder(f"client-{label}-{n_tickers}"))
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    names = [f"{NAMESPACE}.{_ticker(i)}" for i in range(n_tickers)]
    seen: dict[str, Any] = {}

    def ours() -> None:
        seen["ours"] = status(registry)

    def baseline() -> None:
        out = []
        for name in names:
            mv = client.get_model_version_by_alias(name, "production")
            out.append((name, mv.version, client.get_run(str(mv.run_id)).data.metrics))
        seen["baseline"] = out

    if base_rounds:
        times = interleaved({"ours": ours, "baseline": baseline}, rounds=base_rounds, warmup=0,
                            per_round={"ours": max(1, rounds // base_rounds)})
    else:
        times = interleaved({"ours": ours}, rounds=rounds, warmup=0)
        times["baseline"] = [math.nan]
    got = seen["ours"]
    assert len(got) == n_tickers and all(r["production"] == 2 and r["versions"] == 3
                                         and r["latest"] == 3 for r in got), got[:2]
    assert len({r["ticker"] for r in got}) == n_tickers
    peak = _peak_mib(ours)
    ctx.profile_calls(f"B3 status {label} {n_tickers}", ours, 1)
    t_ours, t_base = median(times["ours"]), median(times["baseline"])
    what = f"status, {n_tickers:,} tickers x 3 versions, {label}"
    note = f"peak Python memory of one status {peak:.0f} MiB"
    if target is None:
        base = None if math.isnan(t_base) else t_base
        return [Row(bench_id, what, t_ours, "s", "alias + run look-up per ticker" if base else
                    "- (per-ticker look-ups not run at this size)", base, "report", None,
                    repeats=len(times["ours"]), note=note)]
    limit, text = target
    return [Row(bench_id, what, t_ours, "s", "alias + run look-up per ticker", t_base,
                f">= 4x and {text}", t_base / t_ours >= 4 and t_ours <= limit,
                repeats=len(times["ours"]), note=note)]


def run(ctx: Context) -> list[Row]:
    cfg = config(True)
    sizes = ctx.pick((30, 300), (1_000, 10_000))
    shm = Path("/dev/shm")
    build = Path(tempfile.mkdtemp(prefix="tr-bench-b3-", dir=shm if shm.is_dir() else None))
    rows: list[Row] = []
    try:
        template = build / "template"
        template.mkdir()
        register_template(cfg, sqlite_uri(template), template)
        for n in sizes:
            store = ctx.folder(f"store-{n}")
            shutil.copy2(template / "mlflow.db", store / "mlflow.db")
            clone_template(sqlite_uri(store), 1, n)
            big = n >= 10_000
            target = (3.0, "<= 3 s") if big else (0.5, "<= 0.5 s")
            rows += _compare(ctx, "SQLite", sqlite_uri(store), cfg, n, target=target,
                             rounds=ctx.pick(2, 3 if big else 6), base_rounds=1 if big else 2)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return rows


def clone_template(db_uri: str, start: int, n_tickers: int) -> None:
    """Copy the template's registry rows to tickers ``start..n-1`` (SQLite or PostgreSQL)."""
    import sqlalchemy as sa

    engine = sa.create_engine(db_uri)
    meta = sa.MetaData()
    tables = [sa.Table(t, meta, autoload_with=engine) for t in _TABLES]
    template = f"{NAMESPACE}.{TEMPLATE}"
    with engine.begin() as conn:
        rows = {t.name: [dict(r) for r in conn.execute(
            sa.select(t).where(t.c.name == template)).mappings()] for t in tables}
        for lo in range(max(1, start), n_tickers, 500):
            for t in tables:
                batch = [{k: (v.replace(TEMPLATE, _ticker(i)) if isinstance(v, str) else v)
                          for k, v in r.items()}
                         for i in range(lo, min(lo + 500, n_tickers)) for r in rows[t.name]]
                if batch:
                    conn.execute(sa.insert(t), batch)
    engine.dispose()
