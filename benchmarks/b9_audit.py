"""B9: does the audit trail slow every status read as it grows? 5 vs 500 alias moves per ticker.

Two SQLite stores with the same tickers (two versions each, registered with the
raw ``MlflowClient``); in one, each ticker's production alias moved 5 times, in
the other 500 times, both through ``TickerRegistry.promote`` (lock, CAS, audit
entry, description). The timed read is ``search_registered_models`` as every
status read and the UI's model list do it (``TickerRegistry.search_models``).

Ours: the search after 500 moves per ticker. Baseline: the same search after 5.
Target: within 1.2x (the trail lives on an audit run, not on the registered model).
For contrast, a third store holds what the first round wrote for 500 moves (one
registered-model tag per move) and is searched the same way (reported, no target).
"""

from __future__ import annotations

from pathlib import Path

from .fixtures import config, sqlite_uri
from .harness import Context, Row, interleaved, median

NAMESPACE = "order_flow"


def _populate(uri: str, tickers: list[str], old_layout_moves: int = 0) -> None:
    from mlflow import MlflowClient

    from ticker_registry.records import AuditEvent

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for ticker in tickers:
        name = f"{NAMESPACE}.{ticker}"
        tags = {"ticker": ticker, "kind": "order_flow_model", "namespace": NAMESPACE,
                "created_at": "2026-01-01T00:00:00+00:00"}
        for seq in range(1, old_layout_moves + 1):  # the first round's layout: a tag per move
            tags[f"audit.{seq:06d}"] = AuditEvent(
                seq=seq, when="2026-01-01T00:00:00+00:00", action="promote", alias="production",
                from_version=2 - seq % 2, to_version=1 + seq % 2, reason="bench",
                user="bench").to_json()
        client.create_registered_model(name, tags=tags)
        for v in (1, 2):
            client.create_model_version(name, f"file:///nonexistent/{ticker}/{v}", None,
                                        tags={"ticker": ticker, "metric.impact_mse": "1.0"})


def _moves(registry: object, tickers: list[str], n: int) -> None:
    for ticker in tickers:
        for i in range(n):
            registry.promote(ticker, 1 + i % 2, reason=f"bench move {i}")  # type: ignore[attr-defined]


def run(ctx: Context) -> list[Row]:
    from ticker_registry.registry import TickerRegistry

    n_tickers, many = ctx.pick(3, 10), ctx.pick(100, 500)
    tickers = [f"T{i:03d}USDT" for i in range(n_tickers)]
    cfg = config(ctx.quick)
    registries = {}
    for label, moves, old in (("few", 5, 0), ("many", many, 0), ("old", 0, many)):
        folder: Path = ctx.folder(label)
        uri = sqlite_uri(folder)
        _populate(uri, tickers, old_layout_moves=old)
        registry = TickerRegistry(cfg, tracking_uri=uri, models_dir=folder)
        _moves(registry, tickers, moves)
        registries[label] = registry
    assert all(len(r.audit_trail(tickers[0])) == n for r, n in
               ((registries["few"], 5), (registries["many"], many)))

    calls = {label: (lambda r=r: r.search_models()) for label, r in registries.items()}
    times = interleaved(calls, rounds=ctx.pick(5, 30), warmup=2, per_round=dict.fromkeys(calls, 3))
    few, lots, old = (median(times[k]) for k in ("few", "many", "old"))
    what = f"search_registered_models, {n_tickers} tickers"
    return [
        Row("B9", f"{what}, {many} moves each", lots, "s", "same after 5 moves each", few,
            "<= 1.2x", lots <= 1.2 * few, repeats=len(times["many"])),
        Row("B9", f"{what}, {many} moves each as the first round stored them", old, "s",
            "ours after 5 moves each", few, "report", None, repeats=len(times["old"])),
    ]
