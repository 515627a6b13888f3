"""Bundles against real SQLite stores: export, verified import, and a corpus of bad bundles."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticker_registry import FEATURE_NAMES, BundleError, ModelNotFoundError
from ticker_registry.bundle import (
    BUNDLE_FORMAT_VERSION,
    BundleManifest,
    export_all,
    export_bundle,
    import_bundle,
    redact_uri,
    verify_bundle,
)

import bad_bundles
from conftest import new_store, register_training, registry_snapshot


def _register(registry, result, ticker="ETHUSDT", gate=True):
    return register_training(registry, result, ticker, gate)[0]


@pytest.fixture(scope="module")
def source(tmp_path_factory, trained, empty_store_db):
    """Store A: ETHUSDT v1 (production) and v2 (no alias), and a good bundle of v1."""
    root = tmp_path_factory.mktemp("source")
    registry = new_store(root / "store", empty_store_db)
    _register(registry, trained[0])
    _register(registry, trained[1], gate=False)
    good = root / "bundles" / "ETHUSDT-v1.trbundle"
    manifest = export_bundle(registry, "ETHUSDT", good)
    return SimpleNamespace(registry=registry, root=root, good=good, manifest=manifest)


@pytest.fixture(scope="module")
def corpus(source, tmp_path_factory):
    return bad_bundles.build_corpus(source.good, tmp_path_factory.mktemp("corpus"))


def files_and_sizes(*roots: Path, skip: Path | None = None) -> set[tuple[str, int]]:
    out = set()
    for root in roots:
        for dirpath, _dirs, names in os.walk(root):
            if skip is not None and Path(dirpath).is_relative_to(skip):
                continue
            for name in names:
                p = Path(dirpath) / name
                out.add((str(p), p.lstat().st_size))
    return out


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """Route tempfile into a folder of ours, to prove the private work dir is removed."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


# --------------------------------------------------------------------------- the corpus
def test_corpus_is_large_enough():
    assert len(bad_bundles.CASE_IDS) >= 22
    assert len(set(bad_bundles.CASE_IDS)) == len(bad_bundles.CASE_IDS)


@pytest.mark.parametrize("case", bad_bundles.CASE_IDS)
def test_bad_bundle_is_refused_and_changes_nothing(case, corpus, source, tmp_path, scratch):
    path, fragment = corpus[case]
    roots = (source.root, path.parent, tmp_path)
    before_fs = files_and_sizes(*roots, skip=scratch)
    before = registry_snapshot(source.registry)
    with pytest.raises(BundleError) as err:
        import_bundle(source.registry, path)
    assert fragment in str(err.value)
    assert registry_snapshot(source.registry) == before
    assert files_and_sizes(*roots, skip=scratch) == before_fs
    assert list(scratch.iterdir()) == []  # the private work dir is gone too


def test_bomb_is_refused_early(corpus):
    path, _ = corpus["decompression_bomb"]
    assert path.stat().st_size < 2 * 1024 * 1024  # 200 MiB of zeros, compressed
    start = time.perf_counter()
    with pytest.raises(BundleError, match=r"ratio above 100:1"):
        verify_bundle(path)
    assert time.perf_counter() - start < 2.0


def test_refusal_messages_say_what_the_file_is(corpus):
    message = str(pytest.raises(BundleError, verify_bundle, corpus["real_pickle_pkl"][0]).value)
    assert message.startswith("'ethusdt_model_backup.pkl' is a Python pickle")
    assert "expected a bundle written by `ticker-registry export`" in message
    with pytest.raises(BundleError, match="does not exist"):
        verify_bundle(corpus["empty_file"][0].parent / "nope.trbundle")
    with pytest.raises(BundleError, match="is not a regular file"):
        verify_bundle(corpus["empty_file"][0].parent)


