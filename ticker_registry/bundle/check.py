"""The isolated test load: tree sanity checks, load and predict, in a child process.

Step 4 of :mod:`ticker_registry.bundle`. A crafted tree file can crash the
process that predicts with it, so the parent only reads the child's one-line
JSON report.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from ..exceptions import BundleError, ModelFormatError
from ..features import FEATURE_NAMES, FLOW_TYPES
from ..heads import HEAD_SUFFIX, skops_trusted
from ..model import HEADS, OrderFlowModel, read_model_manifest
from .manifest import _first_line
from .trees import check_lgb_file, check_rf_forest, check_skops_file, check_xgb_file

CHECK_TIMEOUT = 120.0  #: seconds for the subprocess test load

_CHILD = ("import sys; sys.path.insert(0, sys.argv[1]); "
          "from ticker_registry.bundle.check import _check_main; "
          "sys.exit(_check_main(sys.argv[2:]))")


def check_in_subprocess(directory: Path, *, label: str = "model directory",
                        timeout: float = CHECK_TIMEOUT) -> list[float]:
    """Load and test-predict the native model in ``directory`` in a separate Python process.

    Returns the predictions of a zero feature row. A crash, a timeout or a
    refusal in the child raises :class:`BundleError`.
    """
    # our own code, not the bundle's: the directory holding ticker_registry/bundle/check.py
    root = str(Path(__file__).resolve().parents[2])
    cmd = [sys.executable, "-I", "-c", _CHILD, root, "--check", str(directory)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, cwd=directory, env=env,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise BundleError(f"{label} is refused: loading its models did not finish within "
                          f"{timeout:.0f} s in the isolated test load") from None
    lines = proc.stdout.decode("utf-8", "replace").strip().splitlines()
    try:
        report = json.loads(lines[-1]) if lines else {}
    except ValueError:
        report = {}
    if proc.returncode < 0:
        try:
            sig = signal.Signals(-proc.returncode).name
        except ValueError:
            sig = f"signal {-proc.returncode}"
        raise BundleError(f"{label} is refused: the isolated test load of its models crashed "
                          f"({sig}); a crafted or damaged tree file can do this")
    if not isinstance(report, dict) or not report.get("ok"):
        reason = report.get("error") if isinstance(report, dict) else None
        if not reason:
            tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
            reason = f"exit code {proc.returncode}: {' '.join(tail)[:300]}"
        raise BundleError(f"{label} is refused by the isolated test load: {reason}")
    prediction = report.get("prediction")
    if not isinstance(prediction, list):
        raise BundleError(f"{label} is refused: the isolated test load returned no prediction")
    return [float(x) for x in prediction]


def _check_main(argv: list[str]) -> int:
    """Entry point of the child: ``--check DIR``; prints one JSON line."""
    if len(argv) != 2 or argv[0] != "--check":
        print(json.dumps({"ok": False, "error": "usage: python -m ticker_registry.bundle "
                                                "--check DIR"}))
        return 2
    try:
        prediction = check_model_directory(Path(argv[1]))
    except Exception as exc:  # report every failure as data; the parent decides
        print(json.dumps({"ok": False, "error": f"{_first_line(exc)}"}))
        return 3
    print(json.dumps({"ok": True, "prediction": prediction}))
    return 0


def check_model_directory(directory: Path) -> list[float]:
    """Bounded checks of every head file, load, and a prediction on a zero row (in the child).

    Each head file is checked by our own bounded reader (:mod:`.trees`) before the
    native library parses it; a forest's trees once skops has built them.
    """
    import numpy as np

    manifest = read_model_manifest(directory)
    model_type = manifest["model_type"]
    n_features = len(FEATURE_NAMES)
    for head in HEADS:
        path = directory / f"{head}{HEAD_SUFFIX[model_type]}"
        n_classes = len(FLOW_TYPES) if head == "flow_type" else 0
        if model_type == "xgboost":
            check_xgb_file(path, n_features, n_classes)
        elif model_type == "lightgbm":
            check_lgb_file(path, n_features, n_classes)
        else:
            check_skops_file(path)
            skops_trusted(path)  # the loader's own allow-list decision, before anything is built
    model = OrderFlowModel.load(directory, n_jobs=1)
    if model_type == "random_forest":
        for head in HEADS:
            check_rf_forest(model.heads_[head].estimator, head, n_features)  # type: ignore[attr-defined]
    out = model.predict_matrix(np.zeros((1, n_features)))
    if out.shape != (1, 5) or not np.isfinite(out).all():
        raise ModelFormatError(f"the model predicts {out!r} for a zero row; expected 5 finite "
                               "numbers")
    return [float(x) for x in out[0]]
