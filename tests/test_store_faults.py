"""Read commands on a damaged embedded store: one line naming the file and the fix, never an
empty store, nothing written (real SQLite files damaged on purpose)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from ticker_registry import SyncTickerModelManager
from ticker_registry.cli import cli
from ticker_registry.doctor import sqlite_store_problem

from conftest import QUICK, make_trades

READ_COMMANDS = [["status"], ["versions", "ETHUSDT"], ["doctor"]]


@pytest.fixture(scope="module")
def good_db(tmp_path_factory) -> Path:
    """The mlflow.db of a store holding ETHUSDT v1 in production."""
    root = tmp_path_factory.mktemp("faults")
    manager = SyncTickerModelManager({**QUICK, "refresh_interval": 0}, root / "store",
                                     auto_retrain=False)
    manager.train("ETHUSDT", trades=make_trades(5000, seed=1))
    manager.close()
    return root / "store" / "mlflow.db"


def garble_pages(db: Path, first: int, count: int = 4) -> None:
    """Overwrite ``count`` pages from page ``first`` (1-based) with bytes that are no b-tree."""
    data = bytearray(db.read_bytes())
    size = int.from_bytes(data[16:18], "big")
    size = 65536 if size == 1 else size
    assert len(data) // size >= first + count - 1, "the store has fewer pages than that"
    for page in range(first, first + count):
        offset = (page - 1) * size
        data[offset:offset + size] = bytes((i * 37 + page) % 251 for i in range(size))
    db.write_bytes(bytes(data))


def last_pages(db: Path) -> int:
    size = int.from_bytes(db.read_bytes()[16:18], "big")
    return db.stat().st_size // size - 3


def foreign_database(db: Path) -> None:
    """An SQLite database with a schema, but not MLflow's (no registered_models)."""
    connection = sqlite3.connect(db)
    with connection:
        connection.execute("CREATE TABLE samples (id INTEGER PRIMARY KEY, ticker TEXT)")
        connection.execute("INSERT INTO samples (ticker) VALUES ('ETHUSDT')")
    connection.close()


def _damage(kind: str, db: Path, good: Path) -> str:
    """Damage ``db`` as ``kind`` says; returns the words the message must contain."""
    if kind == "zero_bytes":
        db.write_bytes(b"")
        return "mlflow.db is empty (0 bytes)"
    if kind == "garbage_pages":
        shutil.copy(good, db)
        garble_pages(db, last_pages(db))
        return "mlflow.db is corrupt"
    foreign_database(db)
    return "without MLflow's registry tables (registered_models)"


@pytest.mark.parametrize("kind", ["zero_bytes", "garbage_pages", "no_registry_tables"])
def test_read_commands_refuse_a_damaged_store(tmp_path, good_db, kind):
    folder = tmp_path / "store"
    folder.mkdir()
    db = folder / "mlflow.db"
    words = _damage(kind, db, good_db)
    content = db.read_bytes()
    for command in READ_COMMANDS:
        result = CliRunner().invoke(cli, ["--models-dir", str(folder), *command])
        assert result.exit_code == 1, (command, result.output)
        assert len(result.output.splitlines()) == 1, (command, result.output)
        line = result.output
        assert line.startswith(f"Error: the model store sqlite:///{db} is damaged: "), line
        assert words in line and "restore it from a backup" in line, line
        assert "ETHUSDT" not in line and "nothing to show" not in line
    assert db.read_bytes() == content  # MLflow created no tables in it, nothing was written
    assert sorted(p.name for p in folder.iterdir()) == ["mlflow.db"]


def test_the_good_store_reads(tmp_path, good_db):
    folder = tmp_path / "store"
    folder.mkdir()
    shutil.copy(good_db, folder / "mlflow.db")
    assert sqlite_store_problem(folder / "mlflow.db") == ""
    result = CliRunner().invoke(cli, ["--models-dir", str(folder), "status", "--format", "json"])
    assert result.exit_code == 0 and "ETHUSDT" in result.output, result.output


def test_garbage_pages_fail_both_checks(tmp_path, good_db):
    db = tmp_path / "mlflow.db"
    shutil.copy(good_db, db)
    garble_pages(db, last_pages(db))
    connection = sqlite3.connect(db)
    try:
        verdict = [row[0] for row in connection.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as exc:  # malformed before it can list the pages
        verdict = [str(exc)]
    finally:
        connection.close()
    assert verdict != ["ok"]
    for thorough in (False, True):
        problem = sqlite_store_problem(db, thorough=thorough)
        assert problem.startswith("mlflow.db is corrupt (SQLite") and "\n" not in problem


def test_doctor_repair_changes_nothing_in_a_damaged_store(tmp_path, good_db):
    folder = tmp_path / "store"
    folder.mkdir()
    db = folder / "mlflow.db"
    _damage("garbage_pages", db, good_db)
    content = db.read_bytes()
    result = CliRunner().invoke(cli, ["--models-dir", str(folder), "doctor", "--repair",
                                      "--format", "json"])
    assert result.exit_code == 1, result.output
    assert '"kind": "store_damaged"' in result.output
    assert result.output.splitlines()[-1] == (
        "Error: the model store is damaged (see above): restore it from a backup; doctor "
        "repairs nothing in a damaged store")
    assert db.read_bytes() == content
