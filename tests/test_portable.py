"""Portable versions: plain MLflow loads and serves every version, from features or raw trades.

Each version carries its serving code (``code/order_flow_portable``, byte copies of the
package's modules) and pins only packages from PyPI, so it runs with exactly what it
declares. The ``slow`` tests prove it where ticker-registry is absent: a venv with only
mlflow, xgboost, lightgbm, scikit-learn, skops, pandas, numpy and uvicorn at the versions
installed here, built once from PyPI and cached under
``~/.cache/ticker-registry-test-envs/<hash of the requirements>`` (``TR_TEST_ENV_CACHE``
moves it), and the model's own environment built from its requirements by ``mlflow models
predict --env-manager uv``.

Why uv and not virtualenv: ``mlflow models predict`` gives pyenv a private, empty
``PYENV_ROOT`` in a temporary folder, so ``--env-manager virtualenv`` must build CPython
from python.org sources (``pyenv install``), which this machine cannot reach; ``uv``
finds the CPython already installed and installs the requirements from PyPI. The ``uv``
binary comes from PyPI too, into ``<cache>/uv-tool``.
"""

from __future__ import annotations

import ast
import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

import ticker_registry
from ticker_registry import Config, compute_live_features
from ticker_registry.registry import TickerRegistry
from ticker_registry.served import PREDICTION_COLUMNS, QUOTE_COLUMNS, TRADE_COLUMNS
from ticker_registry.store import packaging as pyfunc_package
from ticker_registry.store import pyfunc_model
from ticker_registry.store.packaging import SHIPPED_MODULES
from ticker_registry.training import train_on_trades

from conftest import QUICK, make_trades, new_store, register_training

PACKAGE_DIR = Path(ticker_registry.__file__).resolve().parent
#: One ticker per model type, each with one version on production.
TICKERS = {"xgboost": "XRPETH", "lightgbm": "LTCBTC", "random_forest": "ADAUSDT"}
#: What the clean environment holds: these, at the versions installed here (and their deps).
CLEAN_ENV_PACKAGES = ("mlflow", "xgboost", "lightgbm", "scikit-learn", "skops", "pandas", "numpy",
                      "uvicorn")
ENV_CACHE_ENV = "TR_TEST_ENV_CACHE"
#: The uv used as MLflow's env manager (from PyPI).
UV_VERSION = "0.13.8"
INTEGER_FEATURES = ("last_side", "large_order_count", "has_market_data")
#: Modules the shipped code and the wrapper may import (the model libraries lazily).
ALLOWED_IMPORTS = {"__future__", "collections", "dataclasses", "datetime", "json", "math", "os",
                   "pathlib", "typing", "numpy", "pandas", "xgboost", "lightgbm", "sklearn",
                   "skops", "hashlib", "importlib", "sys", "types", "mlflow"}


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def store(tmp_path_factory, empty_store_db):
    """One embedded store; per model type a ticker with one production version."""
    registry = new_store(tmp_path_factory.mktemp("portable") / "store", empty_store_db,
                         Config.from_dict(QUICK))
    results = {}
    for seed, (model_type, ticker) in enumerate(TICKERS.items()):
        cfg = Config.from_dict({**QUICK, "model_type": model_type})
        result = train_on_trades(make_trades(5000, seed=20 + seed), cfg)
        info, created, decision = register_training(registry, result, ticker)
        assert created and decision.promoted
        results[model_type] = result
    return registry, results


def _model_dir(registry: TickerRegistry, ticker: str) -> Path:
    return Path(registry.resolve(ticker).source.removeprefix("file://"))


def _window(seed: int = 11, n: int = 25) -> pd.DataFrame:
    """Raw trades as a client would send them: epoch ms, 'buy'/'sell', a quote per row."""
    trades = make_trades(n + 40, seed=seed).iloc[-n:].reset_index(drop=True)
    return pd.DataFrame({
        "timestamp": trades["timestamp"].astype("int64") // 1_000_000,
        "price": trades["price"], "quantity": trades["quantity"],
        "side": np.where(trades["side"] > 0, "buy", "sell"),
        "bid": trades["price"] * 0.9999, "ask": trades["price"] * 1.0001,
        "bid_size": 3.0, "ask_size": 2.0})


