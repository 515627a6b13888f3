"""Bad input, one table: every entry point refuses it with one of our errors and changes nothing.

Each row is one bad input given to the Python API or to the CLI (``CliRunner``
on ``ticker_registry.cli.cli`` with ``--models-dir``), covering tickers,
training samples, training sets, trade files, config files and registry
operations (versions, promotion, rollback, export, import). For every row:

- the Python API raises the expected class from :mod:`ticker_registry.exceptions`
  with a message naming the problem;
- the CLI exits 1 (2 for a usage error), prints exactly one ``Error: `` line,
  no traceback and never the catch-all "unexpected ..." message (that one means
  a library bug slipped through);
- a snapshot of the registry (:func:`conftest.registry_snapshot`) and of the
  sample store (``SampleStore.snapshot()``) taken before equals the one after.

All rows share one module-scoped store: ETHUSDT (v1 production, v2 deleted),
BTCUSDT (v1 production, no history) and a few stored samples. Rows with a
``found_bug`` note found a bug when they were written (fixed since); the note says what it was.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import pickle
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from ticker_registry import (
    FEATURE_NAMES,
    BundleError,
    Config,
    ConfigError,
    InvalidArgumentError,
    InvalidTickerError,
    ModelNotFoundError,
    NotTrainedError,
    OrderFlowModel,
    PromotionConflictError,
    RollbackError,
    SampleValidationError,
    SyncTickerModelManager,
    TickerRegistry,
    TickerRegistryError,
    TradeDataError,
    TrainingDataError,
    build_training_set,
    load_config,
    read_trades,
)
from ticker_registry.cli import cli
from ticker_registry.records import TrainingLineage

from conftest import QUICK, make_trades, registry_snapshot

N = len(FEATURE_NAMES)
LINEAGE = TrainingLineage(n_samples=1, source="bad-input-test")


# --------------------------------------------------------------------------- the store
@dataclass
class Env:
    """The populated store and the files the rows refer to."""

    root: Path
    models_dir: Path
    config: Path
    manager: SyncTickerModelManager
    model: OrderFlowModel
    X: pd.DataFrame
    y: pd.DataFrame
    eth_key: str
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def registry(self) -> TickerRegistry:
        return self.manager.registry

    def f(self, name: str) -> Path:
        return self.files[name]


def _write_files(root: Path, bundle: Path) -> dict[str, Path]:
    folder = root / "files"
    folder.mkdir()
    good = make_trades(300, seed=3)
    text = good.to_csv(index=False)
    lines = text.splitlines()
    header, first = lines[0], lines[1]
    two_members = io.BytesIO()
    with zipfile.ZipFile(two_members, "w") as z:
        z.writestr("a.csv", text)
        z.writestr("b.csv", text)
    data = bundle.read_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    contents: dict[str, bytes] = {
        # trade files
        "good.csv": text.encode(),
        "empty.csv": b"",
        "header_only.csv": f"{header}\n".encode(),
        "garbage.csv": b"hello,world\nfoo,bar\n",
        "binary.csv": bytes(range(256)) * 4,
        "truncated.csv.gz": gzip.compress(text.encode())[:200],
        "truncated.json": b'[[1570000000000, "1", null, "buy", 0.1, 1.0, 0.1], [157',
        "dict.json": b'{"trades": []}',
        "negative_price.csv": f"{header}\n{first.replace(',', ',-', 1)}\n".encode(),
        "nan_price.csv": "\n".join([*lines[:5], lines[5].split(",")[0] + ",nan,1,1,5"]).encode()
        + b"\n",
        "two_members.zip": two_members.getvalue(),
        "pickle_as.csv": pickle.dumps({"price": [1.0]}),
        # config files
        "unknown_key.yaml": b"modle_type: xgboost\n",
        "wrong_type.yaml": b"min_training_samples: lots\n",
        "bool_int.yaml": b"n_jobs: true\n",
        "nan.yaml": b"flow_band: .nan\n",
        "list.yaml": b"- model_type\n- xgboost\n",
        "bad_yaml.yaml": b"model_type: [xgboost\n",
        "tab.yaml": b"model_type:\txgboost\n\tn_jobs: 1\n",
        "bad_hp.yaml": b"hyperparameters:\n  xgboost:\n    n_estimators: -5\n",
        "same_alias.yaml": b"production_alias: live\nstaging_alias: live\n",
        "not_utf8.yaml": b"\xff\xfe\x00model_type: xgboost\n",
        "mixed_keys.yaml": b"1: a\nfoo: b\n",
        # bundles and things that are not bundles
        "text.trbundle": b"this is not a bundle\n",
        "pickle.pkl": pickle.dumps({"model": "not really"}),
        "empty.trbundle": b"",
        "truncated.trbundle": data[: len(data) // 2],
        "flipped.trbundle": bytes(flipped),
        "zip.trbundle": two_members.getvalue(),
    }
    out = {}
    for name, body in contents.items():
        path = folder / name
        path.write_bytes(body)
        out[name] = path
    out["bundle"] = bundle
    out["dir"] = folder
    out["missing"] = folder / "missing.csv"
    out["out"] = root / "never-written.trbundle"
    return out


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_input")
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({**QUICK, "refresh_interval": 0}))
    manager = SyncTickerModelManager(str(config), root / "store", auto_retrain=False)
    registry = manager.registry
    manager.train("ETHUSDT", trades=make_trades(4000, seed=1))
    model = registry.load_model("ETHUSDT")
    eth_key = registry.get_version("ETHUSDT", 1).tags["idempotency_key"]
    # ETHUSDT v2: registered, then deleted (a version number that no longer exists)
    registry.register("ETHUSDT", model, lineage=LINEAGE, idempotency_key="to-be-deleted")
    registry.delete_version("ETHUSDT", 2)
    # BTCUSDT v1: production, without any earlier production version
    info, _ = registry.register("BTCUSDT", model, lineage=LINEAGE, idempotency_key="btc-1")
    registry.apply_gate("BTCUSDT", info.version, model)
    X, y = build_training_set(make_trades(1500, seed=2), manager.config)
    X, y = X.iloc[:200], y.iloc[:200]
    for i in range(5):
        manager.add_training_sample("ETHUSDT", X.iloc[i].to_dict(), y["flow_type"].iloc[i],
                                    y["impact"].iloc[i], y["time_to_execution"].iloc[i])
    bundle = root / "ethusdt.trbundle"
    manager.export("ETHUSDT", bundle)
    env = Env(root, root / "store", config, manager, model, X, y, eth_key)
    env.files = _write_files(root, bundle)
    yield env
    manager.close()


def snapshot(env: Env) -> tuple[dict, dict]:
    return registry_snapshot(env.registry), env.manager.samples.snapshot()


# --------------------------------------------------------------------------- the rows
@dataclass(frozen=True)
class Api:
    """A Python call that must raise ``error`` matching ``match``."""

    id: str
    call: Callable[[Env], Any]
    error: type[TickerRegistryError]
    match: str
    found_bug: str = ""  # the bug this row found (fixed since)


@dataclass(frozen=True)
class Same:
    """A spelling that must resolve to what already exists: a no-op, checked by ``call``."""

    id: str
    call: Callable[[Env], Any]
    found_bug: str = ""  # the bug this row found (fixed since)


@dataclass(frozen=True)
class Cli:
    """CLI arguments (``{name}`` is replaced by that file's path) and the expected failure."""

    id: str
    args: tuple[str, ...]
    code: int
    match: str
    config: str = ""  # a file of Env.files to pass as --config instead of the good one
    found_bug: str = ""  # the bug this row found (fixed since)


_ZEROS = object()


def sample(features: Any = _ZEROS, flow: Any = "balanced", impact: Any = 0.0,
           tte: Any = 1.0, ticker: Any = "ETHUSDT") -> Callable[[Env], Any]:
    def call(env: Env) -> Any:
        vector = np.zeros(N) if features is _ZEROS else features
        return env.manager.add_training_sample(ticker, vector, flow, impact, tte)
    return call


def train_xy(change: Callable[[pd.DataFrame, pd.DataFrame], tuple[Any, Any]]
             ) -> Callable[[Env], Any]:
    def call(env: Env) -> Any:
        X, y = change(env.X.copy(), env.y.copy())
        return env.manager.train("ETHUSDT", X=X, y=y)
    return call


def train_file(name: str) -> Callable[[Env], Any]:
    return lambda env: env.manager.train("ETHUSDT", files=[env.f(name)])


def with_value(frame: pd.DataFrame, row: int, col: int, value: Any) -> pd.DataFrame:
    frame.iloc[row, col] = value
    return frame


def same_spelling(env: Env) -> None:
    info, created = env.registry.register("eth/usdt", env.model, lineage=LINEAGE,
                                          idempotency_key=env.eth_key)
    assert (info.name, info.version, created) == ("order_flow.ETHUSDT", 1, False)
    info, created = env.registry.register("ETH-USDT", env.model, lineage=LINEAGE,
                                          idempotency_key=env.eth_key)
    assert (info.name, info.version, created) == ("order_flow.ETHUSDT", 1, False)


def same_versions(env: Env) -> None:
    spellings = ("ETHUSDT", "eth/usdt", "ETH-USDT", " eth_usdt ", "Eth:Usdt")
    views = [env.manager.versions(s) for s in spellings]
    assert all(v == views[0] for v in views)
    assert {env.registry.model_name(s) for s in spellings} == {"order_flow.ETHUSDT"}


def bad_alias_config(alias: str) -> Callable[[Env], Any]:
    return lambda env: Config.from_dict({**QUICK, "production_alias": alias})


CYRILLIC_E = "\u0415THUSDT"  # looks like ETHUSDT
FULLWIDTH = "\uff25\uff34\uff28\uff35\uff33\uff24\uff34"
LONG = "E" * 300

UNVALIDATED_ALIAS = ("Config accepts alias names MLflow refuses; a training then registers a version "
                     "and the gate fails moving the alias, leaving a version with gate tags and "
                     "no alias. Fix: validate production_alias/staging_alias in config._validate "
                     "(MLflow's rule: [A-Za-z0-9_-]+, not 'latest', not v<digits>)")
MISSING_Y_CHECK = ("OrderFlowModel.fit does not check y (columns, length against X): a KeyError / "
                   "XGBoostError escapes. Fix: validate y in fit and raise TrainingDataError")

UNCHECKED_KEY = ("TickerRegistry.register does not check idempotency_key: '' registers a version "
                 "under an empty key, and a quote gives MLflow's 'Invalid clause(s) in filter "
                 "string: or'. Fix: refuse keys outside [A-Za-z0-9._-]{1,64} before any call")

API: list[Api | Same] = [
    # --- tickers
    Api("ticker-empty", sample(ticker=""), InvalidTickerError, "empty"),
    Api("ticker-blank", sample(ticker="   "), InvalidTickerError, "empty"),
    Api("ticker-dotdot", lambda e: e.manager.train("../x", X=e.X, y=e.y), InvalidTickerError,
        "looks like a path"),
    Api("ticker-brk/b", lambda e: e.registry.register("BRK/B", e.model, lineage=LINEAGE,
                                                      idempotency_key="k"),
        InvalidTickerError, "BASE/QUOTE"),
    Api("ticker-300-chars", lambda e: e.manager.promote(LONG, 1), InvalidTickerError,
        "300 characters"),
    Api("ticker-cyrillic", lambda e: e.manager.samples.add(CYRILLIC_E, np.zeros(N), 1, 0.0, 1.0),
        InvalidTickerError, "non-ASCII"),
    Api("ticker-fullwidth", lambda e: e.manager.predict_for_ticker(FULLWIDTH, make_trades(20)),
        InvalidTickerError, "non-ASCII"),
    Api("ticker-nul", lambda e: e.registry.get_version("ETH\x00USDT", 1), InvalidTickerError,
        "control"),
    Api("ticker-inner-space", lambda e: e.manager.rollback("ETH USDT"), InvalidTickerError,
        "letters and digits"),
    Api("ticker-backslash", lambda e: e.manager.export("ETH\\USDT", e.f("out")),
        InvalidTickerError, "letters and digits"),
    Api("ticker-not-a-string", sample(ticker=123), InvalidTickerError, "must be a string"),
    Same("ticker-two-spellings-one-model", same_spelling),
    Same("ticker-spellings-same-view", same_versions),
    # --- training samples
    Api("sample-nan", sample(np.full(N, np.nan)), SampleValidationError, "finite"),
    Api("sample-inf-in-mapping", sample({**dict.fromkeys(FEATURE_NAMES, 0.0),
                                         FEATURE_NAMES[3]: float("inf")}),
        SampleValidationError, FEATURE_NAMES[3]),
    Api("sample-too-short", sample([0.0] * (N - 1)), SampleValidationError,
        f"has {N - 1} values; expected {N}"),
    Api("sample-too-long-array", sample(np.zeros(N + 1)), SampleValidationError, "shape"),
    Api("sample-2d-array", sample(np.zeros((1, N))), SampleValidationError, "1-D"),
    Api("sample-missing-name", sample(dict.fromkeys(FEATURE_NAMES[1:], 0.0)),
        SampleValidationError, "missing"),
    Api("sample-text-value", sample(["1.0"] * N), SampleValidationError, "not bool or text"),
    Api("sample-bool-value", sample([True] * N), SampleValidationError, "not bool"),
    Api("sample-huge-int", sample([10**400] * N), SampleValidationError, "finite"),
    Api("sample-none", sample(None), SampleValidationError,
        "pass a mapping"),
    Api("sample-two-row-frame", sample(pd.DataFrame(np.zeros((2, N)), columns=list(FEATURE_NAMES))),
        SampleValidationError, "2 rows"),
    Api("flow-unknown", sample(flow="up"), SampleValidationError, "not a flow type"),
    Api("flow-code-3", sample(flow=3), SampleValidationError, "out of range"),
    Api("flow-bool", sample(flow=True), SampleValidationError, "flow_type is True"),
    Api("impact-nan", sample(impact=float("nan")), SampleValidationError, "impact"),
    Api("tte-negative", sample(tte=-1.0), SampleValidationError, ">= 0"),
    # --- training sets
    Api("train-empty", train_xy(lambda X, y: (X.iloc[:0], y.iloc[:0])), TrainingDataError,
        "0 training rows"),
    Api("train-one-row", train_xy(lambda X, y: (X.iloc[:1], y.iloc[:1])), TrainingDataError,
        "1 training rows"),
    Api("train-constant-features", train_xy(lambda X, y: (X * 0 + 1.0, y)), TrainingDataError,
        "identical features"),
    Api("train-no-event-times", train_xy(lambda X, y: (X.reset_index(drop=True),
                                                        y.reset_index(drop=True))),
        TrainingDataError, "not by event time"),
    Api("train-nan-feature", train_xy(lambda X, y: (with_value(X, 5, 3, np.nan), y)),
        TrainingDataError, "NaN or infinite"),
    Api("train-inf-target", train_xy(lambda X, y: (X, with_value(y, 3, 1, np.inf))),
        TrainingDataError, "must be finite"),
    Api("train-unknown-class", train_xy(lambda X, y: (X, with_value(
        y.astype({"flow_type": str}), 3, 0, "up"))), TrainingDataError, "unknown flow_type 'up'"),
    Api("train-missing-feature", train_xy(lambda X, y: (X.drop(columns=X.columns[0]), y)),
        TrainingDataError, "lacks column"),
    Api("train-missing-label", train_xy(lambda X, y: (X, y.drop(columns="impact"))),
        TrainingDataError, "impact", found_bug=MISSING_Y_CHECK),
    Api("train-length-mismatch", train_xy(lambda X, y: (X, y.iloc[:150])), TrainingDataError,
        "rows", found_bug=MISSING_Y_CHECK),
    Api("train-five-trades", lambda e: e.manager.train("ETHUSDT", trades=make_trades(5)),
        TrainingDataError, "only 5 trades"),
    Api("train-nothing", lambda e: e.manager.train("ETHUSDT"), TickerRegistryError,
        "give trades"),
    # --- trade files
    Api("trades-empty-file", train_file("empty.csv"), TradeDataError, "is empty"),
    Api("trades-header-only", train_file("header_only.csv"), TradeDataError, "no valid trades"),
    Api("trades-garbage", train_file("garbage.csv"), TradeDataError, "cannot tell the format"),
    Api("trades-binary", train_file("binary.csv"), TradeDataError, "cannot tell the format"),
    Api("trades-pickle", train_file("pickle_as.csv"), TradeDataError, "cannot tell the format"),
    Api("trades-truncated-gzip", train_file("truncated.csv.gz"), TradeDataError, "truncated"),
    Api("trades-truncated-json", train_file("truncated.json"), TradeDataError, "truncated"),
    Api("trades-json-dict", train_file("dict.json"), TradeDataError, "expected a JSON list"),
    Api("trades-negative-price", train_file("negative_price.csv"), TradeDataError,
        "line 2: price '-"),
    Api("trades-nan-price", train_file("nan_price.csv"), TradeDataError, "not a finite number"),
    Api("trades-zip-two-members", train_file("two_members.zip"), TradeDataError, "holds 2 files"),
    Api("trades-missing-file", train_file("missing"), TradeDataError, "does not exist"),
    Api("trades-directory", train_file("dir"), TradeDataError, "is a directory"),
    Api("trades-unknown-fmt", lambda e: read_trades(e.f("good.csv"), fmt="xlsx"),
        TradeDataError, "unknown trade format"),
    Api("trades-unknown-errors-mode", lambda e: read_trades(e.f("good.csv"), errors="ignore"),
        TradeDataError, "errors='ignore' is not supported"),
    # --- config (dicts and files)
    Api("config-unknown-key", lambda e: Config.from_dict({"modle_type": "xgboost"}), ConfigError,
        "unknown config key 'modle_type'"),
    Api("config-unknown-model-type", lambda e: SyncTickerModelManager({"model_type": "xgb"},
                                                                     e.models_dir),
        ConfigError, "one of: xgboost"),
    Api("config-string-for-int", lambda e: load_config(e.f("wrong_type.yaml")), ConfigError,
        "min_training_samples='lots'"),
    Api("config-bool-for-int", lambda e: load_config(e.f("bool_int.yaml")), ConfigError,
        "n_jobs=True"),
    Api("config-float-for-int", lambda e: Config.from_dict({"n_jobs": 2.0}), ConfigError,
        "n_jobs=2.0"),
    Api("config-nan", lambda e: load_config(e.f("nan.yaml")), ConfigError, "flow_band=nan"),
    Api("config-out-of-range", lambda e: Config.from_dict({"validation_fraction": 0.9}),
        ConfigError, "validation_fraction=0.9"),
    Api("config-unknown-hyperparameter", lambda e: Config.from_dict(
        {"hyperparameters": {"xgboost": {"n_trees": 5}}}), ConfigError,
        "unknown hyperparameter xgboost.n_trees"),
    Api("config-negative-hyperparameter", lambda e: load_config(e.f("bad_hp.yaml")), ConfigError,
        "xgboost.n_estimators=-5"),
    Api("config-same-aliases", lambda e: load_config(e.f("same_alias.yaml")), ConfigError,
        "different names"),
    Api("config-file-is-a-list", lambda e: load_config(e.f("list.yaml")), ConfigError,
        "must hold a mapping"),
    Api("config-invalid-yaml", lambda e: load_config(e.f("bad_yaml.yaml")), ConfigError,
        "not valid YAML"),
    Api("config-missing-file", lambda e: load_config(e.f("missing")), ConfigError,
        "cannot read config file"),
    Api("config-not-utf8", lambda e: load_config(e.f("not_utf8.yaml")), ConfigError, "UTF-8",
        found_bug="load_config lets UnicodeDecodeError escape; fix: catch it beside OSError and "
              "raise ConfigError('config file ... is not UTF-8 text')"),
    Api("config-non-string-keys", lambda e: load_config(e.f("mixed_keys.yaml")), ConfigError,
        "1", found_bug="Config.from_dict sorts unknown keys of mixed types (TypeError); fix: "
                   "refuse non-string keys first / sort by repr"),
    Api("config-reserved-alias", bad_alias_config("v1"), ConfigError, "production_alias",
        found_bug=UNVALIDATED_ALIAS),
    Api("config-alias-with-space", bad_alias_config("live now"), ConfigError, "production_alias",
        found_bug=UNVALIDATED_ALIAS),
    Api("config-namespace-with-slash", lambda e: TickerRegistry(
        {**QUICK, "namespace": "../x"}, models_dir=e.models_dir).register(
            "ETHUSDT", e.model, lineage=LINEAGE, idempotency_key="ns"),
        ConfigError, "namespace='../x'"),
    # --- versions, promotion, rollback
    Api("version-missing", lambda e: e.registry.get_version("ETHUSDT", 99), ModelNotFoundError,
        "no version 99"),
    Api("version-of-unknown-ticker", lambda e: e.manager.versions("NOPEUSDT"), ModelNotFoundError,
        "NOPEUSDT"),
    Api("compare-missing-version", lambda e: e.manager.compare("ETHUSDT", 1, 42),
        ModelNotFoundError, "no version 42"),
    Api("alias-missing", lambda e: e.registry.load_model("ETHUSDT", "staging"),
        ModelNotFoundError, "no 'staging' version"),
    Api("predict-untrained", lambda e: e.manager.predict_for_ticker("NOPEUSDT", make_trades(20)),
        NotTrainedError, "no trained model yet"),
    Api("promote-missing-version", lambda e: e.manager.promote("ETHUSDT", 99), ModelNotFoundError,
        "no version 99"),
    Api("promote-deleted-version", lambda e: e.manager.promote("ETHUSDT", 2), ModelNotFoundError,
        "no version 2"),
    Api("promote-unknown-alias", lambda e: e.manager.promote("ETHUSDT", 1, to="canary"),
        InvalidArgumentError, "unknown alias 'canary'"),
    Api("promote-stale-expected", lambda e: e.manager.promote("ETHUSDT", 1, expected=7),
        PromotionConflictError, "expected 7"),
    Api("rollback-no-history", lambda e: e.manager.rollback("BTCUSDT"), RollbackError,
        "no earlier production version"),
    Api("rollback-to-deleted", lambda e: e.manager.rollback("ETHUSDT", to_version=2),
        RollbackError, "does not exist"),
    Api("rollback-to-current", lambda e: e.manager.rollback("ETHUSDT", to_version=1),
        RollbackError, "already production"),
    Api("template-unknown", lambda e: e.manager.create_from_template(
        "NEWUSDT", "NOPEUSDT", make_trades(300, seed=4)), ModelNotFoundError, "NOPEUSDT"),
    Api("template-without-own-trades", lambda e: e.manager.create_from_template(
        "NEWUSDT", "ETHUSDT"), TickerRegistryError, "NEWUSDT's own trades"),
    Api("template-unknown-strategy", lambda e: e.manager.create_from_template(
        "NEWUSDT", "ETHUSDT", make_trades(300, seed=4), strategy="copy"),
        InvalidArgumentError, "unknown transfer strategy 'copy'"),
    Api("template-pooled-without-its-trades", lambda e: e.manager.create_from_template(
        "NEWUSDT", "ETHUSDT", make_trades(300, seed=4), strategy="pooled"),
        InvalidArgumentError, "needs the template tickers' rows"),
    Api("register-unfitted", lambda e: e.registry.register(
        "ETHUSDT", OrderFlowModel(QUICK), lineage=LINEAGE, idempotency_key="k"),
        NotTrainedError, "not trained"),
    Api("register-key-with-quote", lambda e: e.registry.register(
        "ETHUSDT", e.model, lineage=LINEAGE, idempotency_key="a' or name='b"),
        InvalidArgumentError, "idempotency key", found_bug=UNCHECKED_KEY),
    Api("register-empty-key", lambda e: e.registry.register(
        "KEYUSDT", e.model, lineage=LINEAGE, idempotency_key=""), InvalidArgumentError,
        "idempotency key", found_bug=UNCHECKED_KEY),
    # --- export and import
    Api("export-missing-ticker", lambda e: e.manager.export("NOPEUSDT", e.f("out")),
        ModelNotFoundError, "NOPEUSDT has no 'production'"),
    Api("export-missing-version", lambda e: e.manager.export("ETHUSDT", e.f("out"), 99),
        ModelNotFoundError, "no version 99"),
    Api("export-missing-alias", lambda e: e.manager.export("ETHUSDT", e.f("out"), "staging"),
        ModelNotFoundError, "no 'staging' version"),
    Api("import-text", lambda e: e.manager.import_bundle(e.f("text.trbundle")), BundleError,
        "text file"),
    Api("import-pickle", lambda e: e.manager.import_bundle(e.f("pickle.pkl")), BundleError,
        "Python pickle"),
    Api("import-empty", lambda e: e.manager.import_bundle(e.f("empty.trbundle")), BundleError,
        "empty"),
    Api("import-zip", lambda e: e.manager.import_bundle(e.f("zip.trbundle")), BundleError,
        "ZIP archive"),
    Api("import-truncated", lambda e: e.manager.import_bundle(e.f("truncated.trbundle")),
        BundleError, "truncated or corrupt"),
    Api("import-one-byte-changed", lambda e: e.manager.import_bundle(e.f("flipped.trbundle")),
        BundleError, "refused|corrupt"),
    Api("import-missing", lambda e: e.manager.import_bundle(e.f("missing")), BundleError,
        "does not exist"),
    Api("import-directory", lambda e: e.manager.import_bundle(e.f("dir")), BundleError,
        "not a regular file"),
    Api("import-as-bad-ticker", lambda e: e.manager.import_bundle(e.f("bundle"), as_ticker="../x"),
        InvalidTickerError, "looks like a path"),
]

BAD_CONFIG = "unexpected UnicodeDecodeError / TypeError from load_config (see the API rows)"

CLI: list[Cli] = [
    Cli("cli-ticker-empty", ("versions", ""), 1, "empty"),
    Cli("cli-ticker-dotdot", ("versions", "../x"), 1, "looks like a path"),
    Cli("cli-ticker-brk/b", ("versions", "BRK/B"), 1, "BASE/QUOTE"),
    Cli("cli-ticker-300-chars", ("versions", LONG), 1, "300 characters"),
    Cli("cli-ticker-cyrillic", ("promote", CYRILLIC_E, "1"), 1, "non-ASCII"),
    Cli("cli-ticker-nul", ("rollback", "ETH\x00USDT"), 1, "control"),
    Cli("cli-ticker-unknown", ("versions", "NOPEUSDT"), 1, "NOPEUSDT"),
    Cli("cli-promote-deleted", ("promote", "ETHUSDT", "2"), 1, "no version 2"),
    Cli("cli-promote-version-0", ("promote", "ETHUSDT", "0"), 2, "Invalid value"),
    Cli("cli-promote-stale-expect", ("promote", "ETHUSDT", "1", "--expect", "7"), 1,
        "expected 7"),
    Cli("cli-rollback-no-history", ("rollback", "BTCUSDT"), 1, "no earlier production version"),
    Cli("cli-rollback-to-deleted", ("rollback", "ETHUSDT", "--to-version", "2"), 1,
        "does not exist"),
    Cli("cli-export-missing-ticker", ("export", "--ticker", "NOPEUSDT", "--file", "{out}"), 1,
        "NOPEUSDT has no 'production'"),
    Cli("cli-export-missing-alias", ("export", "--ticker", "ETHUSDT", "--alias", "staging",
                                     "--file", "{out}"), 1, "no 'staging' version"),
    Cli("cli-export-missing-version", ("export", "--ticker", "ETHUSDT", "--version", "99",
                                       "--file", "{out}"), 1, "no version 99"),
    Cli("cli-import-text", ("import", "--file", "{text.trbundle}"), 1, "text file"),
    Cli("cli-import-pickle", ("import", "--file", "{pickle.pkl}"), 1, "Python pickle"),
    Cli("cli-import-truncated", ("import", "--file", "{truncated.trbundle}"), 1,
        "truncated or corrupt"),
    Cli("cli-import-directory", ("import", "--file", "{dir}"), 2, "is a directory"),
    Cli("cli-import-as-bad-ticker", ("import", "--file", "{bundle}", "--as-ticker", "BRK/B"), 1,
        "BASE/QUOTE"),
    Cli("cli-train-garbage", ("train", "--ticker", "ETHUSDT", "--trades", "{garbage.csv}"), 1,
        "cannot tell the format"),
    Cli("cli-train-truncated-gzip", ("train", "--ticker", "ETHUSDT", "--trades",
                                     "{truncated.csv.gz}"), 1, "truncated"),
    Cli("cli-train-empty-file", ("train", "--ticker", "ETHUSDT", "--trades", "{empty.csv}"), 1,
        "is empty"),
    Cli("cli-train-bad-ticker", ("train", "--ticker", "../x", "--trades", "{good.csv}"), 1,
        "looks like a path"),
    Cli("cli-config-unknown-key", ("status",), 1, "unknown config key 'modle_type'",
        config="unknown_key.yaml"),
    Cli("cli-config-wrong-type", ("status",), 1, "min_training_samples='lots'",
        config="wrong_type.yaml"),
    Cli("cli-config-list", ("status",), 1, "must hold a mapping", config="list.yaml"),
    Cli("cli-config-tab-yaml", ("status",), 1, "not valid YAML", config="tab.yaml"),
    Cli("cli-config-missing", ("status",), 1, "cannot read config file", config="missing"),
    Cli("cli-config-not-utf8", ("status",), 1, "UTF-8", config="not_utf8.yaml", found_bug=BAD_CONFIG),
    Cli("cli-config-non-string-keys", ("status",), 1, "config", config="mixed_keys.yaml",
        found_bug=BAD_CONFIG),
]


def _params(rows: list[Any]) -> list[Any]:
    return [pytest.param(r, id=r.id) for r in rows]


# --------------------------------------------------------------------------- the tests
def test_the_table_is_large_and_ids_are_unique():
    ids = [r.id for r in (*API, *CLI)]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 45


@pytest.mark.parametrize("row", _params(API))
def test_python_api_refuses_bad_input_and_changes_nothing(env, row):
    before = snapshot(env)
    if isinstance(row, Same):
        row.call(env)
    else:
        with pytest.raises(row.error, match=row.match) as caught:
            row.call(env)
        assert isinstance(caught.value, TickerRegistryError)
    assert snapshot(env) == before
    assert not env.f("out").exists()


def _fill(arg: str, env: Env) -> str:
    if arg.startswith("{") and arg.endswith("}"):
        return str(env.f(arg[1:-1]))
    return arg


@pytest.mark.parametrize("row", _params(CLI))
def test_cli_refuses_bad_input_in_one_line_and_changes_nothing(env, row):
    before = snapshot(env)
    config = env.f(row.config) if row.config else env.config
    result = CliRunner().invoke(cli, ["--models-dir", str(env.models_dir), "--config",
                                      str(config), *(_fill(a, env) for a in row.args)])
    output = result.output
    assert result.exit_code == row.code, output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    errors = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, output
    assert "Traceback" not in output
    assert "unexpected " not in errors[0], errors[0]  # the CLI's catch-all: a library bug
    assert row.match in output, output
    assert snapshot(env) == before
    assert not env.f("out").exists()


def test_two_spellings_register_and_store_under_one_ticker(env):
    """Writes (on a ticker of its own): spellings of one pair never make two models."""
    registry, samples = env.registry, env.manager.samples
    first, created_1 = registry.register("sol/usdt", env.model, lineage=LINEAGE,
                                         idempotency_key="spelling-1")
    second, created_2 = registry.register("SOL-USDT", env.model, lineage=LINEAGE,
                                          idempotency_key="spelling-2")
    again, created_3 = registry.register("Sol_Usdt", env.model, lineage=LINEAGE,
                                         idempotency_key="spelling-1")
    assert (created_1, created_2, created_3) == (True, True, False)
    assert first.name == second.name == again.name == "order_flow.SOLUSDT"
    assert again.version == first.version != second.version
    names = [s.name for s in registry.search_models()]
    assert names.count("order_flow.SOLUSDT") == 1 and not any("sol" in n for n in names)
    for spelling in ("sol/usdt", "SOL-USDT", " SOL:USDT "):
        env.manager.add_training_sample(spelling, np.zeros(N), "balanced", 0.0, 1.0)
    assert samples.counts()["SOLUSDT"]["total"] == 3
    assert not any(t != t.upper() or "/" in t for t in samples.counts())


SELF_REPORTED = (
    "import_bundle gates an imported version on the metrics its own model/model.json claims "
    "(apply_gate without holdout data), so a bundle with flattering numbers replaces "
    "production on import. Fix: an import never moves an existing production alias; it goes "
    "to staging (production only when the ticker has none) and is promoted explicitly.")


def _forge_metrics(bundle: Path, target: Path) -> None:
    """A structurally valid bundle of the same model whose model.json claims better metrics."""
    with tarfile.open(bundle, "r:gz") as tar:
        members = {i.name: tar.extractfile(i).read() for i in tar.getmembers()}  # type: ignore[union-attr]
    manifest = json.loads(members.pop("manifest.json"))
    doc = json.loads(members["model/model.json"])
    doc["metrics"].update(flow_type_accuracy=0.99, impact_mse=1e-6, time_to_execution_mse=1e-6)
    members["model/model.json"] = json.dumps(doc).encode()
    for entry in manifest["members"]:
        data = members[entry["name"]]
        entry["size"], entry["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    order = [("manifest.json", json.dumps(manifest).encode()),
             *((e["name"], members[e["name"]]) for e in manifest["members"])]
    with tarfile.open(target, "w:gz", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in order:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_a_bundles_own_metrics_never_replace_production(env):
    """Writes (on a ticker of its own): untrusted claims must not move production."""
    forged = env.root / "forged.trbundle"
    _forge_metrics(env.f("bundle"), forged)
    first = env.manager.import_bundle(env.f("bundle"), as_ticker="FORGEUSDT", promote=True)
    assert first.created and env.registry.production_version("FORGEUSDT") == first.version.version
    result = env.manager.import_bundle(forged, as_ticker="FORGEUSDT")  # passes verification
    assert result.created
    assert env.registry.production_version("FORGEUSDT") == first.version.version
