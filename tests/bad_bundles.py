"""A corpus of crafted bad bundles, built from one good exported bundle.

Each case breaks one rule of :mod:`ticker_registry.bundle` and names the
fragment the refusal message must contain. ``build_corpus(good, out_dir)``
writes every case and returns ``{case_id: (path, fragment)}``; ``CASE_IDS``
lists them for ``pytest.mark.parametrize``. Everything is cheap to build: the
200 MB decompression bomb is a chain of identical 1 MiB gzip members; the
largest cases (a 3-million-node XGBoost tree, a 300 MiB skops schema, a
600 MiB zip entry) take about a second each. ``HOSTILE_IDS`` lists the cases
whose cost to refuse benchmark M2 measures.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import math
import pickle
import random
import struct
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

MiB = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One tar member to write, regular or not, with any name."""

    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    linkname: str = ""
    pax_path: str | None = None  # a name only a pax header can carry (NUL inside)


@dataclass
class Good:
    """The good bundle taken apart: its manifest and its member files, in order."""

    manifest: dict
    files: dict[str, bytes] = field(default_factory=dict)
    raw: bytes = b""

    def copy_manifest(self) -> dict:
        return json.loads(json.dumps(self.manifest))


def read_good(path: Path) -> Good:
    """Take apart a bundle we wrote ourselves (trusted input)."""
    raw = path.read_bytes()
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    manifest = json.loads(members[0][1])
    return Good(manifest, dict(members[1:]), raw)


