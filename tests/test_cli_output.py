"""CLI output: one JSON Schema per command, real output validated against it, the generated
docs, and a snapshot of the ``status`` table.

Every command that prints rows is run on a real store with ``--format json`` and
``--format ndjson``; the array and each line are validated against the command's schema
(``ticker_registry/cli/schemas/<command>.json``), and CSV's header is the schema's keys.
``TR_UPDATE_SNAPSHOTS=1`` rewrites the status snapshot and docs/cli-output.md.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from ticker_registry import SyncTickerModelManager
from ticker_registry.cli import cli
from ticker_registry.cli.schemas import columns, commands, markdown, schema

from conftest import QUICK, make_trades

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "cli-output.md"
SNAPSHOT = Path(__file__).resolve().parent / "snapshots" / "status_3_tickers.txt"
UPDATE = os.environ.get("TR_UPDATE_SNAPSHOTS") == "1"
#: Variables of the caller's shell that would change what the CLI reads or how wide it draws.
CLEAN_ENV = {"MLFLOW_TRACKING_URI": None, "TICKER_REGISTRY_CONFIG": None,
             "TICKER_REGISTRY_MODELS_DIR": None, "COLUMNS": "100"}


def run(*args: str, expect: int = 0):
    result = CliRunner().invoke(cli, list(args), env=CLEAN_ENV, catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result


def check(command: str, stdout: str, fmt: str) -> list[dict]:
    """Validate ``stdout`` of ``command`` in ``fmt`` (json or ndjson); return its rows."""
    if fmt == "json":
        rows = json.loads(stdout)
        jsonschema.validate(rows, schema(command))
    else:
        lines = stdout.splitlines()
        rows = [json.loads(line) for line in lines]
        for row in rows:
            jsonschema.validate(row, schema(command)["items"])
    for row in rows:
        assert list(row) == columns(command)  # the schema's keys, in its order
    return rows


def formats(command: str, *args: str, expect: int = 0, csv_too: bool = True) -> list[dict]:
    """Run ``args`` as JSON (then NDJSON and CSV when ``csv_too``), check each, return JSON's rows."""
    rows = check(command, run(*args, "--format", "json", expect=expect).stdout, "json")
    if csv_too:
        lines = check(command, run(*args, "--format", "ndjson", expect=expect).stdout, "ndjson")
        header = next(csv.reader(io.StringIO(run(*args, "--format", "csv", expect=expect).stdout)))
        assert header == columns(command)
        assert [list(r) for r in lines] == [list(r) for r in rows]
    return rows


# --------------------------------------------------------------------------- the schemas
@pytest.mark.parametrize("command", commands())
def test_each_schema_is_an_array_of_rows_with_fixed_keys(command):
    doc = schema(command)
    jsonschema.Draft202012Validator.check_schema(doc)
    items = doc["items"]
    assert doc["type"] == "array" and items["type"] == "object" and doc["description"]
    assert items["additionalProperties"] is False
    assert items["required"] == list(items["properties"])  # every key, always present
    assert all(spec.get("description") for spec in items["properties"].values())


def test_every_command_with_a_format_option_has_a_schema():
    with_format = sorted(name for name, command in cli.commands.items()
                         if any(p.name == "fmt" for p in command.params))
    assert with_format == commands()
    for name in with_format:
        option = next(p for p in cli.commands[name].params if p.name == "fmt")
        assert list(option.type.choices) == ["table", "json", "csv", "ndjson"]


def test_the_docs_are_generated_from_the_schemas():
    if UPDATE:
        DOC.write_text(markdown() + "\n")
    assert DOC.read_text() == markdown() + "\n", (
        "docs/cli-output.md is out of date: rerun with TR_UPDATE_SNAPSHOTS=1")
    for command in commands():
        assert f"\n## {command}\n" in DOC.read_text()


# --------------------------------------------------------------------------- real output
@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """ETHUSDT (2 versions) and BTCUSDT, a config file and a trade file."""
    import yaml

    root = tmp_path_factory.mktemp("output")
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({**QUICK, "refresh_interval": 0}))
    with SyncTickerModelManager(str(config), root / "store", auto_retrain=False) as manager:
        manager.train("ETHUSDT", trades=make_trades(6000, seed=1))
        manager.train("ETHUSDT", trades=make_trades(6000, seed=2))
        manager.train("BTCUSDT", trades=make_trades(6000, seed=3, ticker="BTCUSDT"))
    trades = root / "SOLUSDT-trades.csv"
    make_trades(5000, seed=7, ticker="SOLUSDT").to_csv(trades, index=False)
    base = ["--models-dir", str(root / "store"), "--config", str(config)]
    return {"root": root, "base": base, "trades": str(trades)}


