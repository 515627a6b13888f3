"""Subprocess side of the crash tests: retrain, and SIGKILL ourselves at a chosen point.

    python _crash_worker.py MODELS_DIR TICKER POINT

The fault is injected in THIS process only, around the real calls against the
real store (nothing is mocked: the registry and sample store see exactly what
a process killed at that instant leaves behind). POINT is one of:

``mid_fit``          inside ``OrderFlowModel.fit``, after the first head is trained
``before_version``   the run and its artifacts are logged; ``create_model_version``
                     is about to be called
``after_version``    ``create_model_version`` returned (with the gate's tags: it
                     decided before); nothing else happened yet
``before_alias``     the alias is about to move (``set_registered_model_alias``)
``before_audit``     instead of retraining: ``promote`` version 2 to production; the
                     alias has moved and its audit entry is about to be written
                     (``AuditTrail.append``)

The worker prints ``armed`` once the hook is in place and ``reached POINT``
just before it kills itself; ``finished`` means the point was never reached.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import ticker_registry.walk_forward  # noqa: E402
from ticker_registry import SyncTickerModelManager  # noqa: E402
from ticker_registry.audit import AuditTrail  # noqa: E402

from conftest import QUICK  # noqa: E402

POINTS = ("mid_fit", "before_version", "after_version", "before_alias", "before_audit")


def die(point: str) -> None:
    print(f"reached {point}", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def arm(manager: SyncTickerModelManager, point: str) -> None:
    if point == "mid_fit":
        # every head of a training, its folds' and its final ones, is fitted through here
        real_train_head = ticker_registry.walk_forward.train_head
        calls = []

        def train_head(*args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            if len(calls) == 2:  # a flow_type head is trained, impact is next
                die(point)
            return real_train_head(*args, **kwargs)

        ticker_registry.walk_forward.train_head = train_head
        return
    if point == "before_audit":
        real_append = AuditTrail.append

        def append(self: AuditTrail, model: Any, ticker: str, **fields: Any) -> Any:
            if fields.get("action") == "promote":
                die(point)
            return real_append(self, model, ticker, **fields)

        AuditTrail.append = append  # type: ignore[method-assign]
        return
    client = manager.registry.store.client
    if point in ("before_version", "after_version"):
        real_create = client.create_model_version

        def create_model_version(*args: Any, **kwargs: Any) -> Any:
            if point == "before_version":
                die(point)
            created = real_create(*args, **kwargs)
            die(point)
            return created

        client.create_model_version = create_model_version
    elif point == "before_alias":
        real_set_alias = client.set_registered_model_alias

        def set_registered_model_alias(*args: Any, **kwargs: Any) -> Any:
            die(point)
            return real_set_alias(*args, **kwargs)

        client.set_registered_model_alias = set_registered_model_alias
    else:
        sys.exit(f"unknown point {point!r}; use one of {', '.join(POINTS)}")


def main(argv: list[str]) -> None:
    models_dir, ticker, point = argv
    manager = SyncTickerModelManager({**QUICK, "refresh_interval": 0}, models_dir,
                                     auto_retrain=False)
    arm(manager, point)
    print("armed", flush=True)
    if point == "before_audit":
        manager.promote(ticker, 2)
        print("finished", flush=True)
        return
    outcome = manager.retrain(ticker)
    print("finished", outcome, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
