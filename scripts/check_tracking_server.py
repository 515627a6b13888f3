#!/usr/bin/env python3
"""Smoke-check a running MLflow tracking server with a plain MlflowClient.

    python scripts/check_tracking_server.py [TRACKING_URI]

TRACKING_URI defaults to $MLFLOW_TRACKING_URI. Creates an experiment, a run, logs a metric and
an artifact (proxied through ``mlflow-artifacts:``), creates a registered model + version, sets
an alias, reads everything back, and prints OK. Exits non-zero on any mismatch.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid


def main(argv: list[str]) -> int:
    uri = argv[1] if len(argv) > 1 else os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri:
        print("usage: check_tracking_server.py TRACKING_URI (or set MLFLOW_TRACKING_URI)", file=sys.stderr)
        return 2
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")

    import mlflow

    t0 = time.perf_counter()
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    tag = uuid.uuid4().hex[:10]

    exp_id = client.create_experiment(f"smoke-{tag}")
    exp = client.get_experiment(exp_id)
    assert exp.artifact_location.startswith("mlflow-artifacts:"), exp.artifact_location

    run = client.create_run(exp_id)
    run_id = run.info.run_id
    client.log_metric(run_id, "smoke_metric", 0.5, step=1)

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "hello.txt")
        with open(path, "w") as f:
            f.write(f"hello {tag}\n")
        client.log_artifact(run_id, path, artifact_path="smoke")
        listed = [a.path for a in client.list_artifacts(run_id, "smoke")]
        assert listed == ["smoke/hello.txt"], listed
        got = client.download_artifacts(run_id, "smoke/hello.txt", dst_path=tmp + "/dl")
        with open(got) as f:
            assert f.read() == f"hello {tag}\n"
    client.set_terminated(run_id)

    got_run = client.get_run(run_id)
    assert got_run.data.metrics["smoke_metric"] == 0.5, got_run.data.metrics
    assert got_run.info.artifact_uri.startswith("mlflow-artifacts:"), got_run.info.artifact_uri

    name = f"smoke-model-{tag}"
    client.create_registered_model(name)
    mv = client.create_model_version(name, f"{got_run.info.artifact_uri}/smoke", run_id=run_id)
    client.set_registered_model_alias(name, "champion", mv.version)
    by_alias = client.get_model_version_by_alias(name, "champion")
    assert by_alias.version == mv.version and by_alias.run_id == run_id, by_alias
    rm = client.get_registered_model(name)
    assert rm.aliases.get("champion") == mv.version, rm.aliases

    print(
        f"OK {uri} experiment={exp_id} run={run_id} model={name} v{mv.version} "
        f"artifact_uri={got_run.info.artifact_uri} ({time.perf_counter() - t0:.2f}s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