def test_read_commands(store):
    base = store["base"]
    status = formats("status", *base, "status")
    assert {"BTCUSDT", "ETHUSDT"} <= {r["ticker"] for r in status}
    assert all(isinstance(r["flow_type_accuracy"], float) for r in status)
    wide = run(*base, "status", "--wide").output.splitlines()[0].split()
    assert wide == columns("status")  # --wide: the same columns as the machine formats
    versions = formats("versions", *base, "versions", "ETHUSDT")
    assert [r["version"] for r in versions] == [2, 1]
    assert any("production" in r["aliases"] for r in versions)  # a list, not a joined string
    assert versions[-1]["moves"] and all(isinstance(m, str) for m in versions[-1]["moves"])
    history = formats("history", *base, "history", "ETHUSDT")
    assert history and history[0]["seq"] == 1
    for v1, v2 in ((1, 2), (2, 1), (2, 2)):  # the keys whatever the versions
        rows = formats("compare", *base, "compare", "ETHUSDT", str(v1), str(v2))
        impact = next(r for r in rows if r["metric"] == "impact_mse")
        assert impact["v1"] is not None and impact["v2"] is not None
    same = formats("compare", *base, "compare", "ETHUSDT", "2", "1")
    other = formats("compare", *base, "compare", "ETHUSDT", "1", "2")
    assert [(r["v1"], r["v2"]) for r in same if r["metric"] == "impact_mse"] == [
        (r["v2"], r["v1"]) for r in other if r["metric"] == "impact_mse"]
    best = formats("best", *base, "best", "--metric", "impact_mse")
    assert [r["rank"] for r in best] == list(range(1, len(best) + 1))
    assert len(best) >= 2 and best[0]["metric"] == "impact_mse"
    preload = formats("preload", *base, "preload", "ETHUSDT", "BTCUSDT")
    assert [r["ok"] for r in preload] == [True, True]
    cleanup = formats("cleanup", *base, "cleanup", "ETHUSDT", "--days", "0", "--keep-last",
                      "1", "--dry-run")
    assert sorted((r["ticker"], r["version"]) for r in cleanup) == [  # every version, once
        ("ETHUSDT", 1), ("ETHUSDT", 2)]
    assert formats("doctor", *base, "doctor") == []


def test_ndjson_lines_are_the_json_array(store):
    base = store["base"]
    for args in (["status"], ["versions", "ETHUSDT"], ["compare", "ETHUSDT", "1", "2"]):
        array = json.loads(run(*base, *args, "--format", "json").stdout)
        lines = run(*base, *args, "--format", "ndjson").stdout.splitlines()
        assert [json.loads(line) for line in lines] == array
        assert len(lines) == len(array) and all(line.startswith("{") for line in lines)


def test_alias_moves(store):
    base = store["base"]
    moved = formats("promote", *base, "promote", "ETHUSDT", "1", "--reason", "schema test",
                    csv_too=False)
    assert moved[0]["to_version"] == 1 and moved[0]["reason"] == "schema test"
    line = check("promote", run(*base, "promote", "ETHUSDT", "2", "--format", "ndjson").stdout,
                 "ndjson")
    assert line[0]["to_version"] == 2
    back = formats("rollback", *base, "rollback", "ETHUSDT", csv_too=False)
    assert back[0]["action"] == "rollback" and back[0]["to_version"] == 1
    run(*base, "promote", "ETHUSDT", "2")
    line = check("rollback", run(*base, "rollback", "ETHUSDT", "--format", "ndjson").stdout,
                 "ndjson")
    assert line[0]["to_version"] == 1


def test_bundles(store, tmp_path):
    base = store["base"]
    bundle = tmp_path / "eth.trbundle"
    one = formats("export", *base, "export", "ETHUSDT", "--file", str(bundle), csv_too=False)
    assert one[0]["members"] > 0 and one[0]["ok"] and one[0]["file"] == str(bundle)
    every = formats("export", *base, "export", "--all", "--out-dir", str(tmp_path / "all"))
    assert {r["status"] for r in every} == {"exported"} and every[0]["members"] is None
    imported = formats("import", *base, "import", "XRPETH", "--file", str(bundle),
                       csv_too=False)
    assert imported[0]["aliases"] == ["staging"] and imported[0]["created"]
    again = check("import", run(*base, "import", "XRPETH", "--file", str(bundle), "--format",
                                "ndjson").stdout, "ndjson")
    assert again[0]["version"] == imported[0]["version"] and not again[0]["created"]