# --------------------------------------------------------------------------- export
def test_export_writes_a_complete_deterministic_manifest(source, tmp_path):
    m = source.manifest
    assert isinstance(m, BundleManifest) and m.format_version == BUNDLE_FORMAT_VERSION
    assert (m.ticker, m.model_name, m.model_version, m.model_type) == (
        "ETHUSDT", "order_flow.ETHUSDT", 1, "xgboost")
    assert m.source_registry == source.registry.tracking_uri
    info = source.registry.get_version("ETHUSDT", 1)
    assert m.tags == info.tags and m.idempotency_key == info.tags["idempotency_key"]
    assert m.lineage["fingerprint"] == info.tags["lineage.fingerprint"]
    assert m.params["model_type"] == "xgboost" and m.metrics == pytest.approx(info.metrics)
    assert m.description == info.description and m.package_versions["xgboost"]
    assert [x.name for x in m.members] == ["model/model.json", "model/flow_type.ubj",
                                           "model/impact.ubj", "model/time_to_execution.ubj"]
    with tarfile.open(source.good) as tar:
        names = tar.getnames()
        members = {x.name: tar.extractfile(x).read() for x in tar.getmembers()}
    assert names == ["manifest.json", *[x.name for x in m.members]]
    for member in m.members:
        assert hashlib.sha256(members[member.name]).hexdigest() == member.sha256
        assert len(members[member.name]) == member.size
    assert json.loads(members["manifest.json"]) == m.to_dict()
    again = tmp_path / "again.trbundle"
    export_bundle(source.registry, "ethusdt", again, 1)
    assert again.read_bytes() == source.good.read_bytes()  # same version, same bytes
    assert verify_bundle(source.good) == m


def test_export_by_alias_and_by_version_number(source, tmp_path):
    by_alias = export_bundle(source.registry, "ETHUSDT", tmp_path / "a.trbundle", "production")
    by_number = export_bundle(source.registry, "ETHUSDT", tmp_path / "b.trbundle", 2)
    by_text = export_bundle(source.registry, "ETHUSDT", tmp_path / "c.trbundle", "2")
    assert by_alias.model_version == 1 and by_number.model_version == by_text.model_version == 2
    assert by_number.idempotency_key != by_alias.idempotency_key


def test_export_of_a_missing_ticker_or_version_is_a_clear_error(source, tmp_path):
    target = tmp_path / "x.trbundle"
    with pytest.raises(ModelNotFoundError, match="BTCUSDT has no 'production' version"):
        export_bundle(source.registry, "BTCUSDT", target)
    with pytest.raises(ModelNotFoundError, match="ETHUSDT has no version 9"):
        export_bundle(source.registry, "ETHUSDT", target, 9)
    with pytest.raises(ModelNotFoundError, match="no 'staging' version"):
        export_bundle(source.registry, "ETHUSDT", target, "staging")
    assert list(tmp_path.iterdir()) == []


def test_export_all_backs_up_each_ticker_and_survives_a_failure(registry, trained, tmp_path):
    _register(registry, trained[0], "ETHUSDT")
    _register(registry, trained[1], "ETHUSDT", gate=False)
    broken = _register(registry, trained[2], "ADAUSDT")
    registry.store.client.create_registered_model("order_flow.XRPETH")  # no version yet
    seen = []
    prod = export_all(registry, tmp_path / "prod", progress=seen.append)
    assert [(r.ticker, r.version, r.status) for r in prod] == [
        ("ADAUSDT", 1, "exported"), ("ETHUSDT", 1, "exported"), ("XRPETH", None, "skipped")]
    assert seen == prod
    assert sorted(p.name for p in (tmp_path / "prod").iterdir()) == [
        "ADAUSDT-v1.trbundle", "ETHUSDT-v1.trbundle"]
    shutil.rmtree(Path(broken.source.removeprefix("file://")))  # ADAUSDT's artifacts vanish
    everything = export_all(registry, tmp_path / "all", which="all")
    rows = [(r.ticker, r.version, r.status) for r in everything]
    assert rows == [("ADAUSDT", 1, "failed"), ("ETHUSDT", 1, "exported"),
                    ("ETHUSDT", 2, "exported"), ("XRPETH", None, "skipped")]
    assert not everything[0].ok and everything[0].message
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == [
        "ETHUSDT-v1.trbundle", "ETHUSDT-v2.trbundle"]


def test_source_registry_never_carries_a_password():
    assert redact_uri("postgresql+psycopg2://ml:s3cret@db:5432/mlflow") == \
        "postgresql+psycopg2://ml:***@db:5432/mlflow"
    assert "s3cret" not in redact_uri("https://:s3cret@host/x?token=s3cret&a=1")
    assert redact_uri("sqlite:////tmp/store/mlflow.db") == "sqlite:////tmp/store/mlflow.db"


