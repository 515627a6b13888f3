"""The isolated test load (step 4 of :mod:`ticker_registry.bundle`): the code the child runs.

A crafted tree file can crash, hang or exhaust the memory of the process that loads it,
so these functions run in a separate Python process and never in the importing one:
:mod:`.checker` starts that process, sends it model directories and reads its replies.

The child stays lean. It never imports the package's ``__init__`` (MLflow, SQLAlchemy, the
manager): :mod:`.checker` starts it with stand-ins for the two packages, so this module
brings only numpy, the serving code (:mod:`ticker_registry.served`, which needs pandas) and
our bounded readers. A model's native library is imported at the first check of its type,
XGBoost and LightGBM without scikit-learn (their optional integrations would pull it and
SciPy's statistics in: about a second of start-up for nothing the check uses).

Two entry points: :func:`serve`, the loop of the reused worker (one JSON request a line on
stdin, one JSON reply a line on the original stdout), and :func:`_check_main`, the one-shot
``python -m ticker_registry.bundle --check DIR``.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
from pathlib import Path
from typing import IO, Any

from ..exceptions import ModelFormatError
from ..features import FEATURE_NAMES, FLOW_TYPES
from ..heads import FLAT_MAX_ROWS, HEAD_SUFFIX, skops_trusted
from ..served import HEADS, ServedModel, read_manifest
from .manifest import _first_line
from .trees import check_lgb_file, check_rf_forest, check_skops_file, check_xgb_file

#: The module each model type's heads are loaded with (imported at its first check).
NATIVE_MODULES = {"xgboost": "xgboost", "lightgbm": "lightgbm", "random_forest": "skops.io"}
#: Seconds between two looks of the worker at its parent (it exits once the parent is gone).
_PARENT_POLL = 1.0


def serve(requests: IO[str] | None = None, replies: IO[str] | None = None) -> int:
    """The worker's loop: check each requested directory, reply, until stdin closes.

    A request is ``{"id": n, "check": "/abs/dir"}``; the reply ``{"id": n, "ok": true,
    "prediction": [...]}`` or ``{"id": n, "ok": false, "error": "..."}``. Replies go to
    the process's original stdout; file descriptor 1 is pointed at stderr, so whatever a
    native library prints cannot be taken for a reply.
    """
    if replies is None:
        replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
        os.dup2(2, 1)
        sys.stdout = sys.stderr
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    for line in requests if requests is not None else sys.stdin:
        try:
            request = json.loads(line)
            ident, directory = request["id"], Path(request["check"])
        except (ValueError, KeyError, TypeError):
            reply: dict[str, Any] = {"id": None, "ok": False, "error": "bad request"}
        else:
            reply = {"id": ident, **_checked(directory)}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()
    return 0


def _checked(directory: Path) -> dict[str, Any]:
    """One check as a reply: run inside the directory, then back at ``/`` (nothing of ours)."""
    try:
        os.chdir(directory)
        return {"ok": True, "prediction": check_model_directory(directory)}
    except Exception as exc:  # report every failure as data; the parent decides
        return {"ok": False, "error": _first_line(exc)}
    finally:
        os.chdir("/")


def _exit_with_parent(parent: int) -> None:
    """Exit once the parent is gone, even in the middle of a check (stdin EOF covers idle)."""
    while os.getppid() == parent:
        threading.Event().wait(_PARENT_POLL)
    os._exit(1)


def _check_main(argv: list[str]) -> int:
    """Entry point of the one-shot check: ``--check DIR``; prints one JSON line."""
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

    manifest = read_manifest(directory)
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
    import_native(model_type, without_sklearn=True)
    model = ServedModel.load(directory, n_jobs=1, manifest=manifest)
    if model_type == "random_forest":
        for head in HEADS:
            check_rf_forest(model.heads[head].estimator, head, n_features)  # type: ignore[attr-defined]
    # a few rows are predicted by our flat trees, so more than FLAT_MAX_ROWS make each head
    # run the native library's predict on the bundle's trees too, here and not in the parent
    rows = np.zeros((FLAT_MAX_ROWS + 1, n_features))
    for head in HEADS:
        if not np.isfinite(model.heads[head].predict(rows)).all():
            raise ModelFormatError(f"head {head} predicts numbers that are not finite for a "
                                   "zero row")
    out = model.predict_matrix(np.zeros((1, n_features)))
    if out.shape != (1, 5) or not np.isfinite(out).all():
        raise ModelFormatError(f"the model predicts {out!r} for a zero row; expected 5 finite "
                               "numbers")
    return [float(x) for x in out[0]]


def import_native(model_type: str, *, without_sklearn: bool = False) -> None:
    """Import the library the model type's heads load with (nothing of a bundle is read).

    ``without_sklearn`` (the child) imports XGBoost or LightGBM with scikit-learn hidden,
    unless something imported it already. The importing process imports it as usual,
    while the child checks (:func:`.checker.check_in_subprocess`'s ``meanwhile``).
    """
    name = NATIVE_MODULES[model_type]
    if name in sys.modules:
        return
    hide = without_sklearn and model_type != "random_forest" and "sklearn" not in sys.modules
    if hide:
        sys.modules["sklearn"] = None  # type: ignore[assignment]  # import sklearn -> ImportError
    try:
        importlib.import_module(name)
    finally:
        if hide:
            del sys.modules["sklearn"]