def test_train_and_evaluate(store):
    base = store["base"]
    trained = formats("train", *base, "-q", "train", "SOLUSDT", "--trades", store["trades"],
                      csv_too=False)
    assert trained[0]["created"] and trained[0]["alias"] == "production"
    assert isinstance(trained[0]["skill_impact"], float)
    again = check("train", run(*base, "-q", "train", "SOLUSDT", "--trades", store["trades"],
                               "--format", "ndjson").stdout, "ndjson")
    assert not again[0]["created"] and again[0]["reason"] == "already registered"
    rows = formats("evaluate", *base, "-q", "evaluate", "SOLUSDT", "--trades", store["trades"],
                   csv_too=False)
    assert [r["head"] for r in rows] == ["flow_type", "impact", "time_to_execution"]
    assert rows[0]["baseline_prior"] is not None and rows[0]["baseline_zero"] is None
    assert rows[1]["baseline_zero"] is not None and rows[0]["accuracy_model"] is not None
    assert all(isinstance(x, float) for r in rows for x in r["fold_skill"])


def test_doctor_findings(tmp_path):
    folder = tmp_path / "store"
    folder.mkdir()
    (folder / "mlflow.db").write_bytes(b"not a database at all")
    for fmt in ("json", "ndjson"):
        result = CliRunner().invoke(cli, ["--models-dir", str(folder), "doctor", "--repair",
                                          "--format", fmt], env=CLEAN_ENV)
        assert result.exit_code == 1, result.output
        rows = check("doctor", result.stdout, fmt)
        assert [r["kind"] for r in rows] == ["store_damaged"]


@pytest.mark.slow
def test_run_strategy(tmp_path):
    config = tmp_path / "strategy.yaml"
    config.write_text("symbol: XRPETH\nmin_training_samples: 500\nretrain_interval: 100000\n"
                      "hyperparameters: {xgboost: {n_estimators: 20, max_depth: 4}}\n")
    trades = tmp_path / "XRPETH-trades.csv"
    make_trades(2000, seed=5, ticker="XRPETH").to_csv(trades, index=False)
    base = ["--models-dir", str(tmp_path / "store"), "--config", str(config), "-q",
            "run-strategy", "--trades", str(trades)]
    rows = check("run-strategy", run(*base, "--format", "json").stdout, "json")
    assert rows[0]["events"] == 2000 and rows[0]["versions_trained"] == [1]
    line = check("run-strategy", run(*base, "--format", "ndjson").stdout, "ndjson")
    assert line[0]["events"] == 2000 and line[0]["production_version"] == 1


# --------------------------------------------------------------------------- snapshot
#: Time-dependent cells: ISO timestamps, and the table's "YYYY-MM-DD HH:MM".
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?")
_MINUTE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}")


def mask_times(text: str) -> str:
    return _MINUTE.sub("YYYY-MM-DD HH:MM", _ISO.sub("<timestamp>", text))


@pytest.fixture(scope="module")
def three_tickers(tmp_path_factory):
    """Three tickers, two versions of ETHUSDT: seeded trades, QUICK config (xgboost, seeded)."""
    folder = tmp_path_factory.mktemp("snapshot") / "store"
    with SyncTickerModelManager({**QUICK, "refresh_interval": 0}, folder,
                                auto_retrain=False) as manager:
        for seed, ticker in enumerate(("ETHUSDT", "BTCUSDT", "ADAUSDT", "ETHUSDT"), 1):
            manager.train(ticker, trades=make_trades(4000, seed=seed, ticker=ticker))
    return folder


def test_status_snapshot_at_100_columns(three_tickers):
    out = run("--models-dir", str(three_tickers), "status").output
    assert all(len(line) <= 100 for line in out.splitlines()), out
    masked = mask_times(out)
    if UPDATE or not SNAPSHOT.exists():
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(masked)
        if not UPDATE:
            pytest.fail(f"wrote the first snapshot {SNAPSHOT.name}; check it and commit it")
    assert masked == SNAPSHOT.read_text(), (
        f"status differs from {SNAPSHOT}; if the change is intended, rerun with "
        "TR_UPDATE_SNAPSHOTS=1")
