"""Where an import puts its version: decided before registration, its gate.* tags written
with the version, and placed again from fresh aliases when one moved in between."""

from __future__ import annotations

import pytest

from ticker_registry.bundle import export_bundle, import_bundle

from conftest import new_store, register_training


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, trained, empty_store_db):
    root = tmp_path_factory.mktemp("placement")
    registry = new_store(root / "store", empty_store_db)
    info = register_training(registry, trained[0], gate=False)[0]
    path = root / "ETHUSDT.trbundle"
    export_bundle(registry, "ETHUSDT", path, info.version)
    return path


def _count_tag_writes(registry, monkeypatch) -> list[str]:
    writes: list[str] = []
    real = registry.set_version_tag

    def counted(ticker, version, key, value):
        writes.append(key)
        return real(ticker, version, key, value)

    monkeypatch.setattr(registry, "set_version_tag", counted)
    return writes


@pytest.mark.parametrize("promote", [False, True])
def test_the_decision_is_registered_with_the_version(registry, bundle, monkeypatch, promote):
    writes = _count_tag_writes(registry, monkeypatch)
    result = import_bundle(registry, bundle, promote=promote)
    assert result.created and writes == []  # no tag written after the version
    alias = "production" if promote else "staging"
    assert result.decision.promoted is promote and result.decision.alias == alias
    assert registry.resolve("ETHUSDT", alias).version == result.version.version
    tags = result.version.tags
    assert tags["gate.decision"] == alias and tags["gate.reason"] == result.decision.reason
    action = "gate" if promote else "import"
    assert [(e.action, e.alias, e.to_version) for e in registry.audit_trail("ETHUSDT")] == \
        [(action, alias, result.version.version)]


def test_an_alias_moved_before_placement_is_decided_again(registry, trained, bundle,
                                                          monkeypatch):
    """Staging moves between the plan and the move: the compare-and-set refuses, and the
    import decides again from the aliases as they are now."""
    older = register_training(registry, trained[1], gate=False)[0].version
    real = registry.register

    def register_then_move_staging(*args, **kwargs):
        out = real(*args, **kwargs)
        registry.promote("ETHUSDT", older, to="staging", reason="meanwhile")
        return out

    monkeypatch.setattr(registry, "register", register_then_move_staging)
    writes = _count_tag_writes(registry, monkeypatch)
    result = import_bundle(registry, bundle)
    assert result.created and result.decision is not None and not result.decision.promoted
    assert registry.resolve("ETHUSDT", "staging").version == result.version.version
    assert sorted(writes) == ["gate.champion_version", "gate.decision", "gate.reason"]
    moves = [(e.action, e.from_version, e.to_version) for e in registry.audit_trail("ETHUSDT")]
    assert moves == [("promote", None, older), ("import", older, result.version.version)]