def members_of(files: dict[str, bytes]) -> list[dict]:
    return [{"name": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
            for n, d in files.items()]


def manifest_entry(manifest: dict) -> Entry:
    return Entry("manifest.json", json.dumps(manifest, indent=2).encode())


def tar_bytes(entries: list[Entry]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type, info.linkname, info.mode, info.mtime = e.type, e.linkname, 0o644, 0
            if e.pax_path is not None:
                info.pax_headers = {"path": e.pax_path}
            if e.type in (tarfile.CHRTYPE, tarfile.BLKTYPE):
                info.devmajor, info.devminor = 1, 3  # /dev/null
            info.size = len(e.data) if e.type in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
            tar.addfile(info, io.BytesIO(e.data) if info.size else None)
    return buf.getvalue()


def header_block(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o644
    return info.tobuf(tarfile.USTAR_FORMAT)


def member_block(name: str, data: bytes) -> bytes:
    """One regular member, header and padded data, as raw tar bytes."""
    return header_block(name, len(data)) + data + b"\x00" * (-len(data) % 512)


def write(path: Path, entries: list[Entry], gz: bool = True, level: int = 9) -> Path:
    data = tar_bytes(entries)
    path.write_bytes(gzip.compress(data, compresslevel=level, mtime=0) if gz else data)
    return path


def standard(good: Good, manifest: dict | None = None,
             files: dict[str, bytes] | None = None) -> list[Entry]:
    """Manifest plus files, the manifest's members rehashed from ``files``."""
    files = dict(good.files if files is None else files)
    if manifest is None:
        manifest = good.copy_manifest()
        manifest["members"] = members_of(files)
    return [manifest_entry(manifest), *(Entry(n, d) for n, d in files.items())]


def after_manifest(good: Good, extra: Entry, drop: str | None = None) -> list[Entry]:
    """The good bundle with ``extra`` right after the manifest (replacing member ``drop``)."""
    entries = standard(good)
    rest = [e for e in entries[1:] if e.name != drop]
    return [entries[0], extra, *rest]


class Payload:
    """A type outside SKOPS_TRUSTED, for a skops file the importer must refuse."""

    def __init__(self) -> None:
        self.note = "not a model"


# --------------------------------------------------------------------------- cases
CASES: list[tuple[str, str, Callable[[Good, Path], Path]]] = []


def case(case_id: str, fragment: str):
    def register(fn: Callable[[Good, Path], Path]) -> Callable[[Good, Path], Path]:
        CASES.append((case_id, fragment, fn))
        return fn
    return register


HEAD = "model/flow_type.ubj"


@case("absolute_path", "is an absolute path")
def _absolute(g: Good, out: Path) -> Path:
    return write(out / "absolute.trbundle", after_manifest(g, Entry("/tmp/evil.ubj", b"{}")))


@case("dotdot", "climbs out of the bundle with '..'")
def _dotdot(g: Good, out: Path) -> Path:
    return write(out / "dotdot.trbundle",
                 after_manifest(g, Entry("model/../../../evil.ubj", b"{}")))


@case("backslash", "contains a backslash")
def _backslash(g: Good, out: Path) -> Path:
    return write(out / "backslash.trbundle",
                 after_manifest(g, Entry("model\\flow_type.ubj", g.files[HEAD]), drop=HEAD))


@case("nul_in_name", "contains a NUL byte")
def _nul(g: Good, out: Path) -> Path:
    entry = Entry("model/flow_type.ubj", g.files[HEAD], pax_path="model/flow_type.ubj\x00.sh")
    return write(out / "nul.trbundle", after_manifest(g, entry, drop=HEAD))


@case("duplicate_member", "appears twice")
def _duplicate(g: Good, out: Path) -> Path:
    entries = standard(g)
    return write(out / "duplicate.trbundle", [*entries, Entry(HEAD, g.files[HEAD])])


@case("duplicate_manifest", "appears twice")
def _duplicate_manifest(g: Good, out: Path) -> Path:
    entries = standard(g)
    return write(out / "duplicate-manifest.trbundle", [entries[0], *entries])


@case("symlink", "is a symbolic link")
def _symlink(g: Good, out: Path) -> Path:
    entry = Entry(HEAD, type=tarfile.SYMTYPE, linkname="/etc/passwd")
    return write(out / "symlink.trbundle", after_manifest(g, entry, drop=HEAD))


@case("hardlink", "is a hard link")
def _hardlink(g: Good, out: Path) -> Path:
    entry = Entry(HEAD, type=tarfile.LNKTYPE, linkname="manifest.json")
    return write(out / "hardlink.trbundle", after_manifest(g, entry, drop=HEAD))


@case("device", "is a device")
def _device(g: Good, out: Path) -> Path:
    entry = Entry(HEAD, type=tarfile.CHRTYPE)
    return write(out / "device.trbundle", after_manifest(g, entry, drop=HEAD))


@case("fifo", "is a FIFO")
def _fifo(g: Good, out: Path) -> Path:
    entry = Entry(HEAD, type=tarfile.FIFOTYPE)
    return write(out / "fifo.trbundle", after_manifest(g, entry, drop=HEAD))


@case("directory", "is a directory")
def _directory(g: Good, out: Path) -> Path:
    return write(out / "directory.trbundle", after_manifest(g, Entry("model", type=tarfile.DIRTYPE)))


@case("not_in_allow_list", "is not listed in the manifest")
def _unlisted(g: Good, out: Path) -> Path:
    return write(out / "unlisted.trbundle", [*standard(g), Entry("model/notes.txt", b"tree\n")])


@case("missing_member", "ends before member(s) ['model/impact.ubj']")
def _missing(g: Good, out: Path) -> Path:
    entries = [e for e in standard(g) if e.name != "model/impact.ubj"]
    return write(out / "missing.trbundle", entries)


@case("sha_mismatch", "the file was altered or damaged")
def _sha(g: Good, out: Path) -> Path:
    entries = standard(g)
    flipped = []
    for e in entries:
        if e.name == HEAD:
            data = bytearray(e.data)
            data[len(data) // 2] ^= 0x01
            e = replace(e, data=bytes(data))
        flipped.append(e)
    return write(out / "flipped.trbundle", flipped)


@case("sha_mismatch_plain_tar", "sha256 of 'model/model.json'")
def _sha_plain(g: Good, out: Path) -> Path:
    entries = standard(g)
    changed = [replace(e, data=e.data.replace(b'"n_jobs": 1', b'"n_jobs": 2'))
               if e.name == "model/model.json" else e for e in entries]
    assert changed != entries
    return write(out / "plain.tar", changed, gz=False)


@case("truncated", "truncated")
def _truncated(g: Good, out: Path) -> Path:
    path = out / "truncated.trbundle"
    path.write_bytes(g.raw[: len(g.raw) // 2])
    return path


@case("truncated_plain_tar", "truncated")
def _truncated_plain(g: Good, out: Path) -> Path:
    data = tar_bytes(standard(g))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        last = tar.getmembers()[-1]
    path = out / "truncated.tar"
    path.write_bytes(data[: last.offset_data + last.size // 2])  # cut inside the last member
    return path


@case("size_lie", "declares")
def _size_lie(g: Good, out: Path) -> Path:
    manifest = g.copy_manifest()
    manifest["members"] = members_of(g.files)
    manifest["members"][1]["size"] += 1
    return write(out / "size-lie.trbundle", standard(g, manifest))


@case("size_over_cap", "above the 512 MiB cap")
def _size_cap(g: Good, out: Path) -> Path:
    manifest = g.copy_manifest()
    manifest["members"] = members_of(g.files)
    manifest["members"][1]["size"] = 600 * MiB
    return write(out / "size-cap.trbundle", standard(g, manifest))


@case("names_lie", "which is not part of a xgboost bundle")
def _names_lie(g: Good, out: Path) -> Path:
    files = {**g.files, "model/extra.bin": b"\x00" * 10}
    return write(out / "names-lie.trbundle", standard(g, files=files))


@case("model_type_lie", "which is not part of a lightgbm bundle")
def _type_lie(g: Good, out: Path) -> Path:
    manifest = g.copy_manifest()
    manifest["model_type"] = "lightgbm"
    manifest["members"] = members_of(g.files)
    return write(out / "type-lie.trbundle", standard(g, manifest))


@case("unknown_format_version", "bundle format version 99")
def _format_version(g: Good, out: Path) -> Path:
    manifest = g.copy_manifest()
    manifest["format_version"] = 99
    return write(out / "v99.trbundle", standard(g, manifest))


@case("manifest_not_first", "the first member is 'model/flow_type.ubj'")
def _not_first(g: Good, out: Path) -> Path:
    entries = standard(g)
    return write(out / "not-first.trbundle", [entries[2], entries[0], entries[1], *entries[3:]])


@case("manifest_not_json", "manifest.json is not valid JSON")
def _not_json(g: Good, out: Path) -> Path:
    entries = standard(g)
    return write(out / "not-json.trbundle", [Entry("manifest.json", b"{not json"), *entries[1:]])


@case("manifest_duplicate_key", "duplicate key 'format_version'")
def _dup_key(g: Good, out: Path) -> Path:
    entries = standard(g)
    body = entries[0].data.decode().replace('"format_version": 1',
                                            '"format_version": 1, "format_version": 2')
    return write(out / "dup-key.trbundle", [Entry("manifest.json", body.encode()), *entries[1:]])


@case("manifest_trust_list", "unknown field(s) ['skops_trusted']")
def _trust_list(g: Good, out: Path) -> Path:
    manifest = g.copy_manifest()
    manifest["members"] = members_of(g.files)
    manifest["skops_trusted"] = ["builtins.eval", "os.system"]
    return write(out / "trust-list.trbundle", standard(g, manifest))


@case("model_json_trust_list", "model/model.json has unknown field(s) ['trusted']")
def _model_json_trust(g: Good, out: Path) -> Path:
    doc = json.loads(g.files["model/model.json"])
    doc["trusted"] = ["builtins.exec"]
    files = {**g.files, "model/model.json": json.dumps(doc).encode()}
    return write(out / "model-json-trust.trbundle", standard(g, files=files))


@case("decompression_bomb", "a decompression bomb")
def _bomb(g: Good, out: Path) -> Path:
    """200 MiB of zeros behind a valid header: 200 identical gzip members of 1 MiB each."""
    size = 200 * MiB
    manifest = g.copy_manifest()
    manifest["members"] = members_of(g.files)
    manifest["members"][1].update(size=size, sha256=hashlib.sha256(b"").hexdigest())  # never reached
    head = member_block("manifest.json", json.dumps(manifest).encode())
    head += header_block(HEAD, size) + b"{"  # a plausible first byte, then zeros
    zeros = gzip.compress(b"\x00" * MiB, mtime=0)
    path = out / "bomb.trbundle"
    with open(path, "wb") as f:
        f.write(gzip.compress(head, mtime=0))
        for _ in range(size // MiB):
            f.write(zeros)
    return path


@case("too_many_members", "manifest lists 40 members; a bundle has at most 16")
def _too_many(g: Good, out: Path) -> Path:
    files = {**g.files, **{f"model/extra{i}.ubj": b"{}" for i in range(36)}}
    return write(out / "many.trbundle", standard(g, files=files))


@case("pickle_as_head", "is a Python pickle payload (protocol 4 header)")
def _pickle_head(g: Good, out: Path) -> Path:
    files = {**g.files, HEAD: pickle.dumps({"booster": list(range(10))}, protocol=4)}
    return write(out / "pickle-head.trbundle", standard(g, files=files))


@case("pickle_named_member", "is named like a pickle/joblib payload")
def _pickle_named(g: Good, out: Path) -> Path:
    return write(out / "pickle-named.trbundle",
                 after_manifest(g, Entry("model/python_model.joblib", b"{}")))


@case("py_member_listed", "manifest lists member 'model/pyfunc_model.py', which is code")
def _py_member(g: Good, out: Path) -> Path:
    files = {**g.files, "model/pyfunc_model.py": b"import os\nos.system('echo pwned')\n"}
    return write(out / "py-member.trbundle", standard(g, files=files))


@case("mlmodel_member", "member 'MLmodel' is code or an MLflow model definition")
def _mlmodel(g: Good, out: Path) -> Path:
    body = b"flavors:\n  python_function:\n    loader_module: os\n"
    return write(out / "mlmodel.trbundle", after_manifest(g, Entry("MLmodel", body)))


@case("skops_untrusted_type", "contains types outside our allow-list")
def _skops(g: Good, out: Path) -> Path:
    import skops.io as sio

    evil = sio.dumps(Payload())
    doc = json.loads(g.files["model/model.json"])
    doc["model_type"] = "random_forest"
    doc["config"]["model_type"] = "random_forest"
    doc["heads"] = {h: f"{h}.skops" for h in doc["heads"]}
    files = {"model/model.json": json.dumps(doc).encode(),
             **{f"model/{h}.skops": evil for h in doc["heads"]}}
    manifest = g.copy_manifest()
    manifest["model_type"] = "random_forest"
    manifest["members"] = members_of(files)
    return write(out / "skops-untrusted.trbundle", standard(g, manifest, files))


def _craft_xgb_tree(g: Good, out: Path, name: str, edit: Callable[[dict], None]) -> Path:
    """The good bundle with tree 0 of its flow_type head edited by ``edit`` (a JSON tree)."""
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(bytearray(g.files[HEAD]))
    doc = json.loads(bytes(booster.save_raw("json")))
    edit(doc["learner"]["gradient_booster"]["model"]["trees"][0])
    crafted = xgb.Booster()
    crafted.load_model(bytearray(json.dumps(doc).encode()))
    files = {**g.files, HEAD: bytes(crafted.save_raw("ubj"))}
    return write(out / name, standard(g, files=files))


@case("xgboost_tree_out_of_range", "a split feature index is out of range")
def _xgb_tree(g: Good, out: Path) -> Path:
    def edit(tree: dict) -> None:
        tree["split_indices"][0] = 100_000  # predicting with this reads out of bounds

    return _craft_xgb_tree(g, out, "xgb-tree.trbundle", edit)


@case("xgboost_tree_cycle", "the nodes do not form a tree")
def _xgb_cycle(g: Good, out: Path) -> Path:
    def edit(tree: dict) -> None:
        inner = [i for i, c in enumerate(tree["left_children"]) if c != -1 and i > 1]
        # back up the tree to an inner node near the top: a cycle (or a shared child)
        tree["left_children"][inner[-1]] = tree["left_children"][0]

    return _craft_xgb_tree(g, out, "xgb-cycle.trbundle", edit)


@case("real_pickle_pkl", "is a Python pickle, not a ticker-registry bundle; pickles are "
                         "never loaded because they can run code")
def _real_pickle(g: Good, out: Path) -> Path:
    path = out / "ethusdt_model_backup.pkl"
    path.write_bytes(pickle.dumps({"model": [1, 2, 3], "scaler": None}))
    return path


@case("empty_file", "is empty (0 bytes), not a ticker-registry bundle")
def _empty(g: Good, out: Path) -> Path:
    path = out / "empty.trbundle"
    path.write_bytes(b"")
    return path


@case("random_bytes", "is binary data of an unknown kind")
def _random(g: Good, out: Path) -> Path:
    data = bytearray(random.Random(7).randbytes(4096))
    data[0] = 0xFE  # not a pickle, gzip or zip magic by chance
    path = out / "random.trbundle"
    path.write_bytes(bytes(data))
    return path


@case("plain_zip", "is a ZIP archive")
def _zip(g: Good, out: Path) -> Path:
    path = out / "backup.zip"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in g.files.items():
            z.writestr(name, data)
    return path


@case("text_file", "is a text file, not a ticker-registry bundle")
def _text(g: Good, out: Path) -> Path:
    path = out / "notes.trbundle"
    path.write_text("these are not the models you are looking for\n")
    return path


@case("gzip_not_tar", "is gzip-compressed data that is not a tar archive")
def _gzip_text(g: Good, out: Path) -> Path:
    path = out / "log.gz"
    path.write_bytes(gzip.compress(b"2024-01-01 trained ETHUSDT\n" * 50, mtime=0))
    return path


# --------------------------------------------------------------------------- bounded content
def _edit_model_json(g: Good, out: Path, name: str, edit: Callable[[dict], None],
                     manifest_edit: Callable[[dict], None] | None = None) -> Path:
    """The good bundle with its model.json (and optionally its manifest) edited."""
    doc = json.loads(g.files["model/model.json"])
    edit(doc)
    files = {**g.files, "model/model.json": json.dumps(doc).encode()}
    manifest = g.copy_manifest()
    if manifest_edit is not None:
        manifest_edit(manifest)
    manifest["members"] = members_of(files)
    return write(out / name, standard(g, manifest, files))


def _other_type(g: Good, out: Path, name: str, model_type: str,
                heads: dict[str, bytes], gz: bool = True) -> Path:
    """A ``model_type`` bundle of the good bundle's model.json with the head files ``heads``."""
    suffix = {"lightgbm": ".txt", "random_forest": ".skops"}[model_type]
    doc = json.loads(g.files["model/model.json"])
    doc["model_type"] = doc["config"]["model_type"] = model_type
    doc["heads"] = {h: f"{h}{suffix}" for h in doc["heads"]}
    files = {"model/model.json": json.dumps(doc).encode(),
             **{f"model/{h}{suffix}": heads[h] for h in doc["heads"]}}
    manifest = g.copy_manifest()
    manifest["model_type"] = model_type
    manifest["members"] = members_of(files)
    return write(out / name, standard(g, manifest, files), gz=gz)


def _training_rows(n_classes: int):
    import numpy as np

    from ticker_registry.features import FEATURE_NAMES

    rng = np.random.default_rng(3)
    X = rng.normal(size=(600, len(FEATURE_NAMES)))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5) if n_classes else X[:, 0] + rng.normal(size=600)
    return X, y


@functools.cache
def forest_heads() -> dict[str, bytes]:
    """Small scikit-learn forests as skops files: a classifier and two regressors."""
    import skops.io as sio
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    out = {}
    for head in ("flow_type", "impact", "time_to_execution"):
        classes = 3 if head == "flow_type" else 0
        cls = RandomForestClassifier if classes else RandomForestRegressor
        out[head] = sio.dumps(cls(n_estimators=3, max_depth=4, random_state=0).fit(
            *_training_rows(classes)))
    return out


@functools.cache
def lightgbm_heads() -> dict[str, str]:
    """Small LightGBM boosters as model text: a 3-class classifier and two regressors."""
    import lightgbm as lgb

    out = {}
    for head in ("flow_type", "impact", "time_to_execution"):
        X, y = _training_rows(3 if head == "flow_type" else 0)
        params = {"num_leaves": 8, "min_data_in_leaf": 5, "verbosity": -1,
                  **({"objective": "multiclass", "num_class": 3} if head == "flow_type"
                     else {"objective": "regression"})}
        out[head] = lgb.train(params, lgb.Dataset(X, label=y), num_boost_round=3).model_to_string()
    return out


def _xgb_doc(g: Good) -> dict:
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(bytearray(g.files[HEAD]))
    return json.loads(bytes(booster.save_raw("json")))


def _tree_arrays(tree: dict, left, right) -> None:
    """Fill XGBoost JSON tree ``tree`` with the structure ``left``/``right`` (-1: leaf)."""
    n = len(left)
    parents = [2147483647] * n
    for i in range(n):
        for c in (left[i], right[i]):
            if c != -1:
                parents[c] = i
    tree.update(left_children=list(left), right_children=list(right), parents=parents,
                split_indices=[0] * n, split_conditions=[0.5] * n, default_left=[0] * n,
                base_weights=[0.0] * n, loss_changes=[0.0] * n, sum_hessian=[1.0] * n,
                split_type=[0] * n)
    tree["tree_param"]["num_nodes"] = str(n)


@case("xgboost_tree_too_deep", "deeper than 16 (MAX_TREE_DEPTH)")
def _xgb_deep(g: Good, out: Path) -> Path:
    depth = 20  # a chain: inner node i splits into inner node i+1 and a leaf
    left = [i + 1 for i in range(depth - 1)] + [2 * depth - 1] + [-1] * (depth + 1)
    right = [depth + i for i in range(depth - 1)] + [2 * depth] + [-1] * (depth + 1)
    return _craft_xgb_tree(g, out, "xgb-deep.trbundle", lambda t: _tree_arrays(t, left, right))


@case("xgboost_tree_detached_cycle", "nodes unreachable from the root")
def _xgb_detached(g: Good, out: Path) -> Path:
    # every node but the root has one parent, yet 1 and 2 are each other's child, away
    # from the root: the one-parent rule alone lets this pass
    left, right = [5, 2, 1, -1, -1, -1, -1], [6, 3, 4, -1, -1, -1, -1]
    return _craft_xgb_tree(g, out, "xgb-detached.trbundle",
                           lambda t: _tree_arrays(t, left, right))


def _ubj(value) -> bytes:
    """UBJSON as XGBoost writes it; numpy arrays become typed arrays."""
    import numpy as np

    def length(n: int) -> bytes:
        return b"L" + struct.pack(">q", n)

    if isinstance(value, dict):
        return b"{" + b"".join(length(len(k.encode())) + k.encode() + _ubj(v)
                               for k, v in value.items()) + b"}"
    if isinstance(value, np.ndarray):
        marker = {"int32": b"l", "float32": b"d", "uint8": b"U"}[value.dtype.name]
        data = value.astype(value.dtype.newbyteorder(">")).tobytes()
        return b"[$" + marker + b"#" + length(len(value)) + data
    if isinstance(value, list):
        return b"[#" + length(len(value)) + b"".join(_ubj(v) for v in value)
    if isinstance(value, bool):
        return b"T" if value else b"F"
    if isinstance(value, int):
        return b"L" + struct.pack(">q", value)
    if isinstance(value, float):
        return b"D" + struct.pack(">d", value)
    return b"S" + length(len(value.encode())) + value.encode()


@case("xgboost_tree_3m_nodes", "an array of 3,000,001 items, above the 131,071")
def _xgb_huge(g: Good, out: Path) -> Path:
    """Tree 0 of flow_type replaced by a full binary tree of 3,000,001 nodes (~100 MB of UBJ)."""
    import numpy as np

    n = 3_000_001
    idx = np.arange(n, dtype=np.int64)
    inner = idx < (n - 1) // 2
    left = np.where(inner, 2 * idx + 1, -1).astype(np.int32)
    rng = np.random.default_rng(0)
    doc = _xgb_doc(g)
    model = doc["learner"]["gradient_booster"]["model"]
    tree = model["trees"][0]
    floats = {k: rng.random(n, dtype=np.float32) for k in
              ("base_weights", "loss_changes", "split_conditions", "sum_hessian")}
    tree.update(floats, left_children=left, right_children=np.where(inner, left + 1, -1).astype(
        np.int32), parents=np.where(idx > 0, (idx - 1) // 2, 2147483647).astype(np.int32),
        split_indices=np.where(inner, idx % 8, 0).astype(np.int32),
        default_left=np.zeros(n, dtype=np.uint8), split_type=np.zeros(n, dtype=np.uint8))
    tree["tree_param"]["num_nodes"] = str(n)
    files = {**g.files, HEAD: _ubj(doc)}
    return write(out / "xgb-3m-nodes.trbundle", standard(g, files=files), level=1)


@case("xgboost_tree_group_out_of_range", "a tree writes to an output group out of range")
def _xgb_group(g: Good, out: Path) -> Path:
    doc = _xgb_doc(g)
    doc["learner"]["gradient_booster"]["model"]["tree_info"][0] = 7  # 3 classes: 0..2
    files = {**g.files, HEAD: _ubj(doc)}
    return write(out / "xgb-group.trbundle", standard(g, files=files))


@case("lightgbm_tree_cycle", "the nodes do not form a tree")
def _lgb_cycle(g: Good, out: Path) -> Path:
    heads = dict(lightgbm_heads())
    lines = heads["flow_type"].split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith("left_child="))
    children = lines[at].split("=")[1].split()
    j = next(k for k, c in enumerate(children) if k > 0 and int(c) >= 0) if any(
        int(c) >= 0 for c in children[1:]) else 1
    children[j] = str(j)  # inner node j is its own left child
    lines[at] = "left_child=" + " ".join(children)
    heads["flow_type"] = "\n".join(lines)
    return _other_type(g, out, "lgb-cycle.trbundle", "lightgbm",
                       {h: t.encode() for h, t in heads.items()})


@case("lightgbm_too_many_leaves", "100,000 leaves; a lightgbm tree of ours has at most 4,096")
def _lgb_leaves(g: Good, out: Path) -> Path:
    heads = {h: t.encode() for h, t in lightgbm_heads().items()}
    text = heads["flow_type"].decode()
    at = text.index("num_leaves=", text.index("Tree=0"))
    end = text.index("\n", at)
    heads["flow_type"] = (text[:at] + "num_leaves=100000" + text[end:]).encode()
    return _other_type(g, out, "lgb-leaves.trbundle", "lightgbm", heads)


@case("random_forest_tree_cycle", "the nodes do not form a tree")
def _rf_cycle(g: Good, out: Path) -> Path:
    import skops.io as sio

    heads = dict(forest_heads())
    forest = sio.loads(heads["flow_type"], trusted=sio.get_untrusted_types(data=heads["flow_type"]))
    tree = forest.estimators_[0].tree_
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    j = next(k for k in range(1, len(nodes)) if nodes["left_child"][k] != -1)
    nodes["left_child"][j] = j  # inner node j is its own left child
    tree.__setstate__({**state, "nodes": nodes})
    heads["flow_type"] = sio.dumps(forest)
    return _other_type(g, out, "rf-cycle.trbundle", "random_forest", heads)


@case("skops_huge_schema", "its schema.json is 314,572,800 bytes")
def _skops_schema(g: Good, out: Path) -> Path:
    """A skops zip whose schema.json is 300 MiB of valid JSON, deflated to ~300 KB."""
    buf = io.BytesIO()
    head = b'{"__class__": "RandomForestClassifier", "__module__": "sklearn.ensemble._forest", ' \
           b'"__loader__": "ObjectNode", "content": {"pad": ['
    tail = b'0]}}'
    size = 300 * MiB
    pad = b" " * ((size - len(head) - len(tail)) % 3)
    items = (size - len(head) - len(pad) - len(tail)) // 3
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z, \
            z.open("schema.json", "w") as f:
        f.write(head + pad)
        while items:
            n = min(items, MiB)
            f.write(b"0, " * n)
            items -= n
        f.write(tail)
    heads = {**forest_heads(), "flow_type": buf.getvalue()}
    return _other_type(g, out, "skops-schema.trbundle", "random_forest", heads)


@case("skops_zip_bomb_member", "zip entry 'bomb.npy' decompresses")
def _skops_bomb(g: Good, out: Path) -> Path:
    """A real forest's skops zip plus a 600 MiB entry of zeros, deflated to ~3 MB."""
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(forest_heads()["flow_type"])) as src, \
            zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for info in src.infolist():
            z.writestr(info, src.read(info))  # as they are (stored)
        with z.open("bomb.npy", "w", force_zip64=True) as f:
            zeros = b"\x00" * MiB
            for _ in range(600):
                f.write(zeros)
    # a plain tar: the zip's deflated zeros would compress again and trip the bundle's own
    # ratio check first; this case is about the skops check
    return _other_type(g, out, "skops-bomb.tar", "random_forest",
                       {**forest_heads(), "flow_type": buf.getvalue()}, gz=False)


@case("metrics_30000", "holds 30,000 metrics; a bundle carries at most 200")
def _metrics_many(g: Good, out: Path) -> Path:
    def edit(doc: dict) -> None:
        doc["metrics"] = {f"m{i}": float(i) for i in range(30_000)}  # ~600 KB: under 1 MiB
    return _edit_model_json(g, out, "metrics-30000.trbundle", edit)


@case("manifest_metrics_30000", "holds 30,000 metrics; a bundle carries at most 200")
def _manifest_metrics_many(g: Good, out: Path) -> Path:
    def edit(manifest: dict) -> None:
        manifest["metrics"] = {f"m{i}": float(i) for i in range(30_000)}
    return _edit_model_json(g, out, "manifest-metrics.trbundle", lambda d: None, edit)


@case("metric_nan", "'flow_type_logloss' is nan; a metric must be finite")
def _metric_nan(g: Good, out: Path) -> Path:
    return _edit_model_json(g, out, "metric-nan.trbundle",
                            lambda d: d["metrics"].update(flow_type_logloss=math.nan))


@case("metric_huge", "'impact_mse' is 1e+15; a metric must be finite and at most 1e+12")
def _metric_huge(g: Good, out: Path) -> Path:
    return _edit_model_json(g, out, "metric-huge.trbundle",
                            lambda d: d["metrics"].update(impact_mse=1e15))


@case("metric_bad_key", "key '../skill' is not a plain relative name")
def _metric_key(g: Good, out: Path) -> Path:
    return _edit_model_json(g, out, "metric-key.trbundle",
                            lambda d: d["metrics"].update({"../skill": 1.0}))


@case("metric_tag_too_long", "is 252 characters long (MLflow's limit is 250)")
def _metric_long(g: Good, out: Path) -> Path:
    # 245 characters is a valid metric name, but its tag metric.<name> would be 252
    return _edit_model_json(g, out, "metric-long.trbundle",
                            lambda d: d["metrics"].update({"m" * 245: 1.0}))


@case("tag_reserved_namespace", "tag key 'mlflow.prompt.is_prompt' is in a namespace MLflow "
                                "reserves")
def _tag_reserved(g: Good, out: Path) -> Path:
    return _edit_model_json(g, out, "tag-reserved.trbundle", lambda d: None,
                            lambda m: m["tags"].update({"mlflow.prompt.is_prompt": "true"}))


@case("tag_dotdot", "tag key 'notes/../../x' is not a plain relative name")
def _tag_dotdot(g: Good, out: Path) -> Path:
    return _edit_model_json(g, out, "tag-dotdot.trbundle", lambda d: None,
                            lambda m: m["tags"].update({"notes/../../x": "1"}))


@case("tag_leading_slash", "tag key '/etc/notes' is not a plain relative name")
def _tag_slash(g: Good, out: Path) -> Path:
    return _edit_model_json(g, out, "tag-slash.trbundle", lambda d: None,
                            lambda m: m["tags"].update({"/etc/notes": "1"}))


@case("lineage_reserved_key", "lineage key 'lineage.a..b' is not a plain relative name")
def _lineage_key(g: Good, out: Path) -> Path:
    return _edit_model_json(g, out, "lineage-key.trbundle", lambda d: None,
                            lambda m: m["lineage"].update({"a..b": "1"}))


@case("spec_negative_window", "sequence_length")
def _spec_window(g: Good, out: Path) -> Path:
    return _edit_model_json(g, out, "spec-window.trbundle",
                            lambda d: d["feature_spec"].update(sequence_length=-5))


@case("spec_zero_horizon", "prediction_horizon")
def _spec_horizon(g: Good, out: Path) -> Path:
    return _edit_model_json(g, out, "spec-horizon.trbundle",
                            lambda d: d["feature_spec"].update(prediction_horizon=0))


@case("spec_nan_threshold", "large_order_threshold is nan, not a finite number")
def _spec_threshold(g: Good, out: Path) -> Path:
    return _edit_model_json(g, out, "spec-threshold.trbundle",
                            lambda d: d["feature_spec"].update(large_order_threshold=math.nan))


#: The hostile cases whose cost to refuse benchmark M2 measures (peak RSS and time each).
HOSTILE_IDS = ("xgboost_tree_3m_nodes", "skops_huge_schema", "skops_zip_bomb_member",
               "lightgbm_tree_cycle", "random_forest_tree_cycle", "metrics_30000",
               "decompression_bomb")


CASE_IDS = [c[0] for c in CASES]


def build_corpus(good_path: Path, out_dir: Path) -> dict[str, tuple[Path, str]]:
    """Write every case into ``out_dir``; return ``{case_id: (path, fragment)}``."""
    good = read_good(good_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    return {case_id: (build(good, out_dir), fragment) for case_id, fragment, build in CASES}


# --------------------------------------------------------------------------- stores