def _library_on_trades(result, window: pd.DataFrame) -> pd.DataFrame:
    """The library's own live prediction of the newest trade of ``window``."""
    spec = result.model.spec_
    last = window.iloc[-spec.sequence_length:]
    events = last[list(TRADE_COLUMNS)].to_dict("records")
    quote = last.iloc[-1][list(QUOTE_COLUMNS)].to_dict()
    return result.model.predict(pd.DataFrame([compute_live_features(events, quote, spec)]))


def _features(result, n: int = 8) -> pd.DataFrame:
    """Holdout feature rows with the integer-valued features as int64 columns."""
    X = result.X_valid.iloc[:n].reset_index(drop=True)
    return X.astype({c: "int64" for c in INTEGER_FEATURES})


def _assert_same(served: pd.DataFrame, expected: pd.DataFrame) -> None:
    served = served.reset_index(drop=True)
    expected = expected.reset_index(drop=True)
    assert list(served.columns) == list(PREDICTION_COLUMNS)
    for column in PREDICTION_COLUMNS:
        if expected[column].dtype == object or isinstance(expected[column].dtype, pd.StringDtype):
            assert list(served[column]) == list(expected[column]), column
        else:
            np.testing.assert_array_equal(served[column].to_numpy(np.float64),
                                          expected[column].to_numpy(np.float64), err_msg=column)


# --------------------------------------------------------------------------- what a version holds
def test_each_version_carries_its_serving_code_byte_for_byte(store):
    registry, _ = store
    for ticker in TICKERS.values():
        root = _model_dir(registry, ticker)
        shipped = root / "code" / pyfunc_package.PORTABLE_PACKAGE
        assert sorted(p.name for p in shipped.glob("*.py")) == sorted(
            ["__init__.py", *SHIPPED_MODULES])
        for name in SHIPPED_MODULES:
            assert (shipped / name).read_bytes() == (PACKAGE_DIR / name).read_bytes(), name
        assert (root / "pyfunc_model.py").read_bytes() == Path(pyfunc_model.__file__).read_bytes()
        flavor = mlflow.models.Model.load(str(root / "MLmodel")).flavors["python_function"]
        assert flavor["code"] == "code" and flavor["loader_module"].endswith("code_model")
        assert not list(root.rglob("*.pkl")) and not list(root.rglob("__pycache__"))


def test_wrapper_constants_match_the_packager():
    assert pyfunc_model.ARTIFACT_KEY == pyfunc_package.ARTIFACT_KEY
    assert pyfunc_model.PORTABLE_PACKAGE == pyfunc_package.PORTABLE_PACKAGE


@pytest.mark.parametrize("name", [*SHIPPED_MODULES, "pyfunc_model.py"])
def test_shipped_code_imports_only_numpy_pandas_and_itself(name):
    path = Path(pyfunc_model.__file__) if name == "pyfunc_model.py" else PACKAGE_DIR / name
    tree = ast.parse(path.read_text())
    shipped = {m.removesuffix(".py") for m in SHIPPED_MODULES}
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
                   for n in ast.walk(block)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom) or id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.level:
            assert name != "pyfunc_model.py", "the wrapper imports nothing of the package"
            assert node.module in shipped, f"{name} imports .{node.module}"
            continue
        modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
        for module in modules:
            assert str(module).split(".")[0] in ALLOWED_IMPORTS, f"{name} imports {module}"


def test_requirements_pin_only_pypi_packages_of_the_head(store):
    registry, _ = store
    versions = {p: metadata.version(p) for p in ("mlflow", "xgboost", "lightgbm", "scikit-learn",
                                                  "skops", "numpy", "pandas")}
    heads = {"xgboost": ["xgboost"], "lightgbm": ["lightgbm"],
             "random_forest": ["scikit-learn", "skops"]}
    for model_type, ticker in TICKERS.items():
        root = _model_dir(registry, ticker)
        expected = [f"{p}=={versions[p]}" for p in ("mlflow", *heads[model_type], "numpy", "pandas")]
        assert (root / "requirements.txt").read_text().split() == expected
        python_env = (root / "python_env.yaml").read_text()
        assert "ticker" not in python_env and "-r requirements.txt" in python_env
        assert "ticker" not in (root / "conda.yaml").read_text()


