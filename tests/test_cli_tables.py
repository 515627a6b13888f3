"""CLI tables: rich rendering, number formatting per value, widths, and machine formats left raw.

A real SQLite store (module scope) for the ``status`` check: three tickers with three
versions each, the widest model name (random_forest) and a long ticker name.
"""

from __future__ import annotations

import csv
import io
import json

import click
import pytest
from click.testing import CliRunner

from ticker_registry import SyncTickerModelManager
from ticker_registry.cli import cli
from ticker_registry.cli.output import DEFAULT_TABLE_WIDTH, emit, table_cell

from conftest import QUICK, make_trades

TICKERS = ("ETHUSDT", "BTCUSDT", "1000SHIBUSDT")
ROWS = [
    {"ticker": "ETHUSDT", "version": 3, "n_train": 15850.0, "skill": 0.123456, "staging": None,
     "promoted": True, "reason": "gate: significantly better on impact [skill +0.0123, z=2.41]"},
    {"ticker": "BTCUSDT", "version": 12, "n_train": 123.0, "skill": -0.5, "staging": 2,
     "promoted": False, "reason": ""},
]


def _emit(rows, fmt, **kwargs) -> str:
    @click.command()
    def show() -> None:
        emit(rows, fmt, **kwargs)

    result = CliRunner().invoke(show, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("value, text", [
    (15850.0, "15850"), (15850, "15850"), (123456.7, "123457"), (-20000.0, "-20000"),
    (0.123456, "0.1235"), (1234.5678, "1235"), (1.0, "1"), (0.0, "0"), (1.5e-7, "1.5e-07"),
    (float("nan"), "nan"), (None, ""), ("", ""), (True, "True"), ("M/M/B", "M/M/B"),
])
def test_table_cell_formats_numbers_per_value(value, text):
    assert table_cell(value) == text


def test_table_is_plain_text_with_numbers_right_aligned():
    out = _emit(ROWS, "table")
    lines = out.splitlines()
    assert "\x1b" not in out  # no colour or style codes off a terminal
    assert lines[0].split() == ["ticker", "version", "n_train", "skill", "staging", "promoted",
                                "reason"]
    assert set(lines[1]) <= {"-", " "}  # an ASCII rule under the header
    eth, btc = lines[2], next(line for line in lines if line.startswith("BTCUSDT"))
    assert "15850" in eth and "1.585e" not in out and "0.1235" in eth and "True" in eth
    # Numbers are right-aligned: the versions 3 and 12 end in the same column.
    assert eth.index(" 3 ") + 1 == btc.index("12 ") + 1
    assert " None" not in out and " - " not in btc  # None and "" print empty


def test_a_long_cell_wraps_at_spaces_within_the_width_and_keeps_every_word():
    reason = " ".join(f"word{i:02d}" for i in range(40))
    out = _emit([{"ticker": "ETHUSDT", "reason": reason}], "table")
    assert max(len(line) for line in out.splitlines()) <= DEFAULT_TABLE_WIDTH
    assert len(out.splitlines()) > 3  # wrapped onto several lines
    assert out.split()[:5] == ["ticker", "reason", "-" * 8, "-" * len(out.split()[3]), "ETHUSDT"]
    assert out.split()[5:] == reason.split()  # every word whole, in order


def test_a_table_that_cannot_fit_is_wider_but_cuts_nothing():
    columns = [f"baseline_metric_number_{i}" for i in range(6)]
    out = _emit([{c: 0.5 for c in columns}], "table", columns=columns)
    header = out.splitlines()[0]
    assert len(header) > DEFAULT_TABLE_WIDTH and header.split() == columns


def test_json_and_csv_keep_raw_values():
    data = json.loads(_emit(ROWS, "json"))
    assert data == json.loads(json.dumps(ROWS))
    assert data[0]["n_train"] == 15850.0 and data[0]["skill"] == 0.123456
    rows = list(csv.DictReader(io.StringIO(_emit(ROWS, "csv"))))
    assert rows[0]["n_train"] == "15850.0" and rows[0]["skill"] == "0.123456"
    assert rows[0]["staging"] == "" and rows[1]["promoted"] == "False"
    assert rows[0]["reason"] == ROWS[0]["reason"]


def test_empty_table_says_so():
    assert _emit([], "table") == "(nothing to show)\n"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    models_dir = tmp_path_factory.mktemp("tables") / "store"
    config = {**QUICK, "model_type": "random_forest"}
    productions = {}
    with SyncTickerModelManager(config, models_dir, auto_retrain=False) as manager:
        for seed, ticker in enumerate(TICKERS):
            for round_ in range(3):
                manager.train(ticker, trades=make_trades(1500, seed=10 * seed + round_,
                                                          ticker=ticker))
        for row in manager.status():
            productions[row["ticker"]] = row["production"]
    return {"models_dir": models_dir, "productions": productions}


def test_status_of_three_tickers_with_three_versions_fits_100_columns(store):
    result = CliRunner().invoke(cli, ["--models-dir", str(store["models_dir"]), "status"],
                                env={"MLFLOW_TRACKING_URI": None, "TICKER_REGISTRY_CONFIG": None,
                                     "COLUMNS": None}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 100, result.output
    assert lines[0].split()[:2] == ["ticker", "prod"] and "serves F/I/T" in lines[0]
    assert sorted(store["productions"]) == sorted(TICKERS)
    for ticker, production in store["productions"].items():
        row = next(line for line in lines if line.startswith(ticker + " "))
        # ticker, then its production version, its version count and model type, one line
        cells = row.split()
        assert cells[1] == str(production) and "3" in cells[2:4] and "random_forest" in cells