# --------------------------------------------------------------------------- import
def test_round_trip_across_stores(source, registry, trained, tmp_path, scratch):
    name = tmp_path / "ethusdt_model_backup.pkl"  # the seed's name; the content is ours
    name.write_bytes(source.good.read_bytes())
    result = import_bundle(registry, name, promote=True)
    assert result.created and result.version.version == 1
    assert result.decision.promoted and registry.production_version("ETHUSDT") == 1
    imported = registry.load_model("ETHUSDT")
    X = trained[0].X_valid
    assert np.array_equal(imported.predict_matrix(X.to_numpy()),
                          source.registry.load_model("ETHUSDT").predict_matrix(X.to_numpy()))
    a = source.registry.get_version("ETHUSDT", 1)
    b = registry.get_version("ETHUSDT", 1)
    assert b.metrics == a.metrics
    run_a = source.registry.store.client.get_run(a.run_id).data
    run_b = registry.store.client.get_run(b.run_id).data
    own = {k: v for k, v in run_a.metrics.items() if not k.startswith("fold_")}
    assert run_b.metrics == own and run_b.params == run_a.params
    for key, value in a.tags.items():
        if key.startswith("lineage."):
            assert b.tags[key] == value
    assert b.tags["imported_from"] == "ethusdt_model_backup.pkl"
    assert b.tags["import.source_model"] == "order_flow.ETHUSDT"
    assert b.tags["import.source_version"] == "1"
    assert b.tags["import.source_registry"] == source.registry.tracking_uri
    assert b.tags["import.bundle_sha256"] == hashlib.sha256(name.read_bytes()).hexdigest()
    assert b.tags["idempotency_key"] == "import-" + b.tags["import.bundle_sha256"][:24]
    assert b.tags["source.idempotency_key"] == a.tags["idempotency_key"]
    assert b.tags["source.gate.reason"] == a.tags["gate.reason"]
    assert b.tags["gate.reason"].startswith("first version of this ticker")
    assert b.description.startswith(a.description) and "Imported from" in b.description
    assert list(scratch.iterdir()) == []


def test_an_import_lands_on_staging_unless_promoted(source, registry):
    result = import_bundle(registry, source.good)  # a new ticker, but the bundle's claims
    assert result.created and not result.decision.promoted
    assert registry.production_version("ETHUSDT") is None
    assert registry.resolve("ETHUSDT", "staging").version == result.version.version
    assert "promote it explicitly" in result.decision.reason


def test_imported_version_loads_with_plain_mlflow(source, registry, trained, monkeypatch):
    import_bundle(registry, source.good, promote=True)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)
    pyfunc = mlflow.pyfunc.load_model("models:/order_flow.ETHUSDT@production")
    X = trained[0].X_valid.iloc[:25].reset_index(drop=True)
    pd.testing.assert_frame_equal(pyfunc.predict(X), trained[0].model.predict(X),
                                  check_dtype=False)


def test_reimport_is_idempotent_and_force_makes_a_new_version(source, registry):
    first = import_bundle(registry, source.good, promote=True)
    before = registry_snapshot(registry)
    again = import_bundle(registry, source.good)
    assert not again.created and again.version.version == first.version.version
    assert registry_snapshot(registry) == before
    forced = import_bundle(registry, source.good, force=True)
    assert forced.created and forced.version.version == 2
    assert forced.version.tags["idempotency_key"] != first.version.tags["idempotency_key"]
    assert not forced.decision.promoted  # equal skill does not beat the champion
    assert registry.production_version("ETHUSDT") == 1
    assert registry.resolve("ETHUSDT", "staging").version == 2


def test_import_as_another_ticker(source, registry):
    result = import_bundle(registry, source.good, as_ticker="btcusdt")
    assert result.version.name == "order_flow.BTCUSDT" and result.version.ticker == "BTCUSDT"
    assert result.version.tags["ticker"] == "BTCUSDT"
    assert result.version.tags["source.ticker"] == "ETHUSDT"
    assert result.manifest.ticker == "ETHUSDT"
    with pytest.raises(ModelNotFoundError):
        registry.resolve("ETHUSDT")


def test_uncompressed_tar_is_accepted(source, tmp_path):
    plain = tmp_path / "plain.tar"
    plain.write_bytes(gzip.decompress(source.good.read_bytes()))
    assert verify_bundle(plain) == source.manifest