# --------------------------------------------------------------------------- plain MLflow, in process
def test_plain_mlflow_serves_features_and_raw_trades_with_the_shipped_code(store, monkeypatch):
    registry, results = store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)
    window = _window()
    for model_type, ticker in TICKERS.items():
        result = results[model_type]
        pyfunc = mlflow.pyfunc.load_model(f"models:/{registry.model_name(ticker)}@production")
        served = pyfunc.unwrap_python_model().model
        assert type(served).__module__.startswith("order_flow_portable_")  # not ticker_registry
        features = _features(result)
        assert (features.dtypes == "int64").sum() == len(INTEGER_FEATURES)
        _assert_same(pyfunc.predict(features), result.model.predict(result.X_valid.iloc[:8]))
        _assert_same(pyfunc.predict(window), _library_on_trades(result, window))


@pytest.mark.parametrize("change, column", [
    (lambda X: X.assign(spread_bps=np.nan), "spread_bps"),
    (lambda X: X.drop(columns="last_side"), "last_side"),
    (lambda X: X.assign(book_imbalance=None), "book_imbalance"),
])
def test_a_bad_request_is_one_line_naming_the_column(store, monkeypatch, change, column):
    registry, results = store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{registry.model_name(TICKERS['xgboost'])}@production")
    with pytest.raises(MlflowException) as info:
        pyfunc.predict(change(_features(results["xgboost"], 3)))
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "\n" not in info.value.message and repr(column) in info.value.message


def test_two_versions_with_different_code_each_run_their_own(store, tmp_path):
    registry, results = store
    source = _model_dir(registry, TICKERS["xgboost"])
    plain, patched = tmp_path / "plain", tmp_path / "patched"
    shutil.copytree(source, plain)
    shutil.copytree(source, patched)
    with open(patched / "code" / "order_flow_portable" / "served.py", "a") as fh:
        fh.write("\n_predict = ServedModel.predict\n"
                 "ServedModel.predict = lambda self, frame: _predict(self, frame).assign(impact=42.0)\n")
    X = results["xgboost"].X_valid.iloc[:3].reset_index(drop=True)
    first = mlflow.pyfunc.load_model(str(plain)).predict(X)
    second = mlflow.pyfunc.load_model(str(patched)).predict(X)
    again = mlflow.pyfunc.load_model(str(plain)).predict(X)
    assert (second["impact"] == 42.0).all() and not (first["impact"] == 42.0).any()
    pd.testing.assert_frame_equal(first, again)


# --------------------------------------------------------------------------- MLflow 3 objects
def test_each_version_is_a_logged_model_with_its_metrics_run_and_version(empty_store_db, tmp_path,
                                                                         trained, monkeypatch):
    registry = new_store(tmp_path / "lm", empty_store_db, Config.from_dict(QUICK))
    infos = [register_training(registry, result, "ETHUSDT", gate=False)[0]
             for result in trained[:2]]
    client = MlflowClient(registry.tracking_uri)
    found = client.search_logged_models([registry.experiment_id])
    assert len(found) == len(infos) == 2
    by_id = {m.model_id: m for m in found}
    for info, result in zip(infos, trained, strict=False):
        logged = by_id[info.tags["model_id"]]
        assert str(logged.status) == "READY"
        assert logged.source_run_id == info.run_id and logged.name == "ETHUSDT"
        assert logged.model_type == "xgboost" and logged.params["model_type"] == "xgboost"
        metrics = {m.key: m.value for m in logged.metrics}
        assert metrics == pytest.approx(result.model.metrics_)
        assert info.source == logged.artifact_location
        assert json.loads(logged.tags["mlflow.modelVersions"]) == [
            {"name": "order_flow.ETHUSDT", "version": info.version}]
        outputs = client.get_run(info.run_id).outputs.model_outputs
        assert [o.model_id for o in outputs] == [logged.model_id]
        assert Path(logged.artifact_location.removeprefix("file://"), "MLmodel").is_file()
        mlmodel = mlflow.models.Model.load(str(Path(info.source.removeprefix("file://"))))
        assert (mlmodel.model_id, mlmodel.run_id) == (logged.model_id, info.run_id)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)  # the fluent API, as users call it
    assert len(mlflow.search_logged_models(experiment_ids=[registry.experiment_id],
                                           output_format="list")) == 2


