"""The isolated check child: reused across imports, replaced after a crash, a timeout or a
refusal, isolated and lean, and never left behind."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ticker_registry import FEATURE_NAMES, BundleError
from ticker_registry.bundle import checker, export_bundle, import_bundle
from ticker_registry.bundle.checker import CheckWorker, shared_worker

from conftest import new_store, register_training

linux_only = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, trained, empty_store_db):
    """A good model directory (ETHUSDT v1's native files) and its zero-row prediction."""
    registry = new_store(tmp_path_factory.mktemp("checker") / "store", empty_store_db)
    info = register_training(registry, trained[0], gate=False)[0]
    folder = tmp_path_factory.mktemp("checker-model") / "model"
    shutil.copytree(registry.download_native(info), folder)
    expected = registry.load_model("ETHUSDT", info.version).predict_matrix(
        np.zeros((1, len(FEATURE_NAMES))))[0]
    return folder, list(expected)


@pytest.fixture
def worker():
    own = CheckWorker()
    yield own
    own.close()


@pytest.fixture
def hanging_dir(tmp_path):
    """A model directory whose model.json is a FIFO nobody writes: opening it never returns."""
    folder = tmp_path / "hangs"
    folder.mkdir()
    os.mkfifo(folder / "model.json")
    return folder


def _gone(pid: int) -> bool:
    """The process has exited (reaped, or a zombie of a parent that does not reap)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _until(condition, what: str, limit: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail after ``limit`` seconds (a bound, not a timing)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {limit:.0f} s"
        threading.Event().wait(0.02)


def test_the_child_starts_on_first_use_and_serves_later_checks(worker, model_dir):
    folder, expected = model_dir
    assert worker.pid is None  # nothing starts before it is needed
    assert worker.check(folder) == pytest.approx(expected, rel=1e-12)
    first = worker.pid
    assert first is not None and first != os.getpid()
    assert worker.check(folder) == pytest.approx(expected, rel=1e-12)
    assert worker.pid == first


def test_two_imports_share_one_child(source_bundles, tmp_path, empty_store_db):
    target = new_store(tmp_path / "target", empty_store_db)
    first = import_bundle(target, source_bundles[0], as_ticker="AAAUSDT")
    pid = shared_worker().pid
    second = import_bundle(target, source_bundles[1], as_ticker="BBBUSDT")
    assert first.created and second.created
    assert pid is not None and shared_worker().pid == pid


@pytest.fixture(scope="module")
def source_bundles(tmp_path_factory, trained, empty_store_db):
    """Two bundles never imported in this process (so neither skips the test load)."""
    root = tmp_path_factory.mktemp("checker-source")
    registry = new_store(root / "store", empty_store_db)
    paths = []
    for result in trained[:2]:
        info = register_training(registry, result, gate=False)[0]
        path = root / f"ETHUSDT-v{info.version}.trbundle"
        export_bundle(registry, "ETHUSDT", path, info.version)
        paths.append(path)
    return paths


def _blocked_check(worker: CheckWorker, hanging_dir: Path):
    """Start a check of ``hanging_dir`` in a thread; return once the child is inside it
    (it has opened the FIFO). Returns the thread, its outcome list and the FIFO's writer."""
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            worker.check(hanging_dir, label="bundle 'x.trbundle'")
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    writer: list[int] = []

    def child_reads_the_fifo() -> bool:  # a writer can open a FIFO only once a reader has
        try:
            writer.append(os.open(hanging_dir / "model.json", os.O_WRONLY | os.O_NONBLOCK))
            return True
        except OSError as exc:
            assert exc.errno == errno.ENXIO
            return False

    _until(child_reads_the_fifo, "the child opening model.json")
    return thread, outcome, writer[0]


def _crash_message(sig: str) -> str:
    return (f"bundle 'x.trbundle' is refused: the isolated test load of its models crashed "
            f"({sig}); a crafted or damaged tree file can do this")


@linux_only
def test_a_crash_mid_check_is_reported_and_the_next_check_gets_a_fresh_child(
        worker, model_dir, hanging_dir):
    folder, expected = model_dir
    worker.check(folder)
    first = worker.pid
    thread, outcome, writer = _blocked_check(worker, hanging_dir)
    os.kill(first, signal.SIGSEGV)  # the child is now inside the check
    thread.join()
    os.close(writer)
    assert len(outcome) == 1 and isinstance(outcome[0], BundleError)
    assert str(outcome[0]) == _crash_message("SIGSEGV")
    assert worker.pid is None
    assert worker.check(folder) == pytest.approx(expected, rel=1e-12)
    assert worker.pid not in (None, first)


@linux_only
def test_close_does_not_wait_for_a_check_in_another_thread(worker, hanging_dir):
    thread, outcome, writer = _blocked_check(worker, hanging_dir)
    pid = worker.pid
    worker.close()  # as at interpreter exit, with a daemon thread still checking
    thread.join()
    os.close(writer)
    assert [str(e) for e in outcome] == [_crash_message("SIGKILL")]
    assert _gone(pid)


def test_a_timeout_kills_the_child(worker, model_dir, hanging_dir):
    folder, expected = model_dir
    worker.check(folder)
    first = worker.pid
    with pytest.raises(BundleError, match=r"^model directory is refused: loading its models did "
                                          r"not finish within 1 s in the isolated test load$"):
        worker.check(hanging_dir, timeout=1.0)
    assert worker.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)  # killed and reaped
    assert worker.check(folder) == pytest.approx(expected, rel=1e-12)
    assert worker.pid not in (None, first)


