"""Files the package creates follow the process umask (no world-readable models under 077)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {tests!r})
    os.umask(0o077)
    from conftest import make_trades
    from ticker_registry import SyncTickerModelManager
    manager = SyncTickerModelManager(
        {{"prediction_horizon": 5, "sequence_length": 20, "large_order_threshold": 1000,
          "hyperparameters": {{"xgboost": {{"n_estimators": 20}}}}}}, {store!r},
        auto_retrain=False)
    manager.train("ETHUSDT", make_trades(4000))
    manager.get_or_create_model("ETHUSDT")
    manager.export("ETHUSDT", os.path.join({store!r}, "ETHUSDT.trbundle"))
    manager.close()
""")


def test_nothing_is_group_or_world_accessible_under_umask_077(tmp_path):
    store = tmp_path / "store"
    code = SCRIPT.format(tests=str(Path(__file__).parent), store=str(store))
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=tmp_path)
    paths = [p for p in store.rglob("*")]
    assert any(p.name == "MLmodel" for p in paths) and any(p.suffix == ".trbundle" for p in paths)
    loose = [f"{oct(p.stat().st_mode & 0o777)} {p}" for p in paths if p.stat().st_mode & 0o077]
    assert loose == []
