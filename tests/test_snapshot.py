"""The one-read snapshot of a namespace equals what MLflow's own searches return."""

from __future__ import annotations

from ticker_registry.registry import TickerRegistry
from ticker_registry.store.snapshot import heads_of


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

    snap = registry.snapshot()
    assert registry.store._sql is not None  # the SQL path ran, not the fallback
    expected_models, expected_versions = _by_search(registry)
    expected = heads_of(expected_models, expected_versions)
    assert sorted(snap.models, key=lambda m: m.name) == expected_models
    assert sorted(snap.versions, key=lambda v: (v.name, v.version)) == expected.versions
    assert snap.counts == expected.counts == {"order_flow.ETHUSDT": 3, "order_flow.BTCUSDT": 2}
    # heads only: ETHUSDT's production (2) and newest (3, also staging); BTCUSDT's newest
    assert [(v.ticker, v.version) for v in sorted(snap.versions, key=lambda v: (v.name, v.version))
            ] == [("BTCUSDT", 3), ("ETHUSDT", 2), ("ETHUSDT", 3)]
    assert {m.name for m in snap.models} == {"order_flow.ETHUSDT", "order_flow.BTCUSDT"}


def test_snapshot_falls_back_to_the_searches_when_the_tables_are_unreadable(registry, trained):
    result = trained[0]
    registry.register("ETHUSDT", result.model, lineage=result.lineage, idempotency_key="k-0")
    registry.store._sql = object()  # not an engine: the SQL read fails, the searches answer
    snap = registry.snapshot()
    assert [m.name for m in snap.models] == ["order_flow.ETHUSDT"] and len(snap.versions) == 1
    assert snap.counts == {"order_flow.ETHUSDT": 1}


def test_registration_state_matches_the_searches(registry, trained):
    for i in range(3):
        result = trained[i % len(trained)]
        registry.register("ETHUSDT", result.model, lineage=result.lineage,
                          idempotency_key=f"key-{i}")
    registry.delete_version("ETHUSDT", 3)  # the newest live version is 2 again
    name = registry.model_name("ETHUSDT")
    by_sql = [registry.store.registration_state(name, key) for key in ("key-1", "key-2", "nope")]
    assert registry.store._sql is not None
    registry.store._sql = object()  # the searches answer
    by_search = [registry.store.registration_state(name, key)
                 for key in ("key-1", "key-2", "nope")]
    assert by_sql == by_search
    assert by_sql[0][0] == [(2, "READY")] and by_sql[1][0] == [] and by_sql[2][0] == []
    assert by_sql[0][1]["totals.training_sessions"] == "2"
    assert registry.store.registration_state(registry.model_name("BTCUSDT"), "k") == ([], None)