def test_new_stores_put_artifacts_under_mlartifacts(registry, trained):
    info, _, _ = register_training(registry, trained[0])
    assert info.source.startswith((registry.models_dir / "mlartifacts").as_uri() + "/models/")
    assert not (registry.models_dir / "artifacts").exists()


def test_an_existing_store_keeps_its_artifacts_root_and_old_versions_load(tmp_path, trained,
                                                                          empty_store_db,
                                                                          monkeypatch):
    folder = tmp_path / "old"
    folder.mkdir()
    shutil.copy(empty_store_db, folder / "mlflow.db")
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    old_root = (folder / "artifacts").as_uri()
    client.create_experiment("ticker-registry/order_flow", artifact_location=old_root)
    registry = TickerRegistry(Config.from_dict(QUICK), models_dir=folder)
    info, _, _ = register_training(registry, trained[0])
    assert info.source.startswith(old_root + "/models/")
    # a version as registered before LoggedModels: the pyfunc in the run's artifacts
    run = client.create_run(registry.experiment_id)
    run_model = Path(run.info.artifact_uri.removeprefix("file://")) / "model"
    shutil.copytree(Path(info.source.removeprefix("file://")), run_model)
    client.create_model_version("order_flow.ETHUSDT", f"{run.info.artifact_uri}/model",
                                run.info.run_id)
    old = registry.load_model("ETHUSDT", 2)
    X = trained[0].X_valid.iloc[:5]
    pd.testing.assert_frame_equal(old.predict(X), trained[0].model.predict(X))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)
    pyfunc = mlflow.pyfunc.load_model("models:/order_flow.ETHUSDT/2")
    _assert_same(pyfunc.predict(X.reset_index(drop=True)), trained[0].model.predict(X))


_REGISTER = """
import sys
sys.path.insert(0, {tests!r})
from conftest import QUICK, make_trades
from ticker_registry import Config
from ticker_registry.registry import TickerRegistry
from ticker_registry.training import train_on_trades
cfg = Config.from_dict(dict(QUICK, log_plots=True))
registry = TickerRegistry(cfg, models_dir={store!r})
for i, ticker in enumerate(("ETHUSDT", "BTCUSDT")):
    result = train_on_trades(make_trades(4000, seed=i), cfg)
    registry.register(ticker, result.model, lineage=result.lineage,
                      idempotency_key=result.idempotency_key)
print("registered")
"""


def test_registering_leaves_nothing_in_the_temp_dir(tmp_path, empty_store_db):
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    (tmp_path / "store").mkdir()
    shutil.copy(empty_store_db, tmp_path / "store" / "mlflow.db")
    script = _REGISTER.format(tests=str(Path(__file__).parent), store=str(tmp_path / "store"))
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["TMPDIR"] = str(private_tmp)
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 0 and "registered" in proc.stdout, proc.stderr[-3000:]
    left = sorted(p.name for p in private_tmp.iterdir())
    assert not [n for n in left if n.startswith("ticker-registry")], left
    assert left == [], left


# --------------------------------------------------------------------------- a clean environment
def clean_env_requirements() -> list[str]:
    return [f"{p}=={metadata.version(p)}" for p in CLEAN_ENV_PACKAGES]


def _cache_root() -> Path:
    return Path(os.environ.get(ENV_CACHE_ENV) or "~/.cache/ticker-registry-test-envs").expanduser()


