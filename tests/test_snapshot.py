"""The one-read snapshot of a namespace equals what MLflow's own searches return."""

from __future__ import annotations

from ticker_registry.registry import TickerRegistry


def _by_search(registry: TickerRegistry):
    prefix = f"{registry.config.namespace}."
    models = [m for m in registry.store.search_models(f"{prefix}%") if m.name.startswith(prefix)]
    versions = registry.store.search_versions(f"name LIKE '{prefix}%'")
    return (sorted(models, key=lambda m: m.name),
            sorted((v for v in versions if v.name.startswith(prefix)),
                   key=lambda v: (v.name, v.version)))


def test_snapshot_matches_the_searches(registry, trained, tmp_path):
    for ticker in ("ETHUSDT", "BTCUSDT"):
        for i in range(3):
            result = trained[i % len(trained)]
            registry.register(ticker, result.model, lineage=result.lineage,
                              idempotency_key=f"{ticker}-{i}")
    registry.promote("ETHUSDT", 2)
    registry.promote("ETHUSDT", 3, to="staging")
    registry.delete_version("BTCUSDT", 2)  # MLflow keeps its row, marked deleted
    registry.store.set_model_tag(registry.model_name("BTCUSDT"), "note", "see notebook")
    # another namespace whose name LIKE 'order_flow.%' would also match ('_' is a wildcard)
    other = TickerRegistry({**registry.config.to_dict(), "namespace": "orderXflow"},
                           tracking_uri=registry.tracking_uri, models_dir=registry.models_dir)
    result = trained[0]
    other.register("ETHUSDT", result.model, lineage=result.lineage, idempotency_key="other-0")

    models, versions = registry.snapshot()
    assert registry.store._sql is not None  # the SQL path ran, not the fallback
    expected_models, expected_versions = _by_search(registry)
    assert sorted(models, key=lambda m: m.name) == expected_models
    assert sorted(versions, key=lambda v: (v.name, v.version)) == expected_versions
    assert [v.version for v in versions if v.ticker == "BTCUSDT"] == [1, 3]
    assert {m.name for m in models} == {"order_flow.ETHUSDT", "order_flow.BTCUSDT"}


def test_snapshot_falls_back_to_the_searches_when_the_tables_are_unreadable(registry, trained):
    result = trained[0]
    registry.register("ETHUSDT", result.model, lineage=result.lineage, idempotency_key="k-0")
    registry.store._sql = object()  # not an engine: the SQL read fails, the searches answer
    models, versions = registry.snapshot()
    assert [m.name for m in models] == ["order_flow.ETHUSDT"] and len(versions) == 1
