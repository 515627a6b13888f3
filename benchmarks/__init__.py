"""Benchmarks of ticker-registry against baselines measured in the same run.

Run them all with ``python -m benchmarks`` (``--quick`` for a smoke run,
``--only B1,B3`` for a subset, ``--help`` for the rest). Each benchmark runs
in its own Python process, with every store under a fresh temporary folder,
and reports one or more rows: the median of several repetitions after a
warm-up, the baseline's median from the same process, and the speedup
``baseline / ours`` (above 1: ours is faster). No benchmark asserts a time;
the targets are printed next to the figures. Results and their analysis are
kept in ``benchmarks/RESULTS.md``.

===  ===================  ======================================================
id   module               what
===  ===================  ======================================================
B1   b1_register          register one trained version on SQLite
B2   b2_predict           warm ``predict_for_ticker`` latency (p50, p99)
B3   b3_status            ``status`` over 1,000 and 10,000 tickers x 3 versions on SQLite
B3S  b3s_status_server    the same on the PostgreSQL-backed server (full runs only)
B4   b4_features          ``build_training_set`` over 1M trades
B5   b5_training          training 20 tickers, 1 vs 2 worker processes
B6   b6_bundle            export + import round trip of one version
B7   b7_server            50 registrations against the PostgreSQL-backed server
B8   b8_serve             one-row latency through ``mlflow models serve`` (features, raw trades)
B9   b9_audit             registered-model search after 500 vs 5 alias moves per ticker
B10  b10_demo_first_line  time until ``ticker-registry demo`` prints its first line
M1   m1_memory            resident memory of the manager's model cache
M2   m2_import            peak RSS and time to refuse each hostile bundle of the corpus
===  ===================  ======================================================
"""

from __future__ import annotations

#: Benchmark id -> module of this package that runs it (in table order).
BENCHMARKS: dict[str, str] = {
    "B1": "b1_register",
    "B2": "b2_predict",
    "B3": "b3_status",
    "B3S": "b3s_status_server",
    "B4": "b4_features",
    "B5": "b5_training",
    "B6": "b6_bundle",
    "B7": "b7_server",
    "B8": "b8_serve",
    "B9": "b9_audit",
    "B10": "b10_demo_first_line",
    "M1": "m1_memory",
    "M2": "m2_import",
}

__all__ = ["BENCHMARKS"]
