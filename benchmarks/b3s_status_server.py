"""B3S: ``status`` over 1,000 and 10,000 tickers x 3 versions on the PostgreSQL server.

The store is laid out as in B3 (:mod:`.b3_status`): a template ticker registered
by the library through the server, its registry rows copied in SQL (straight
into the server's PostgreSQL database) for the other tickers. Through a server
there is no SQL read: ``status`` pages through ``search_registered_models`` and
``search_model_versions`` (every version, all tags), so its cost grows with the
number of versions. At 1,000 tickers the per-ticker baseline runs beside it; at
10,000 only ours (the baseline takes many minutes there). Report only, no target.
Full runs only: the quick mode reports it skipped.
"""

from __future__ import annotations

import math
from typing import Any

from .b3_status import _compare, clone_template, register_template
from .fixtures import config
from .harness import Context, Row

TIMEOUT = 3600.0  #: seconds for the whole benchmark (one search over 30,000 versions is slow)


def run(ctx: Context) -> list[Row]:
    from .b7_server import _postgres_missing, _start, _stop

    what = "status on the PostgreSQL server"
    if ctx.quick:
        return [Row("B3S", what, math.nan, "s", "-", None, "report", None,
                    note="skipped: full runs only (a server and 10,000 tickers take minutes)")]
    missing = _postgres_missing()
    if missing:
        return [Row("B3S", what, math.nan, "s", "-", None, "report", None,
                    note=f"skipped: {missing}")]
    cfg: Any = config(True).replace(registry_timeout=1800.0)  # one search over 30,000 versions
    state = ctx.folder("server")
    rows: list[Row] = []
    try:
        env = _start(state)
        uri = env["MLFLOW_TRACKING_URI"]
        register_template(cfg, uri, ctx.folder("server-client"))
        done = 1
        for n in (1_000, 10_000):
            clone_template(env["TR_PG_URI"], done, n)
            done = n
            rows += _compare(ctx, "server", uri, cfg, n, target=None, rounds=1,
                             base_rounds=0 if n >= 10_000 else 1, bench_id="B3S")
    except Exception as exc:  # a report row, not a lost table
        rows.append(Row("B3S", what, math.nan, "s", "-", None, "report", None,
                        note=f"failed: {type(exc).__name__}: {exc}"[:300]))
    finally:
        _stop(state)
    return rows