def test_a_refusal_ends_the_child_that_saw_it(worker, model_dir, tmp_path):
    folder, _ = model_dir
    worker.check(folder)
    first = worker.pid
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.json").write_text("{}")
    with pytest.raises(BundleError, match="^model directory is refused by the isolated test "
                                          "load: .*model.json"):
        worker.check(bad)
    assert worker.pid is None
    worker.check(folder)
    assert worker.pid not in (None, first)


def test_a_child_that_answers_nonsense_is_refused_and_replaced(model_dir, tmp_path):
    echo = ("import sys\nfor line in sys.stdin:\n    print('x' * int(sys.argv[1]), flush=True)\n")
    for size, reason in ((3, "its reply was not one of ours"),
                         (checker.MAX_REPLY_BYTES + 10, "its reply was not one of ours")):
        own = CheckWorker([sys.executable, "-I", "-c", echo, str(size)])
        try:
            with pytest.raises(BundleError, match=reason):
                own.check(model_dir[0])
            assert own.pid is None
        finally:
            own.close()
    quits = CheckWorker([sys.executable, "-I", "-c", "import sys; sys.stderr.write('boom\\n')"])
    with pytest.raises(BundleError, match=r"by the isolated test load: exit code 0: boom$"):
        quits.check(model_dir[0])


@linux_only
def test_the_child_is_isolated_and_bounded(worker, model_dir):
    worker.check(model_dir[0])
    pid = worker.pid
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert cmdline[1] == b"-I"  # isolated mode: no user site, no PYTHON* variables, no cwd
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert b"OMP_NUM_THREADS=1" in environ
    assert os.readlink(f"/proc/{pid}/cwd") == "/"  # between checks: nothing of ours
    limits = Path(f"/proc/{pid}/limits").read_text()
    address_space = next(line for line in limits.splitlines() if "address space" in line)
    assert address_space.split()[3] == str(checker.CHECK_MEMORY_BYTES)
    maps = Path(f"/proc/{pid}/maps").read_text()
    assert "xgboost" in maps and "sklearn" not in maps  # XGBoost without its sklearn half


def test_the_child_imports_no_mlflow(model_dir):
    """What the check child imports: our check code without the package's __init__."""
    probe = (checker._BOOT_SETUP + "import json\n"
             "from pathlib import Path\n"
             "from ticker_registry.bundle.check import check_model_directory\n"
             "check_model_directory(Path(sys.argv[3]))\n"
             "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n")
    out = subprocess.run([*checker.child_command()[:3], probe, *checker.child_command()[4:],
                          str(model_dir[0])], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "xgboost" in loaded and "numpy" in loaded
    assert not loaded & {"mlflow", "sqlalchemy", "sklearn", "skops", "lightgbm", "yaml",
                         "click", "requests"}


@linux_only
def test_the_child_does_not_outlive_its_parent(tmp_path, model_dir):
    script = ("import os, sys\n"
              "from pathlib import Path\n"
              "from ticker_registry.bundle.checker import shared_worker\n"
              "shared_worker().check(Path(sys.argv[1]))\n"
              "print(shared_worker().pid, flush=True)\n"
              "os._exit(0)  # no atexit: only the closed stdin tells the child\n")
    out = subprocess.run([sys.executable, "-c", script, str(model_dir[0])], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).parents[1], timeout=300)
    pid = int(out.stdout.split()[-1])
    _until(lambda: _gone(pid), f"the orphaned child {pid} exiting")


def test_close_ends_the_child(model_dir):
    own = CheckWorker()
    own.check(model_dir[0])
    pid = own.pid
    assert pid is not None
    own.close()
    assert own.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_meanwhile_runs_here_while_the_child_checks(worker, model_dir, tmp_path):
    folder, expected = model_dir
    piped = tmp_path / "piped"
    shutil.copytree(folder, piped)
    manifest = (piped / "model.json").read_bytes()
    (piped / "model.json").unlink()
    os.mkfifo(piped / "model.json")

    def feed_the_child() -> None:  # opening blocks until the child opens it to read
        with open(piped / "model.json", "wb") as fifo:
            fifo.write(manifest)

    assert worker.check(piped, meanwhile=feed_the_child) == pytest.approx(expected, rel=1e-12)


def test_an_error_meanwhile_ends_the_child(worker, model_dir):
    folder, _ = model_dir
    worker.check(folder)
    first = worker.pid

    def fails() -> None:
        raise RuntimeError("meanwhile failed")

    with pytest.raises(RuntimeError, match="meanwhile failed"):
        worker.check(folder, meanwhile=fails)
    assert worker.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)
    worker.check(folder)


def test_the_check_runs_each_heads_native_predict(model_dir, monkeypatch):
    """A row or a few go through our flat trees; the check also makes the native library
    predict with the bundle's trees (in the child, where a crash is only a refusal)."""
    from ticker_registry import heads
    from ticker_registry.bundle.check import check_model_directory

    rows: list[int] = []
    real = heads._XGBHead.predict_native

    def counted(self, X):
        rows.append(len(X))
        return real(self, X)

    monkeypatch.setattr(heads._XGBHead, "predict_native", counted)
    assert check_model_directory(model_dir[0]) == pytest.approx(model_dir[1], rel=1e-12)
    assert rows == [heads.FLAT_MAX_ROWS + 1] * 3  # once per head, natively