# --------------------------------------------------------------------------- properties
_fuzz = settings(max_examples=int(os.environ.get("BUNDLE_FUZZ_EXAMPLES", "150")), deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def fuzz_file(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "case.trbundle"


def _verify_bytes(path: Path, data: bytes) -> BundleManifest:
    path.write_bytes(data)
    return verify_bundle(path)


@_fuzz
@given(data=st.binary(max_size=4096))
def test_random_bytes_are_a_bundle_error(fuzz_file, data):
    with pytest.raises(BundleError):
        _verify_bytes(fuzz_file, data)


_NAMES = st.one_of(
    st.sampled_from(["manifest.json", "model/model.json", "model/flow_type.ubj",
                     "model/impact.ubj", "/abs", "../up", "a\\b", "MLmodel", "x.py", "m.pkl",
                     "model/", "model//x", "./model/model.json"]),
    st.text(min_size=1, max_size=40))
_TYPES = st.sampled_from([tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
                          tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.DIRTYPE, tarfile.FIFOTYPE,
                          tarfile.CONTTYPE, b"x", b"g"])
_MEMBERS = st.lists(st.tuples(_NAMES, _TYPES, st.binary(max_size=600)), max_size=8)


def _manifest_for(members, fields) -> bytes:
    doc = {"format": "ticker-registry-bundle", "format_version": 1, "model_type": "xgboost",
           "members": [{"name": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
                       for n, _t, d in members], **fields}
    return json.dumps(doc).encode()


@_fuzz
@given(members=_MEMBERS, gz=st.booleans(), manifest_kind=st.integers(0, 3),
       fields=st.dictionaries(st.sampled_from(["ticker", "tags", "params", "members", "x"]),
                              st.one_of(st.none(), st.integers(), st.text(max_size=5)),
                              max_size=3))
def test_random_tar_members_are_a_bundle_error(fuzz_file, members, gz, manifest_kind, fields):
    entries = []
    if manifest_kind == 1:
        entries.append(bad_bundles.Entry("manifest.json", _manifest_for(members, fields)))
    elif manifest_kind == 2:
        entries.append(bad_bundles.Entry("manifest.json", json.dumps(fields).encode()))
    for name, kind, data in members:
        entries.append(bad_bundles.Entry(name, data, type=kind, linkname="target"))
    try:
        raw = bad_bundles.tar_bytes(entries)
    except (ValueError, UnicodeError, tarfile.TarError):
        return  # tarfile itself cannot write this member
    with pytest.raises(BundleError):
        _verify_bytes(fuzz_file, gzip.compress(raw) if gz else raw)


@_fuzz
@given(data=st.data())
def test_damaged_good_bundles_never_raise_anything_else(source, fuzz_file, data):
    raw = bytearray(source.good.read_bytes() if data.draw(st.booleans())
                    else gzip.decompress(source.good.read_bytes()))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        if op == "flip" and raw:
            raw[pos] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del raw[pos:pos + data.draw(st.integers(1, 2048))]
        else:
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=64))
    try:
        _verify_bytes(fuzz_file, bytes(raw))
    except BundleError:
        pass


def test_manifest_round_trips_through_json(source):
    assert BundleManifest.from_dict(json.loads(json.dumps(source.manifest.to_dict()))) == \
        source.manifest
    doc = source.manifest.to_dict()
    with pytest.raises(BundleError, match="not a map of numbers"):
        BundleManifest.from_dict({**doc, "metrics": {"a": "1"}})


def test_subprocess_check_loads_and_predicts(source, tmp_path):
    from ticker_registry.bundle import check_in_subprocess

    info = source.registry.get_version("ETHUSDT", 1)
    native = source.registry.download_native(info)
    copy = tmp_path / "model"
    shutil.copytree(native, copy)
    expected = source.registry.load_model("ETHUSDT", 1).predict_matrix(np.zeros((1, len(FEATURE_NAMES))))[0]
    assert check_in_subprocess(copy) == pytest.approx(list(expected), rel=1e-12)


def test_tags_of_a_chain_of_imports_nest_under_source(source):
    from ticker_registry.bundle import _import_tags

    manifest = replace(source.manifest, tags={
        "ticker": "BTCUSDT", "source.ticker": "ETHUSDT", "gate.reason": "r", "note": "kept",
        "lineage.n_samples": "9", "import.source_version": "3", "imported_from": "a.trbundle"})
    tags = _import_tags(manifest, "b.trbundle", "f" * 64)
    assert tags["source.ticker"] == "BTCUSDT" and tags["source.source.ticker"] == "ETHUSDT"
    assert tags["source.gate.reason"] == "r" and tags["note"] == "kept"
    assert tags["source.import.source_version"] == "3" and tags["import.source_version"] == "1"
    assert tags["source.imported_from"] == "a.trbundle" and tags["imported_from"] == "b.trbundle"
    assert "lineage.n_samples" not in tags and "ticker" not in tags
