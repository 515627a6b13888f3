"""The audit trail: complete through `history`, bounded where every status read looks."""

from __future__ import annotations

import json

from click.testing import CliRunner

from ticker_registry import SyncTickerModelManager
from ticker_registry.audit import AUDIT_RUN_TAG
from ticker_registry.cli import cli
from ticker_registry.records import AuditEvent


def _versions(registry, trained, n, ticker="ETHUSDT"):
    for i in range(n):
        result = trained[i % len(trained)]
        registry.register(ticker, result.model, lineage=result.lineage,
                          idempotency_key=f"{ticker}-{i}")


def test_many_moves_leave_the_registered_model_tags_as_they_were(registry, trained):
    _versions(registry, trained, 2)
    registry.promote("ETHUSDT", 1)
    before = dict(registry.model("ETHUSDT").tags)
    for i in range(20):
        registry.promote("ETHUSDT", 2 - i % 2, reason=f"move {i}")
    assert registry.model("ETHUSDT").tags == before  # nothing grows with history
    assert not any(k.startswith("audit.") for k in before) and AUDIT_RUN_TAG in before
    trail = registry.audit_trail("ETHUSDT")
    assert [e.seq for e in trail] == list(range(1, 22))
    assert [e.to_version for e in trail[-3:]] == [1, 2, 1]
    assert trail[-1].reason == "move 19" and trail[-1].from_version == 2
    # the trail is on the audit run (one tag per move), where the UI shows it
    run = registry.store.get_run(before[AUDIT_RUN_TAG])
    assert sum(k.startswith("audit.") for k in run.tags) == 21


def test_rollback_reads_the_trail_and_appends_to_it(registry, trained):
    _versions(registry, trained, 3)
    for version in (1, 2, 3):
        registry.promote("ETHUSDT", version)
    event = registry.rollback("ETHUSDT", reason="live accuracy dropped")
    assert (event.from_version, event.to_version, event.action) == (3, 2, "rollback")
    assert registry.production_version("ETHUSDT") == 2
    assert registry.rollback("ETHUSDT").to_version == 1


def test_a_trail_written_as_model_tags_by_an_older_release_is_still_read(registry, trained):
    _versions(registry, trained, 2)
    name = registry.model_name("ETHUSDT")
    old = AuditEvent(seq=1, when="2026-01-01T00:00:00+00:00", action="promote",
                     alias="production", from_version=None, to_version=1, reason="old", user="u")
    registry.store.set_model_tag(name, "audit.000001", old.to_json())
    registry.store.set_model_tag(name, "audit_seq", "1")
    registry.store.set_alias(name, "production", 1)
    registry.promote("ETHUSDT", 2)
    trail = registry.audit_trail("ETHUSDT")
    assert [(e.seq, e.to_version) for e in trail] == [(1, 1), (2, 2)]
    assert registry.rollback("ETHUSDT").to_version == 1  # the old move counts


def test_history_command_prints_every_move(tmp_path, quick_config, trained):
    manager = SyncTickerModelManager(quick_config, tmp_path, auto_retrain=False)
    _versions(manager.registry, trained, 2)
    manager.promote("ETHUSDT", 1, reason="first")
    manager.promote("ETHUSDT", 2, reason="second")
    manager.close()
    out = CliRunner().invoke(cli, ["--models-dir", str(tmp_path), "history", "ETHUSDT",
                                   "--format", "json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert [(r["seq"], r["to_version"], r["reason"]) for r in rows] == [
        (1, 1, "first"), (2, 2, "second")]


def test_the_model_cache_follows_a_removed_production_alias(tmp_path, quick_config, trained):
    manager = SyncTickerModelManager(quick_config, tmp_path, auto_retrain=False)
    _versions(manager.registry, trained, 1)
    manager.promote("ETHUSDT", 1)
    assert manager.get_or_create_model("ETHUSDT").version == 1
    # another process (doctor --repair, or a hand in the UI) removes production
    other = SyncTickerModelManager(quick_config, tmp_path, auto_retrain=False)
    other.registry.remove_alias("ETHUSDT", "production", reason="broken artifacts")
    other.close()
    assert manager.cache.refresh() == ["ETHUSDT"]
    assert manager.get_or_create_model("ETHUSDT").model is None  # no longer served
    assert manager.history("ETHUSDT")[-1].action == "remove"
    manager.close()


def test_rollback_uses_what_was_served_when_the_last_move_went_unrecorded(registry, trained):
    """A crash between an alias move and its audit entry: rollback still goes back one step."""
    from ticker_registry.audit import divergences

    _versions(registry, trained, 3)
    registry.promote("ETHUSDT", 1)
    registry.promote("ETHUSDT", 2)
    name = registry.model_name("ETHUSDT")
    registry.store.set_alias(name, "production", 3)  # moved; the process died before the entry
    state = registry.model("ETHUSDT")
    assert divergences(registry.audit.events(state), state.aliases) == {"production": (2, 3)}
    assert registry.rollback("ETHUSDT").to_version == 2  # back to what was served before v3


def test_two_moves_in_one_promotion_share_the_first_audit_run(registry, trained):
    """A store without an audit run yet: promoting its staging version writes two entries
    (production, and staging taken away) into one run, not two runs the tag flips between."""
    _versions(registry, trained, 1)
    registry.store.set_alias(registry.model_name("ETHUSDT"), "staging", 1)  # set by hand
    registry.promote("ETHUSDT", 1)
    trail = registry.audit_trail("ETHUSDT")
    assert [(e.alias, e.to_version) for e in trail] == [("production", 1), ("staging", None)]
