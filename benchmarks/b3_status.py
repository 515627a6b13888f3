"""B3: ``status`` for 1,000 tickers x 3 versions on SQLite.

The store is populated with the raw ``MlflowClient`` (training 3,000 models
would measure training, not ``status``): per ticker one registered model
with the tags ``TickerRegistry`` writes, one run with the holdout metrics,
three model versions with the version tags ``TickerRegistry.register``
writes (``metric.*``, ``skill.*``, ``lineage.*``, ``idempotency_key``, ...)
the ``production`` (v2) and ``staging`` (v3) aliases, and the two audit-trail
tags those moves leave on the registered model. It is built on
tmpfs (``/dev/shm``, when there is one) to be quick, then copied to the
benchmark's folder on disk, where both sides read it.

Ours: ``ticker_registry.views.status(registry)``.
Baseline: for each ticker, one alias look-up (``get_model_version_by_alias``)
and one run look-up (``get_run``) for the production metrics.
Targets: at least 4x faster than the baseline; under 1 s.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from .fixtures import config, sqlite_uri, train
from .harness import Context, Row, interleaved, median

NAMESPACE = "order_flow"


def _ticker(i: int) -> str:
    return f"T{i:04d}USDT"


def populate(uri: str, n_tickers: int, metrics: dict[str, float], artifacts: Path) -> None:
    """Registered models, runs, versions and aliases with our tag layout, via the raw client."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from ticker_registry.evaluation import head_skill
    from ticker_registry.records import AuditEvent

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment(f"ticker-registry/{NAMESPACE}",
                                   artifact_location=artifacts.as_uri())
    created = "2024-01-01T00:00:00+00:00"
    skill = {f"skill.{h}": str(ok).lower() for h, ok in head_skill(metrics).items()}
    audit = {f"audit.{seq:06d}": AuditEvent(seq=seq, when=created, action="gate", alias=alias,
                                            from_version=None, to_version=version,
                                            reason="gate", user="bench").to_json()
             for seq, (alias, version) in enumerate((("production", 2), ("staging", 3)), 1)}
    for i in range(n_tickers):
        ticker = _ticker(i)
        name = f"{NAMESPACE}.{ticker}"
        client.create_registered_model(name, tags={
            "ticker": ticker, "kind": "order_flow_model", "namespace": NAMESPACE,
            "created_at": created, "training_sessions": "3", "total_samples": "30000",
            "last_trained": created, "audit_seq": str(len(audit)), **audit},
            description=f"Order-flow model of {ticker}.")
        run = client.create_run(exp, tags={"ticker": ticker})
        run_id = run.info.run_id
        client.log_batch(run_id, metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()])
        for v in (1, 2, 3):
            key = f"{i:04d}{v}".ljust(32, "0")
            tags = {"ticker": ticker, "idempotency_key": key, "model_type": "xgboost",
                    "created_at": created,
                    **{f"metric.{k}": repr(x * (1 + 1e-3 * v)) for k, x in metrics.items()},
                    **skill,
                    "lineage.n_samples": "10000", "lineage.first_trade": created,
                    "lineage.last_trade": created, "lineage.fingerprint": key * 2,
                    "lineage.source": "trades", "lineage.trades": "10050"}
            client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id,
                                        tags=tags, description=f"{ticker} v{v}")
        client.set_registered_model_alias(name, "production", "2")
        client.set_registered_model_alias(name, "staging", "3")


def run(ctx: Context) -> list[Row]:
    from mlflow import MlflowClient

    from ticker_registry.registry import TickerRegistry
    from ticker_registry.views import status

    n_tickers = ctx.pick(30, 1000)
    cfg = config(True)
    metrics = dict(train(cfg, 4_000).model.metrics_)

    shm = Path("/dev/shm")
    build = Path(tempfile.mkdtemp(prefix="tr-bench-b3-", dir=shm if shm.is_dir() else None))
    try:
        populate(sqlite_uri(build), n_tickers, metrics, ctx.workdir / "artifacts")
        store = ctx.folder("store")
        shutil.copy2(build / "mlflow.db", store / "mlflow.db")
    finally:
        shutil.rmtree(build, ignore_errors=True)
    uri = sqlite_uri(store)

    registry = TickerRegistry(cfg, tracking_uri=uri, models_dir=store)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    names = [f"{NAMESPACE}.{_ticker(i)}" for i in range(n_tickers)]

    rows_seen: dict[str, Any] = {}

    def ours() -> None:
        rows_seen["ours"] = status(registry)

    def baseline() -> None:
        out = []
        for name in names:
            mv = client.get_model_version_by_alias(name, "production")
            out.append((name, mv.version, client.get_run(str(mv.run_id)).data.metrics))
        rows_seen["baseline"] = out

    times = interleaved({"ours": ours, "baseline": baseline}, rounds=ctx.pick(1, 3), warmup=1,
                        per_round={"ours": ctx.pick(2, 1)})
    got = rows_seen["ours"]
    assert len(got) == n_tickers and all(r["production"] == 2 and r["versions"] == 3
                                         for r in got), got[:2]
    ctx.profile_calls("B3 status", ours, 1)
    t_ours, t_base = median(times["ours"]), median(times["baseline"])
    what = f"status, {n_tickers} tickers x 3 versions"
    return [Row("B3", what, t_ours, "s", "alias + run look-up per ticker", t_base,
                ">= 4x and < 1 s", t_base / t_ours >= 4 and t_ours < 1.0,
                repeats=len(times["ours"]))]
