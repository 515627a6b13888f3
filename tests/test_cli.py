"""The CLI: CliRunner for every command, real subprocesses for the console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ticker_registry import SyncTickerModelManager
from ticker_registry.cli import cli

from conftest import QUICK, make_trades, registry_snapshot

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "manage_ticker_models.py"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store with ETHUSDT (2 versions), BTCUSDT and ADAUSDT, plus a config file."""
    root = tmp_path_factory.mktemp("cli")
    config = root / "config.yaml"
    import yaml

    config.write_text(yaml.safe_dump({**QUICK, "refresh_interval": 0}))
    manager = SyncTickerModelManager(str(config), root / "store", auto_retrain=False)
    manager.train("ETHUSDT", trades=make_trades(6000, seed=1))
    manager.train("ETHUSDT", trades=make_trades(6000, seed=2))
    manager.train("BTCUSDT", trades=make_trades(6000, seed=3, ticker="BTCUSDT"))
    manager.train("ADAUSDT", trades=make_trades(6000, seed=4, ticker="ADAUSDT"))
    manager.close()
    trades = root / "ETHUSDT-trades.csv"
    make_trades(5000, seed=7).to_csv(trades, index=False)
    return {"root": root, "models_dir": root / "store", "config": config, "trades": trades}


def invoke(store, *args, expect=0):
    runner = CliRunner()
    result = runner.invoke(cli, ["--models-dir", str(store["models_dir"]), "--config",
                                 str(store["config"]), *args], catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result


def snapshot(store):
    manager = SyncTickerModelManager(str(store["config"]), store["models_dir"], auto_retrain=False)
    try:
        return registry_snapshot(manager.registry), manager.samples.snapshot()
    finally:
        manager.close()


def test_help_has_examples():
    runner = CliRunner()
    top = runner.invoke(cli, ["--help"])
    assert top.exit_code == 0 and "Example" in top.output
    for command in cli.commands:
        result = runner.invoke(cli, [command, "--help"])
        assert result.exit_code == 0, command
        assert "ticker-registry" in result.output and "Example" in result.output, command


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and "ticker-registry" in result.output


def test_status_formats(store):
    table = invoke(store, "status").output
    assert "ETHUSDT" in table and "serves F/I/T" in table
    assert max(len(line) for line in table.splitlines()) <= 100  # fits a 100-column terminal
    wide = invoke(store, "status", "--wide").output
    assert "baseline_flow_type_accuracy" in wide and "production" in wide
    rows = json.loads(invoke(store, "status", "--format", "json").stdout)  # the table's rows
    assert {r["ticker"] for r in rows} == {"ETHUSDT", "BTCUSDT", "ADAUSDT"}
    eth = next(r for r in rows if r["ticker"] == "ETHUSDT")
    assert all(isinstance(eth[m], float) for m in (
        "flow_type_accuracy", "impact_mse", "time_to_execution_mse"))
    data = json.loads(invoke(store, "metadata").stdout)  # the seed's shape: `metadata`
    assert set(data) == {"ETHUSDT", "BTCUSDT", "ADAUSDT"}
    assert set(data["ETHUSDT"]["performance_metrics"]) == {
        "flow_type_accuracy", "impact_mse", "time_to_execution_mse"}
    csv_text = invoke(store, "status", "--format", "csv").output
    assert csv_text.splitlines()[0].startswith("ticker,production,staging")
    assert len(csv_text.splitlines()) == 4


def test_metadata_to_file(store, tmp_path):
    out = tmp_path / "model_metadata.json"
    invoke(store, "metadata", "--out", str(out))
    data = json.loads(out.read_text())
    assert data["ETHUSDT"]["training_sessions"] == 2


def test_versions_compare_best(store):
    rows = json.loads(invoke(store, "versions", "ETHUSDT", "--format", "json").stdout)
    assert [r["version"] for r in rows] == [2, 1]
    diff = json.loads(invoke(store, "compare", "ETHUSDT", "1", "2", "--format", "json").stdout)
    assert any(r["metric"] == "impact_mse" for r in diff)
    top = json.loads(invoke(store, "best", "--metric", "impact_mse", "-n", "2", "--format",
                            "json").stdout)
    assert [r["rank"] for r in top] == [1, 2]
    assert "rank" in invoke(store, "best", "--format", "csv").output.splitlines()[0]


def test_promote_and_rollback(store):
    invoke(store, "promote", "ETHUSDT", "1")  # the gate may have put v2 in production
    event = json.loads(invoke(store, "promote", "ETHUSDT", "2", "--reason", "cli test",
                              "--format", "json").stdout)[0]
    assert event["to_version"] == 2 and event["reason"] == "cli test"
    back = json.loads(invoke(store, "rollback", "ETHUSDT", "--format", "json").stdout)[0]
    assert back["to_version"] == 1 and back["action"] == "rollback"


def test_train_from_a_file(store):
    rows = json.loads(invoke(store, "train", "--ticker", "SOLUSDT", "--trades",
                             str(store["trades"]), "--format", "json").stdout)
    assert rows[0]["ticker"] == "SOLUSDT" and rows[0]["version"] == 1
    assert rows[0]["alias"] == "production"


def test_train_many_from_a_directory(store, tmp_path):
    for ticker, seed in (("AAAUSDT", 1), ("BBBUSDT", 2)):
        make_trades(4000, seed=seed, ticker=ticker).to_csv(tmp_path / f"{ticker}-1.csv",
                                                            index=False)
    rows = json.loads(invoke(store, "-q", "train", "--tickers", "AAAUSDT,BBBUSDT", "--trades-dir",
                             str(tmp_path), "--workers", "2", "--format", "json").stdout)
    assert [r["ticker"] for r in rows] == ["AAAUSDT", "BBBUSDT"]
    assert all(r["created"] for r in rows)


WRONG = [
    # (args, exit code, fragment of the one-line message)
    (["versions", "NOPEUSDT"], 1, "NOPEUSDT"),
    (["versions", "../etc"], 1, "looks like a path"),
    (["promote", "ETHUSDT", "99"], 1, "no version 99"),
    (["promote", "ETHUSDT", "abc"], 2, "Invalid value"),
    (["promote", "ETHUSDT", "1", "--to", "canary"], 1, "unknown alias 'canary'"),
    (["promote", "ETHUSDT", "2", "--expect", "7"], 1, "expected 7"),
    (["rollback", "BTCUSDT"], 1, "no earlier production version"),
    (["rollback", "ETHUSDT", "--to-version", "42"], 1, "does not exist"),
    (["compare", "ETHUSDT", "1", "9"], 1, "no version 9"),
    (["best", "--metric", "sharpe"], 1, "no version has metric 'sharpe'"),
    (["best", "-n", "0"], 2, "Invalid value"),
    (["status", "--format", "xml"], 2, "Invalid value"),
    (["train", "--ticker", "ETHUSDT", "--trades", "/nonexistent/trades.csv"], 1,
     "does not exist"),
    (["train", "--ticker", "ETHUSDT"], 2, "give the trades"),
    (["train", "--trades", "x.csv"], 2, "give the TICKER"),
    (["train", "--ticker", "ETHUSDT", "--tickers", "BTCUSDT", "--trades", "x.csv"], 2,
     "one ticker"),
    (["preload"], 2, "give the tickers"),
    (["cleanup", "--keep-last", "0"], 1, "keep_last"),
    (["export", "--ticker", "ETHUSDT"], 2, "--file"),
    (["export", "--all"], 2, "--out-dir"),
    (["import", "--file", "/nonexistent/bundle"], 1, "bundle"),
    (["nosuchcommand"], 2, "No such command"),
]


@pytest.mark.parametrize(("args", "code", "fragment"), WRONG, ids=[" ".join(w[0]) for w in WRONG])
def test_wrong_invocations_fail_cleanly_and_change_nothing(store, args, code, fragment):
    before = snapshot(store)
    runner = CliRunner()
    result = runner.invoke(cli, ["--models-dir", str(store["models_dir"]), "--config",
                                 str(store["config"]), *args])
    assert result.exit_code == code, result.output
    assert fragment in result.output
    assert "Traceback" not in result.output
    if code == 1:
        errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1
    assert snapshot(store) == before


def test_bad_config_file_is_one_line(store, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_type: xgb\n")
    result = CliRunner().invoke(cli, ["--models-dir", str(store["models_dir"]), "--config",
                                      str(bad), "status"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: invalid config value model_type='xgb'")
    assert "bad.yaml" in result.output


def _run(args, cwd, env_extra=None, timeout=240):
    env = {**os.environ, **(env_extra or {})}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _console_script() -> str:
    return str(Path(sys.executable).parent / "ticker-registry")


@pytest.mark.slow
def test_console_script_subprocess_runs(store):
    base = [_console_script(), "--models-dir", str(store["models_dir"]), "--config",
            str(store["config"])]
    for args in (["status"], ["versions", "ETHUSDT"], ["best", "-n", "1"],
                 ["compare", "ETHUSDT", "1", "2"], ["metadata"], ["preload", "ETHUSDT,BTCUSDT"]):
        result = _run([*base, *args], store["root"])
        assert result.returncode == 0, (args, result.stderr)
    bad = _run([*base, "versions", "NOPEUSDT"], store["root"])
    assert bad.returncode == 1 and bad.stderr.startswith("Error: ") and "Traceback" not in bad.stderr
    module = _run([sys.executable, "-m", "ticker_registry", "--version"], store["root"])
    assert module.returncode == 0 and "ticker-registry" in module.stdout


@pytest.mark.slow
def test_every_command_runs_as_a_subprocess(tmp_path):
    """The installed console script, one real process per command, on a fresh store."""
    trades = tmp_path / "ETHUSDT-trades.csv"
    make_trades(5000, seed=7).to_csv(trades, index=False)
    config = tmp_path / "config.yaml"
    config.write_text("\n".join(f"{k}: {v}" for k, v in QUICK.items() if k != "hyperparameters")
                      + "\nhyperparameters: {xgboost: {n_estimators: 20, max_depth: 4}}\n")
    base = [_console_script(), "--models-dir", str(tmp_path / "store"), "--config", str(config)]
    bundle = tmp_path / "eth.trbundle"
    steps = [
        ["train", "ETHUSDT", "--trades", str(trades)],
        ["train", "BTCUSDT", "--trades", str(trades)],
        ["status", "--format", "csv"], ["metadata"], ["versions", "ETHUSDT"],
        ["best", "-n", "2"], ["export", "ETHUSDT", "--file", str(bundle)],
        ["import", "SOLUSDT", "--file", str(bundle)], ["history", "SOLUSDT"],
        ["compare", "SOLUSDT", "1", "1"], ["promote", "SOLUSDT", "1", "--alias", "staging"],
        ["promote", "SOLUSDT", "1"], ["export", "--all", "--out-dir", str(tmp_path / "backup")],
        ["preload", "ETHUSDT", "BTCUSDT"], ["cleanup", "--dry-run"], ["doctor"],
        ["report", "--out", str(tmp_path / "report.html")], ["ui", "--help"],
    ]
    for args in steps:
        result = _run([*base, *args], tmp_path)
        assert result.returncode == 0, (args, result.stderr[-2000:])
    assert (tmp_path / "report.html").stat().st_size > 10_000
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == [
        "BTCUSDT-v1.trbundle", "ETHUSDT-v1.trbundle", "SOLUSDT-v1.trbundle"]
    rolled = _run([*base, "rollback", "SOLUSDT"], tmp_path)
    assert rolled.returncode == 1 and rolled.stderr.startswith("Error: ")


@pytest.mark.slow
def test_seed_script_invocations(store, tmp_path):
    common = ["--models-dir", str(store["models_dir"]), "--config", str(store["config"])]
    py = [sys.executable, str(SCRIPT)]
    status = _run([*py, "--action", "status", *common], tmp_path)
    assert status.returncode == 0, status.stderr
    assert "ETHUSDT" in json.loads(status.stdout)
    exported = _run([*py, "--action", "export", "--ticker", "ETHUSDT", "--file",
                     "ethusdt_model_backup.pkl", *common], tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "ethusdt_model_backup.pkl").is_file()
    imported = _run([*py, "--action", "import", "--file", "ethusdt_model_backup.pkl", *common],
                    tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert "ETHUSDT version" in imported.stdout
    preload = _run([*py, "--action", "preload", "--tickers", "ETHUSDT", "BTCUSDT", "ADAUSDT",
                    *common], tmp_path)
    assert preload.returncode == 0, preload.stderr
    assert preload.stdout.count(" ok") == 3
    cleanup = _run([*py, "--action", "cleanup", "--days", "30", *common], tmp_path)
    assert cleanup.returncode == 0, cleanup.stderr
    missing = _run([*py, "--action", "import", "--file", "missing.pkl", *common], tmp_path)
    assert missing.returncode == 1 and missing.stderr.startswith("Error: ")
    unwritable = _run([*py, "--action", "export", "--ticker", "ETHUSDT", "--file",
                       str(tmp_path / "ethusdt_model_backup.pkl" / "x.pkl"), *common], tmp_path)
    assert unwritable.returncode == 1 and unwritable.stderr.startswith("Error: ")
    assert "Traceback" not in unwritable.stderr and len(unwritable.stderr.splitlines()) == 1


@pytest.mark.slow
def test_demo_twice_in_a_fresh_directory(tmp_path):
    for _ in (1, 2):
        result = _run([_console_script(), "demo", "--dir", str(tmp_path), "--trades", "4000"],
                      tmp_path)
        assert result.returncode == 0, result.stderr
        assert "Demo finished" in result.stdout
        for ticker in ("ETHUSDT", "BTCUSDT", "ADAUSDT"):
            assert ticker in result.stdout
    manager = SyncTickerModelManager(None, tmp_path / "mlruns", auto_retrain=False)
    assert all(r["versions"] == 4 for r in manager.status())
    manager.close()


@pytest.mark.slow
def test_run_strategy_command(tmp_path):
    config = tmp_path / "strategy.yaml"
    config.write_text("symbol: XRPETH\nmin_training_samples: 500\nretrain_interval: 100000\n")
    trades = tmp_path / "XRPETH-trades.csv"
    make_trades(3000, seed=5, ticker="XRPETH").to_csv(trades, index=False)
    result = _run([_console_script(), "--models-dir", str(tmp_path / "store"), "--config",
                   str(config), "run-strategy", "--trades", str(trades), "--format", "json"],
                  tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)[0]
    assert summary["events"] == 3000 and summary["production_version"] == 1


def test_evaluate_prints_the_walk_forward_table_and_writes_nothing(store, tmp_path):
    empty = tmp_path / "nothing-here"
    runner = CliRunner()
    args = ["--models-dir", str(empty), "--config", str(store["config"]), "evaluate", "--ticker",
            "ethusdt", "--trades", str(store["trades"])]
    table = runner.invoke(cli, args, catch_exceptions=False)
    assert table.exit_code == 0, table.output
    for head in ("flow_type", "impact", "time_to_execution"):
        assert head in table.output
    assert "purged folds" in table.output and "skill_95" in table.output
    result = runner.invoke(cli, [*args, "--format", "json"], catch_exceptions=False)
    rows = json.loads(result.output)
    assert [r["head"] for r in rows] == ["flow_type", "impact", "time_to_execution"]
    assert {r["ticker"] for r in rows} == {"ETHUSDT"}
    for row in rows:
        assert row["serves"] == "model" or row["serves"].startswith("baseline")
        assert len(row["fold_skill"]) == (5 if row["evaluable"] else 0)
    assert not empty.exists()  # nothing registered, no store created


@pytest.mark.parametrize("command", [["status"], ["best"], ["versions", "ETHUSDT"],
                                     ["history", "ETHUSDT"], ["metadata"],
                                     ["compare", "ETHUSDT", "1", "2"], ["doctor"],
                                     ["report", "--out", "r.html"],
                                     ["export", "--all", "--out-dir", "b"],
                                     ["export", "ETHUSDT", "--file", "e.trbundle"],
                                     ["cleanup", "--dry-run"], ["preload", "ETHUSDT"]])
def test_read_commands_on_an_empty_folder_leave_it_empty(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: no model store at sqlite:///"), result.output
    assert "ticker-registry train" in result.output and len(result.output.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_doctor_says_healthy_and_dry_run_names_the_flag(store):
    result = invoke(store, "doctor")
    assert result.output.strip() == \
        "healthy: no problem found in the registry, the artifacts or the sample store"
    plan = invoke(store, "cleanup", "--dry-run", "--days", "0", "--keep-last", "1")
    assert "without --dry-run" in plan.output and "without dry_run " not in plan.output


@pytest.mark.parametrize("content, word", [(b"", "empty"), (b"garbage " * 100, "not an SQLite")])
def test_read_commands_refuse_a_damaged_store_in_one_line(tmp_path, monkeypatch, content, word):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlruns").mkdir()
    (tmp_path / "mlruns" / "mlflow.db").write_bytes(content)
    for command in (["status"], ["doctor"]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 1 and len(result.output.splitlines()) == 1, result.output
        assert "is damaged" in result.output and word in result.output
        assert "restore it from a backup" in result.output
    assert (tmp_path / "mlruns" / "mlflow.db").read_bytes() == content
    assert sorted(p.name for p in (tmp_path / "mlruns").iterdir()) == ["mlflow.db"]


def test_trades_dir_matches_whole_ticker_names(tmp_path):
    from ticker_registry.cli.models import _names_ticker

    assert _names_ticker("BTCUSDT-trades-2024-08-08.csv", "BTCUSDT")
    assert _names_ticker("btcusdt.csv", "BTCUSDT")
    assert not _names_ticker("BTCUSDT-trades.csv", "BTC")
    assert not _names_ticker("ETHUSDTX.csv", "ETHUSDT")