def clean_env() -> Path:
    """A venv with only ``CLEAN_ENV_PACKAGES`` (exact versions, from PyPI): built once, cached."""
    requirements = clean_env_requirements()
    key = hashlib.sha256("\n".join([sys.version, *requirements]).encode()).hexdigest()[:16]
    root = _cache_root()
    root.mkdir(parents=True, exist_ok=True)
    env = root / key
    done = env / ".complete"
    with open(root / f"{key}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder; other workers wait and reuse it
        if not done.is_file():
            shutil.rmtree(env, ignore_errors=True)
            base = getattr(sys, "_base_executable", sys.executable)
            subprocess.run([base, "-m", "venv", str(env)], check=True, timeout=300)
            proc = subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "-q",
                                   "--disable-pip-version-check", "--no-input", *requirements],
                                  capture_output=True, text=True, timeout=1800)
            assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
            done.write_text("\n".join(requirements) + "\n")
    probe = subprocess.run([str(env / "bin" / "python"), "-c",
                            "import importlib.util, sys; "
                            "sys.exit(importlib.util.find_spec('ticker_registry') is not None)"],
                           cwd=root, env=_clean_os_env(env, None))
    assert probe.returncode == 0, f"{env} can import ticker_registry; it must not"
    return env


def uv_tool() -> Path:
    """The ``bin`` folder of a venv holding only ``uv`` (from PyPI), built once, cached."""
    tool = _cache_root() / f"uv-tool-{UV_VERSION}"
    _cache_root().mkdir(parents=True, exist_ok=True)
    with open(_cache_root() / "uv-tool.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (tool / ".complete").is_file():
            shutil.rmtree(tool, ignore_errors=True)
            base = getattr(sys, "_base_executable", sys.executable)
            subprocess.run([base, "-m", "venv", str(tool)], check=True, timeout=300)
            subprocess.run([str(tool / "bin" / "python"), "-m", "pip", "install", "-q",
                            "--disable-pip-version-check", f"uv=={UV_VERSION}"], check=True,
                           timeout=900)
            (tool / ".complete").write_text(UV_VERSION)
    return tool / "bin"


def _clean_os_env(env: Path, tracking_uri: str | None) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "MLFLOW_TRACKING_URI", "PYTHONHOME")}
    out["PATH"] = f"{env / 'bin'}{os.pathsep}{out.get('PATH', '')}"
    out["VIRTUAL_ENV"] = str(env)
    out["MLFLOW_DISABLE_TELEMETRY"] = "true"
    if tracking_uri:
        out["MLFLOW_TRACKING_URI"] = tracking_uri
    return out


_PREDICT_IN_CLEAN_ENV = """
import importlib.util, json, sys
import numpy as np, pandas as pd, mlflow.pyfunc
assert importlib.util.find_spec("ticker_registry") is None
out = {}
for name, (uri, inputs) in json.loads(open(sys.argv[1]).read()).items():
    model = mlflow.pyfunc.load_model(uri)
    for kind, split in inputs.items():
        frame = pd.DataFrame(split["data"], columns=split["columns"])
        out[f"{name}/{kind}"] = model.predict(frame).to_dict(orient="split")
assert not [m for m in sys.modules if m.startswith("ticker_registry")]
json.dump(out, open(sys.argv[2], "w"))
"""


def _split(frame: pd.DataFrame) -> dict:
    return {"columns": list(frame.columns), "data": frame.to_numpy(dtype=object).tolist()}


def _from_split(split: dict) -> pd.DataFrame:
    return pd.DataFrame(split["data"], columns=split["columns"])


