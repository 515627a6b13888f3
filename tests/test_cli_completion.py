"""Shell completion: click's scripts, and TICKER arguments completed from the store (reading only)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.shell_completion import ShellComplete

from ticker_registry.cli import cli
from ticker_registry.cli.completion import complete_tickers

from conftest import new_store, register_training


@pytest.fixture(autouse=True)
def _generous_deadline(monkeypatch):
    """What is offered is under test, not how fast: a loaded CI host may take seconds."""
    monkeypatch.setenv("TICKER_REGISTRY_COMPLETION_DEADLINE", "300")


@pytest.fixture
def store(tmp_path, quick_config, empty_store_db, trained):
    registry = new_store(tmp_path / "store", empty_store_db, quick_config)
    register_training(registry, trained[0], "ETHUSDT", gate=False)
    register_training(registry, trained[1], "BTCUSDT", gate=False)
    return tmp_path / "store"


def complete(args: list[str], incomplete: str) -> list[str]:
    """What bash would offer after ``ticker-registry ARGS INCOMPLETE<Tab>``, in-process."""
    completion = ShellComplete(cli, {}, "ticker-registry", "_TICKER_REGISTRY_COMPLETE")
    return [item.value for item in completion.get_completions(args, incomplete)]


def test_tickers_complete_from_the_store_of_the_global_options(store):
    assert complete(["--models-dir", str(store), "versions"], "ET") == ["ETHUSDT"]
    assert complete(["--models-dir", str(store), "versions"], "et") == ["ETHUSDT"]
    # the global options may follow the command, as when running it
    assert complete(["promote", "--models-dir", str(store)], "") == ["BTCUSDT", "ETHUSDT"]
    # a many-valued TICKER argument does not offer what was already typed
    assert complete(["--models-dir", str(store), "train", "ETHUSDT"], "") == ["BTCUSDT"]


@pytest.mark.parametrize("args", [["export"], ["import"], ["preload"], ["cleanup"],
                                  ["evaluate"], ["run-strategy"], ["history"], ["rollback"],
                                  ["compare"]])
def test_every_ticker_argument_completes(store, args):
    assert complete(["--models-dir", str(store), *args], "E") == ["ETHUSDT"]


def test_the_completion_function_on_its_own(store):
    ctx = cli.make_context("ticker-registry", ["--models-dir", str(store), "status"],
                           resilient_parsing=True)
    param = next(p for p in cli.commands["versions"].params if p.name == "ticker")
    assert [item.value for item in complete_tickers(ctx, param, "ET")] == ["ETHUSDT"]


def test_no_store_offers_nothing_and_creates_nothing(tmp_path):
    assert complete(["--models-dir", str(tmp_path / "none"), "versions"], "") == []
    assert list(tmp_path.iterdir()) == []
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "mlflow.db").write_bytes(b"")  # MLflow would create its tables in it
    assert complete(["--models-dir", str(empty), "versions"], "") == []
    assert [p.name for p in empty.iterdir()] == ["mlflow.db"]
    assert (empty / "mlflow.db").stat().st_size == 0


def test_an_unreachable_server_offers_nothing(tmp_path):
    assert complete(["--tracking-uri", "http://127.0.0.1:9", "versions"], "") == []


@pytest.mark.parametrize("shell, marker", [("bash", "complete -o nosort -F"),
                                           ("zsh", "#compdef ticker-registry"),
                                           ("fish", "complete --no-files --command ticker-registry")])
def test_click_prints_the_completion_script(shell, marker):
    env = {**os.environ, "_TICKER_REGISTRY_COMPLETE": f"{shell}_source"}
    code = "from ticker_registry.cli import main; main()"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, check=True)
    assert marker in out.stdout and out.stderr == ""


def test_completing_in_a_shell_prints_tickers_only(store):
    # the deadline is generous here: the test is about what is printed, not how fast, and
    # a loaded CI host may take seconds to import the registry client
    env = {**os.environ, "_TICKER_REGISTRY_COMPLETE": "bash_complete",
           "COMP_WORDS": f"ticker-registry --models-dir {store} versions BT", "COMP_CWORD": "4",
           "TICKER_REGISTRY_COMPLETION_DEADLINE": "300"}
    code = "from ticker_registry.cli import main; main()"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.stdout.split() == ["plain,BTCUSDT"] and out.stderr == ""
