"""B1: register one trained version on SQLite.

Ours: ``TickerRegistry.register`` of a three-head model (run with params,
metrics and tags, pyfunc with the native heads, model version with metric,
skill and lineage tags; ``log_plots`` off), same ticker each time.

Baselines, each in its own SQLite store in the same process:

- ``mlflow.xgboost.log_model(booster, name=..., registered_model_name=...)``
  of one head with MLflow's defaults (requirements inferred), inside
  ``mlflow.start_run``; the global tracking URI is set in this process only;
- the raw-client floor: ``create_run`` + ``log_metric`` + ``create_model_version``,
  no artifacts.

Targets: at least 20x faster than the default; at most 3x the floor.
"""

from __future__ import annotations

import itertools

from .fixtures import config, sqlite_uri, store, train
from .harness import Context, Row, interleaved, median

TICKER = "ETHUSDT"


def run(ctx: Context) -> list[Row]:
    import mlflow
    import mlflow.xgboost
    from mlflow import MlflowClient

    from ticker_registry.registry import TickerRegistry
    from ticker_registry.store import runs as runs_module

    cfg = config(ctx.quick, log_plots=False)
    result = train(cfg, ctx.pick(6_000, 20_000))
    model = result.model

    registry = TickerRegistry(cfg, models_dir=store(ctx, "ours"))
    keys = (f"bench-{i}" for i in itertools.count())

    def ours() -> None:
        registry.register(TICKER, model, lineage=result.lineage, idempotency_key=next(keys))

    default_dir = ctx.folder("default")
    default_uri = sqlite_uri(default_dir)
    mlflow.set_tracking_uri(default_uri)  # this benchmark process only; log_model needs it
    default_client = MlflowClient(tracking_uri=default_uri)
    default_exp = default_client.create_experiment(
        "b1-default", artifact_location=(default_dir / "artifacts").as_uri())
    booster = model.heads_["flow_type"].booster

    def default() -> None:
        with mlflow.start_run(experiment_id=default_exp):
            mlflow.xgboost.log_model(booster, name="model",
                                     registered_model_name=f"default.{TICKER}")

    floor_dir = ctx.folder("floor")
    floor_client = MlflowClient(tracking_uri=sqlite_uri(floor_dir))
    floor_exp = floor_client.create_experiment(
        "b1-floor", artifact_location=(floor_dir / "artifacts").as_uri())
    floor_client.create_registered_model(f"floor.{TICKER}")
    accuracy = float(model.metrics_["flow_type_accuracy"])

    def floor() -> None:
        run_ = floor_client.create_run(floor_exp)
        floor_client.log_metric(run_.info.run_id, "flow_type_accuracy", accuracy)
        floor_client.create_model_version(f"floor.{TICKER}", f"{run_.info.artifact_uri}/model",
                                          run_.info.run_id)

    per = ctx.pick(2, 3)
    times = interleaved({"ours": ours, "default": default, "floor": floor},
                        rounds=ctx.pick(1, 5),
                        warmup={"ours": 1, "floor": 1, "default": ctx.pick(0, 1)},
                        per_round={"ours": per, "floor": per})
    ctx.profile_calls("B1 TickerRegistry.register", ours, ctx.pick(3, 10))
    ctx.breakdown_calls("B1 register: time per MlflowClient call", ours, ctx.pick(3, 10),
                        [(registry.store.client, (
                            "create_run", "create_logged_model", "log_outputs", "log_batch",
                            "log_artifacts", "finalize_logged_model", "create_model_version",
                            "set_logged_model_tags", "set_terminated", "create_registered_model",
                            "search_model_versions", "get_registered_model")),
                         (registry.store, ("registration_state",)),
                         (runs_module, ("save_pyfunc",))])
    t_ours, t_default, t_floor = (median(times[k]) for k in ("ours", "default", "floor"))
    n = len(times["ours"])
    return [
        Row("B1", "register one version (3 heads, SQLite)", t_ours, "s",
            "log_model, MLflow defaults", t_default, ">= 20x", t_default / t_ours >= 20,
            repeats=n, note=f"default log_model n={len(times['default'])}"),
        Row("B1", "register one version (3 heads, SQLite)", t_ours, "s",
            "raw-client floor", t_floor, ">= 0.33x (at most 3x the floor)",
            t_floor / t_ours >= 1 / 3, repeats=n),
    ]
