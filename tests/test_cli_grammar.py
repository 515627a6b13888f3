"""One grammar: the ticker is an argument, one name per concept, global options anywhere."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ticker_registry import SyncTickerModelManager
from ticker_registry.cli import cli

from conftest import QUICK, make_trades


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("grammar")
    manager = SyncTickerModelManager({**QUICK, "refresh_interval": 0}, root / "store",
                                     auto_retrain=False)
    manager.train("ETHUSDT", trades=make_trades(6000, seed=1))
    manager.close()
    trades = root / "ETHUSDT-trades.csv"
    make_trades(5000, seed=7).to_csv(trades, index=False)
    return {"root": root, "models_dir": str(root / "store"), "trades": str(trades)}


def run(*args: str, expect: int = 0):
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == expect, result.output
    return result


def test_global_options_work_after_the_command_too(store):
    before = run("--models-dir", store["models_dir"], "status", "--format", "json").output
    after = run("status", "--format", "json", "--models-dir", store["models_dir"]).output
    assert json.loads(before) == json.loads(after)
    assert run("versions", "ETHUSDT", f"--models-dir={store['models_dir']}", "-q").output


@pytest.mark.parametrize("command", ["train", "evaluate", "export", "import", "preload",
                                     "cleanup", "run-strategy", "promote", "versions", "history",
                                     "compare", "rollback"])
def test_the_ticker_is_an_argument_in_every_command(command):
    usage = run(command, "--help").output.splitlines()[0]
    assert "TICKER" in usage, usage
    assert "--ticker" not in run(command, "--help").output  # the old spelling is hidden


def test_one_name_per_concept_in_help():
    assert "--alias" in run("promote", "--help").output
    assert "--to " not in run("promote", "--help").output
    export = run("export", "--help").output
    assert "--out-dir" in export and "--dir " not in export
    demo = run("demo", "--help").output
    assert "--workdir" in demo and "--n-trades" in demo and "--trades" not in demo
    assert "may also follow the command" in run("--help").output


def test_the_spellings_before_the_one_grammar_still_work(store, tmp_path):
    base = ["--models-dir", store["models_dir"]]
    bundle = tmp_path / "eth.trbundle"
    run(*base, "export", "--ticker", "ETHUSDT", "--file", str(bundle))
    assert bundle.is_file()
    run(*base, "preload", "--tickers", "ETHUSDT", "--format", "json")
    run(*base, "cleanup", "--ticker", "ETHUSDT", "--dry-run")


def test_new_spellings_do_the_work(store, tmp_path):
    base = ["--models-dir", store["models_dir"]]
    bundle = tmp_path / "eth.trbundle"
    run(*base, "export", "ETHUSDT", "--file", str(bundle))
    imported = json.loads(run(*base, "import", "SOLUSDT", "--file", str(bundle),
                              "--format", "json").output)
    assert imported[0]["ticker"] == "SOLUSDT"
    moved = json.loads(run(*base, "promote", "SOLUSDT", "1", "--alias", "production",
                           "--format", "json").output)
    assert moved[0]["alias"] == "production" and moved[0]["to_version"] == 1
    loaded = json.loads(run(*base, "preload", "ETHUSDT", "SOLUSDT", "--format", "json").output)
    assert [r["ok"] for r in loaded] == [True, True]
    run(*base, "cleanup", "SOLUSDT", "--dry-run")
    run(*base, "export", "--all", "--out-dir", str(tmp_path / "all"))
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == [
        "ETHUSDT-v1.trbundle", "SOLUSDT-v1.trbundle"]


def test_a_trade_file_given_as_a_ticker_is_a_usage_error(store):
    out = run("--models-dir", store["models_dir"], "train", store["trades"], expect=2).output
    assert "is a file; give trade files with --trades FILE" in out


def test_the_command_list_is_never_cut_mid_phrase():
    from ticker_registry.cli import SHORT_HELP

    assert sorted(SHORT_HELP) == sorted(cli.commands)
    listing = CliRunner().invoke(cli, ["--help"], terminal_width=80).output
    assert "..." not in listing.split("Commands:")[1]


@pytest.mark.parametrize("command", [["versions", "NOPEUSDT"], ["history", "NOPEUSDT"],
                                     ["rollback", "NOPEUSDT"]])
def test_an_unknown_ticker_is_our_sentence_not_mlflow_text(store, command):
    out = run("--models-dir", store["models_dir"], *command, expect=1).output
    assert out.startswith("Error: NOPEUSDT is not in the registry at ") and "status" in out
    assert "Registered Model" not in out and len(out.strip().splitlines()) == 1