@pytest.mark.slow
def test_a_clean_environment_loads_every_version_by_alias(store, tmp_path):
    registry, results = store
    env = clean_env()
    window = _window()
    requests = {mt: (f"models:/{registry.model_name(t)}@production",
                     {"features": _split(_features(results[mt])), "trades": _split(window)})
                for mt, t in TICKERS.items()}
    (tmp_path / "in.json").write_text(json.dumps(requests))
    (tmp_path / "predict.py").write_text(_PREDICT_IN_CLEAN_ENV)
    proc = subprocess.run([str(env / "bin" / "python"), "predict.py", "in.json", "out.json"],
                          cwd=tmp_path, env=_clean_os_env(env, registry.tracking_uri),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads((tmp_path / "out.json").read_text())
    for model_type, result in results.items():
        _assert_same(_from_split(out[f"{model_type}/features"]),
                     result.model.predict(result.X_valid.iloc[:8]))
        _assert_same(_from_split(out[f"{model_type}/trades"]), _library_on_trades(result, window))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(port: int, frame: pd.DataFrame | dict) -> tuple[int, dict]:
    split = frame if isinstance(frame, dict) else _split(frame)
    body = json.dumps({"dataframe_split": split}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def serve(env_bin: Path, model_uri: str, os_env: dict[str, str], log: Path,
          deadline_s: float = 120) -> tuple[subprocess.Popen, int]:
    """``mlflow models serve --env-manager local`` on a free loopback port, once /ping answers."""
    port = _free_port()
    sink = open(log, "wb")  # noqa: SIM115  (closed by the caller's stop())
    proc = subprocess.Popen([str(env_bin / "mlflow"), "models", "serve", "-m", model_uri,
                             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
                            env=os_env, stdout=sink, stderr=subprocess.STDOUT, cwd=log.parent,
                            start_new_session=True)
    proc.sink = sink  # type: ignore[attr-defined]
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as resp:
                if resp.status == 200:
                    return proc, port
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise AssertionError(f"mlflow models serve did not answer /ping:\n{log.read_text()[-3000:]}")
        try:
            proc.wait(timeout=0.25)  # the poll interval; returns at once if the server died
        except subprocess.TimeoutExpired:
            pass


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=30)
    proc.sink.close()  # type: ignore[attr-defined]


@pytest.mark.slow
@pytest.mark.parametrize("model_type", list(TICKERS))
def test_mlflow_models_serve_from_the_clean_environment(store, tmp_path, model_type):
    registry, results = store
    result = results[model_type]
    env = clean_env()
    uri = f"models:/{registry.model_name(TICKERS[model_type])}@production"
    proc, port = serve(env / "bin", uri, _clean_os_env(env, registry.tracking_uri),
                       tmp_path / "serve.log")
    try:
        status, body = _post(port, _features(result))
        assert status == 200, body
        _assert_same(pd.DataFrame(body["predictions"]), result.model.predict(result.X_valid.iloc[:8]))
        window = _window(seed=5)
        status, body = _post(port, window)
        assert status == 200, body
        _assert_same(pd.DataFrame(body["predictions"]), _library_on_trades(result, window))
        bad = _split(_features(result, 2))
        bad["data"][1][bad["columns"].index("spread_bps")] = float("nan")
        status, body = _post(port, bad)
        assert status == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE", body
        assert body["message"].splitlines()[-1].startswith(
            "Error: feature 'spread_bps' has NaN or infinite values (row 1: nan)"), body["message"]
        status, body = _post(port, _features(result, 2).drop(columns="last_side"))
        assert status == 400 and body["message"].splitlines()[-1].startswith(
            "Error: feature frame lacks column(s) ['last_side']"), body["message"]
    finally:
        stop(proc)


@pytest.mark.slow
@pytest.mark.parametrize("model_type", list(TICKERS))
def test_mlflow_models_predict_builds_the_version_environment(store, tmp_path, model_type):
    """``--env-manager uv``: a new venv with only the version's requirements (see module doc)."""
    registry, results = store
    result = results[model_type]
    env = clean_env()
    os_env = _clean_os_env(env, registry.tracking_uri)
    os_env["PATH"] = f"{uv_tool()}{os.pathsep}{os_env['PATH']}"
    (tmp_path / "input.json").write_text(json.dumps({"dataframe_split": _split(_features(result))}))
    uri = f"models:/{registry.model_name(TICKERS[model_type])}@production"
    proc = subprocess.run([str(env / "bin" / "mlflow"), "models", "predict", "-m", uri,
                           "--env-manager", "uv", "-i", "input.json", "-o", "out.json",
                           "-t", "json"], cwd=tmp_path, env=os_env, capture_output=True, text=True,
                          timeout=2400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    predictions = json.loads((tmp_path / "out.json").read_text())["predictions"]
    _assert_same(pd.DataFrame(predictions), result.model.predict(result.X_valid.iloc[:8]))

