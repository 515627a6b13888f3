"""A disk that fills up while a model is saved: ONE DiskFullError (a StoreError), nothing left.

No real disk is filled: ``os.write`` (the one call that writes a model's bytes) is made to
fail with ENOSPC on regular files, or a head's ``dump`` raises a native library's
"No space left on device".
"""

from __future__ import annotations

import errno
import os
import stat

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from ticker_registry import (
    FEATURE_NAMES,
    Config,
    DiskFullError,
    OrderFlowModel,
    StoreError,
    build_training_set,
)
from ticker_registry.cli import cli

from conftest import QUICK, make_trades


@pytest.fixture(scope="module")
def models():
    """A small trained model per native format that reports errors by text (xgboost, lightgbm)."""
    out = {}
    for model_type in ("xgboost", "lightgbm"):
        config = Config.from_dict({**QUICK, "model_type": model_type})
        X, y = build_training_set(make_trades(3000, seed=1), config)
        out[model_type] = OrderFlowModel(config).fit(X, y)
    return out


def fill_disk_after(monkeypatch, room: int) -> None:
    """Regular files take ``room`` bytes in all; then ``os.write`` fails with ENOSPC."""
    real_write = os.write
    left = [room]

    def write(fd, data):
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return real_write(fd, data)
        if left[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = real_write(fd, bytes(memoryview(data)[:left[0]]))  # a partial write, as a disk
        left[0] -= written                                           # that fills up gives
        return written

    monkeypatch.setattr(os, "write", write)


def leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if ".saving-" in p.name)


def assert_one_line_disk_full(exc: BaseException, where) -> str:
    text = str(exc)
    assert isinstance(exc, DiskFullError) and isinstance(exc, StoreError)
    assert "\n" not in text
    assert "no space left on the disk" in text and str(where) in text
    assert "run again" in text and "nothing was left behind" in text
    return text


@pytest.mark.parametrize("room", [0, 20_000])
def test_enospc_while_writing_leaves_no_folder(models, tmp_path, monkeypatch, room):
    model = models["xgboost"]
    target = tmp_path / "models" / "m"
    fill_disk_after(monkeypatch, room)
    with pytest.raises(DiskFullError) as caught:
        model.save(target)
    monkeypatch.undo()
    text = assert_one_line_disk_full(caught.value, target)
    expected = sum(len(h.dump()) for h in model.heads_.values())
    needed = int(text.split("it needs ")[1].split(" bytes")[0].replace(",", ""))
    assert needed > expected  # every head plus model.json: the bytes being written
    assert not target.exists()
    assert leftovers(tmp_path) == []
    assert isinstance(caught.value.__cause__, OSError)
    assert caught.value.__cause__.errno == errno.ENOSPC


def test_an_existing_folder_is_left_as_it_was(models, tmp_path, monkeypatch):
    target = tmp_path / "m"
    target.mkdir()
    (target / "notes.txt").write_text("kept")
    fill_disk_after(monkeypatch, 5_000)
    with pytest.raises(DiskFullError):
        models["lightgbm"].save(target)
    monkeypatch.undo()
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]
    assert leftovers(tmp_path) == []
    models["lightgbm"].save(target)  # with room again, the save completes beside the old file
    assert OrderFlowModel.load(target).predict_matrix(np.zeros((1, len(FEATURE_NAMES)))).shape == (1, 5)


def native_error(model_type: str, message: str) -> Exception:
    if model_type == "xgboost":
        from xgboost.core import XGBoostError

        return XGBoostError(message)
    from lightgbm.basic import LightGBMError

    return LightGBMError(message)


@pytest.mark.parametrize("model_type", ["xgboost", "lightgbm"])
def test_a_native_no_space_error_is_one_disk_full_error(models, tmp_path, monkeypatch, model_type):
    model = models[model_type]
    head_type = type(model.heads_["impact"])
    error = native_error(model_type, "[12:00:00] src/io.cc:120: No space left on device")

    def dump(self):
        raise error

    monkeypatch.setattr(head_type, "dump", dump)
    target = tmp_path / "m"
    with pytest.raises(DiskFullError) as caught:
        model.save(target)
    text = assert_one_line_disk_full(caught.value, target)
    assert "free some space" in text  # the bytes are not known before every head is dumped
    assert caught.value.__cause__ is error
    assert not target.exists() and leftovers(tmp_path) == []


def test_other_errors_are_not_called_a_full_disk(models, tmp_path, monkeypatch):
    from xgboost.core import XGBoostError

    def dump(self):
        raise XGBoostError("something else broke")

    monkeypatch.setattr(type(models["xgboost"].heads_["impact"]), "dump", dump)
    with pytest.raises(XGBoostError, match="something else"):
        models["xgboost"].save(tmp_path / "m")
    assert not (tmp_path / "m").exists() and leftovers(tmp_path) == []


def test_cli_train_on_a_full_disk_prints_one_line(tmp_path, monkeypatch):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**QUICK, "refresh_interval": 0}))
    trades = tmp_path / "ETHUSDT-trades.csv"
    make_trades(3000, seed=1).to_csv(trades, index=False)
    fill_disk_after(monkeypatch, 0)
    result = CliRunner().invoke(cli, ["--models-dir", str(tmp_path / "store"), "--config", str(config),
                                      "train", "--ticker", "ETHUSDT", "--trades", str(trades)])
    monkeypatch.undo()
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: no space left on the disk"), result.output
    assert "bytes" in lines[0] and "run again" in lines[0]
    assert leftovers(tmp_path) == []
    # nothing half-written in the artifact store: the LoggedModel's folder is gone, and the
    # run and LoggedModel are marked FAILED (no version was registered)
    artifacts = tmp_path / "store" / "mlartifacts"
    assert [p for p in artifacts.rglob("*") if p.is_file()] == []
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("ticker-registry/order_flow")
                               .experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]
    assert client.search_model_versions("name='order_flow.ETHUSDT'") == []
