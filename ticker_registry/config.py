"""Typed, validated configuration.

A :class:`Config` is built from a dict (``Config.from_dict``) or a YAML file
(``load_config``). Unknown keys, wrong types and out-of-range values are
refused with a :class:`~ticker_registry.exceptions.ConfigError` that names the
key, the value, the source and the allowed form. The config is frozen; derive
a changed copy with :meth:`Config.replace`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .exceptions import ConfigError

__all__ = ["HYPERPARAMETER_BOUNDS", "MODEL_TYPES", "Config", "load_config"]

MODEL_TYPES = ("xgboost", "lightgbm", "random_forest")

#: Hyperparameters each model type accepts, with their defaults.
# Shallow, heavily regularised trees: the order-flow signal is weak and noisy, and deep
# trees fitted it worse than a constant out of sample (README, "Default hyperparameters",
# measured by purged walk-forward on the real trades with ``python -m benchmarks.quality``).
DEFAULT_HYPERPARAMETERS: dict[str, dict[str, Any]] = {
    "xgboost": {
        "n_estimators": 100,
        "max_depth": 2,
        "learning_rate": 0.05,
        "subsample": 0.7,
        "colsample_bytree": 0.8,
        "min_child_weight": 200.0,
        "reg_lambda": 20.0,
    },
    "lightgbm": {
        "n_estimators": 100,
        "num_leaves": 4,
        "learning_rate": 0.05,
        "min_child_samples": 200,
        "subsample": 0.7,
        "colsample_bytree": 0.8,
        "reg_lambda": 20.0,
    },
    "random_forest": {
        "n_estimators": 100,
        "max_depth": 6,
        "min_samples_leaf": 200,
        "max_features": 0.5,
    },
}


#: Allowed range of every hyperparameter: (kind, low, high, low_open). The upper bounds keep a
#: training finite in time and memory (a config with n_estimators: 100000000 is refused, not
#: trained for ever) and are far above anything the walk-forward favours.
HYPERPARAMETER_BOUNDS: dict[str, dict[str, tuple[type, float, float, bool]]] = {
    "xgboost": {
        "n_estimators": (int, 1, 5000, False), "max_depth": (int, 1, 16, False),
        "learning_rate": (float, 0, 1, True), "subsample": (float, 0, 1, True),
        "colsample_bytree": (float, 0, 1, True), "min_child_weight": (float, 0, 1e6, False),
        "reg_lambda": (float, 0, 1e6, False),
    },
    "lightgbm": {
        "n_estimators": (int, 1, 5000, False), "num_leaves": (int, 2, 4096, False),
        "learning_rate": (float, 0, 1, True), "min_child_samples": (int, 1, 1_000_000, False),
        "subsample": (float, 0, 1, True), "colsample_bytree": (float, 0, 1, True),
        "reg_lambda": (float, 0, 1e6, False),
    },
    "random_forest": {
        "n_estimators": (int, 1, 2000, False), "max_depth": (int, 1, 40, False),
        "min_samples_leaf": (int, 1, 1_000_000, False), "max_features": (float, 0, 1, True),
    },
}


def _freeze(value: Any) -> Any:
    """A read-only view of nested mappings, so a frozen Config cannot be changed through them."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    return value


def _field(default: Any, kind: type | tuple[type, ...], doc: str, *, low: float | None = None,
           high: float | None = None, low_open: bool = False, choices: tuple[Any, ...] | None = None,
           optional: bool = False, words: tuple[str, ...] = ()) -> Any:
    meta = {"kind": kind, "doc": doc, "low": low, "high": high, "low_open": low_open,
            "choices": choices, "optional": optional, "words": words}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Config:
    """Every setting of ticker-registry, with its default.

    Keys (all optional in a file; defaults shown in brackets):

    - ``model_type`` [xgboost]: ``xgboost``, ``lightgbm`` or ``random_forest``.
    - ``min_training_samples`` [1000]: samples before a ticker's first training.
    - ``retrain_interval`` [500]: new samples between automatic retrainings.
    - ``prediction_horizon`` [5]: label horizon in minutes.
    - ``sequence_length`` [20]: trades in each feature window.
    - ``large_order_threshold`` [auto]: notional (quote currency) of a large order;
      ``auto`` sets it per ticker from its own trades (the 95th percentile of
      trade notional, rounded to 1, 2 or 5 times a power of ten; see
      :func:`ticker_registry.features.auto_large_order_threshold`) and records
      the value in the version's feature spec.
    - ``flow_band`` [0.2]: |signed-volume share| above which flow is buy/sell pressure.
    - ``validation_fraction`` [0.2]: unused since the purged walk-forward (kept so
      older config files load).
    - ``cv_folds`` [5]: purged walk-forward folds (expanding window).
    - ``cv_embargo`` [0]: minutes of extra gap after the purge of each fold.
    - ``skill_alpha`` [0.05]: one-sided significance level of a head's skill
      over its best naive baseline (see :mod:`ticker_registry.evaluation`).
    - ``random_seed`` [42], ``n_jobs`` [1]: threads per model head.
    - ``hyperparameters`` [{}]: per model type overrides of ``DEFAULT_HYPERPARAMETERS``.
    - ``namespace`` [order_flow]: registered models are named ``<namespace>.<TICKER>``.
    - ``production_alias`` [production], ``staging_alias`` [staging].
    - ``auto_promote`` [true]: promote a candidate that beats production.
    - ``mirror_stages`` [false]: also set MLflow's deprecated stages.
    - ``log_plots`` [false]: log feature-importance / confusion-matrix PNGs.
    - ``max_cached_models`` [64], ``refresh_interval`` [30.0] seconds,
      ``max_model_age`` [null] seconds before predictions are flagged stale.
    - ``performance_window`` [500]: labelled samples in the live score.
    - ``skill_drop_threshold`` [null]: live accuracy below which a retrain is
      triggered early.
    - ``registry_timeout`` [10.0] seconds: deadline of one registry request.
    - ``close_timeout`` [300] seconds: how long a closing manager (or the interpreter
      exiting) waits for an in-flight training before abandoning it; its samples stay
      for the next process.
    - ``symbol`` [null]: the strategy's ticker.
    """

    model_type: str = _field("xgboost", str, "model family", choices=MODEL_TYPES)
    min_training_samples: int = _field(1000, int, "samples before first training", low=10)
    retrain_interval: int = _field(500, int, "new samples between retrainings", low=1)
    prediction_horizon: float = _field(5, (int, float), "label horizon in minutes", low=0, low_open=True,
                                       high=24 * 60)
    sequence_length: int = _field(20, int, "trades per feature window", low=2, high=10_000)
    large_order_threshold: float | str = _field("auto", (int, float, str), "notional of a large order",
                                                low=0, low_open=True, words=("auto",))
    flow_band: float = _field(0.2, (int, float), "signed-volume share band", low=0, high=1)
    validation_fraction: float = _field(0.2, (int, float), "holdout share", low=0.05, high=0.5)
    random_seed: int = _field(42, int, "random seed", low=0)
    cv_folds: int = _field(5, int, "walk-forward folds", low=2, high=20)
    cv_embargo: float = _field(0, (int, float), "minutes of embargo after the purge", low=0,
                               high=24 * 60)
    skill_alpha: float = _field(0.05, (int, float), "significance level of skill", low=0,
                                low_open=True, high=0.5)
    n_jobs: int = _field(1, int, "threads per head", low=1, high=256)
    hyperparameters: Mapping[str, Any] = _field({}, (dict, MappingProxyType),
                                                "per model type hyperparameters")
    namespace: str = _field("order_flow", str, "registered model name prefix")
    production_alias: str = _field("production", str, "alias of the serving version")
    staging_alias: str = _field("staging", str, "alias of the candidate version")
    auto_promote: bool = _field(True, bool, "promote a better candidate automatically")
    mirror_stages: bool = _field(False, bool, "mirror aliases to deprecated stages")
    log_plots: bool = _field(False, bool, "log plots with each version")
    max_cached_models: int = _field(64, int, "models held in memory", low=1)
    refresh_interval: float = _field(30.0, (int, float), "seconds between alias checks", low=0)
    max_model_age: float | None = _field(None, (int, float), "seconds before stale", low=0,
                                         low_open=True, optional=True)
    performance_window: int = _field(500, int, "samples in the live score", low=10)
    skill_drop_threshold: float | None = _field(None, (int, float), "live accuracy floor", low=0,
                                                high=1, optional=True)
    registry_timeout: float = _field(10.0, (int, float), "seconds per registry request", low=0,
                                     low_open=True)
    close_timeout: float = _field(300.0, (int, float), "seconds a closing manager waits for a "
                                  "training", low=0, high=24 * 3600)
    symbol: str | None = _field(None, str, "strategy ticker", optional=True)

    def __post_init__(self) -> None:
        _validate(self, source="<dict>")
        object.__setattr__(self, "hyperparameters", _freeze(self.hyperparameters))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None = None, *, source: str = "<dict>") -> Config:
        """Build a config from a mapping; unknown keys are refused."""
        data = dict(data or {})
        odd = [k for k in data if not isinstance(k, str)]
        if odd:
            raise ConfigError(f"config key {odd[0]!r} in {source} is not a name; keys are "
                              "names such as 'model_type'")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown config key {unknown[0]!r} in {source}; "
                f"known keys are: {', '.join(sorted(known))}"
            )
        try:
            return cls(**data)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("<dict>", source)) from None

    def replace(self, **changes: Any) -> Config:
        """Return a copy with ``changes`` applied and validated."""
        return Config.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every key (JSON-serialisable)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def model_hyperparameters(self) -> dict[str, Any]:
        """Hyperparameters of ``model_type``: defaults overlaid with the config's."""
        return {**DEFAULT_HYPERPARAMETERS[self.model_type],
                **self.hyperparameters.get(self.model_type, {})}


#: Largest config file read (characters); configs are a few hundred bytes.
MAX_CONFIG_BYTES = 1 << 20


def _strict_loader() -> type:
    """A YAML SafeLoader without anchors/aliases (a 400-byte alias bomb expands to gigabytes)
    and without duplicate keys (silently last-wins otherwise)."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.constructor.ConstructorError(
                    None, None, f"YAML aliases (*{event.anchor}) are not allowed in a config",
                    event.start_mark)
            event = self.peek_event()
            if getattr(event, "anchor", None):
                raise yaml.constructor.ConstructorError(
                    None, None, f"YAML anchors (&{event.anchor}) are not allowed in a config",
                    event.start_mark)
            return super().compose_node(parent, index)

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, (str, int, float, bool)) and key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (each key may appear once)",
                        key_node.start_mark)
                if isinstance(key, (str, int, float, bool)):
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


def load_config(source: str | Path | Mapping[str, Any] | Config | None = None) -> Config:
    """Load a config from a YAML path, a mapping, an existing Config, or defaults."""
    if source is None:
        return Config()
    if isinstance(source, Config):
        return source
    if isinstance(source, Mapping):
        return Config.from_dict(source)
    import yaml

    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text (bad byte at offset "
                          f"{exc.start}); save it as UTF-8 YAML") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror or exc}; "
                          "check the path given to --config") from None
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {str(path)!r} is {len(text):,} characters; a config is at "
                          f"most {MAX_CONFIG_BYTES:,}: check that this is the right file")
    try:
        data = yaml.load(text, Loader=_strict_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: "
                          f"{str(exc).splitlines()[0]}") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of keys to values, "
                          f"got {type(data).__name__}")
    return Config.from_dict(data, source=str(path))


_ALIAS = re.compile(r"[A-Za-z0-9_-]{1,255}")
_NAMESPACE = re.compile(r"[A-Za-z0-9_-]{1,100}")
_VERSION_ALIAS = re.compile(r"[vV]\d+")


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _describe(meta: Mapping[str, Any]) -> str:
    if meta["choices"]:
        return "one of: " + ", ".join(map(str, meta["choices"]))
    kind = meta["kind"]
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
             dict: "a mapping"}
    base = (names[kind] if isinstance(kind, type) else
            "a mapping" if dict in kind else "a number")
    if meta["words"]:
        base = " or ".join(repr(w) for w in meta["words"]) + " or " + base
    bounds = []
    if meta["low"] is not None:
        bounds.append(f"{'>' if meta['low_open'] else '>='} {meta['low']}")
    if meta["high"] is not None:
        bounds.append(f"<= {meta['high']}")
    text = base + (" " + " and ".join(bounds) if bounds else "")
    return text + (" (or null)" if meta["optional"] else "")


def _validate(cfg: Config, *, source: str) -> None:
    for f in dataclasses.fields(cfg):
        meta = f.metadata
        value = getattr(cfg, f.name)
        if value is None and meta["optional"]:
            continue
        kind = meta["kind"]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if ok and isinstance(value, str) and meta["words"]:
            ok = value in meta["words"]
        if ok and isinstance(value, float) and not math.isfinite(value):
            ok = False
        if ok and meta["choices"] and value not in meta["choices"]:
            ok = False
        if ok and meta["low"] is not None and isinstance(value, (int, float)):
            ok = value > meta["low"] if meta["low_open"] else value >= meta["low"]
        if ok and meta["high"] is not None and isinstance(value, (int, float)):
            ok = value <= meta["high"]
        if ok and isinstance(value, str) and not value.strip():
            ok = False
        if not ok:
            raise ConfigError(
                f"invalid config value {f.name}={value!r} in {source}; "
                f"{f.name} ({meta['doc']}) must be {_describe(meta)}"
            )
    _validate_hyperparameters(cfg.hyperparameters, source)
    for key in ("production_alias", "staging_alias"):
        alias = getattr(cfg, key)
        if (not _ALIAS.fullmatch(alias) or alias.lower() == "latest"
                or _VERSION_ALIAS.fullmatch(alias)):
            raise ConfigError(
                f"invalid config value {key}={alias!r} in {source}; an alias is 1-255 letters, "
                "digits, '_' or '-', and not 'latest' or v<number> (MLflow reserves those)")
    if not _NAMESPACE.fullmatch(cfg.namespace):
        raise ConfigError(
            f"invalid config value namespace={cfg.namespace!r} in {source}; a namespace is 1-100 "
            "letters, digits, '_' or '-' (it prefixes registered model names and is used in "
            "registry searches, where characters such as '%' would match other namespaces)")
    if cfg.production_alias == cfg.staging_alias:
        raise ConfigError(f"production_alias and staging_alias are both "
                          f"{cfg.production_alias!r} in {source}; give them different names")


def _validate_hyperparameters(hp: Mapping[str, Any], source: str) -> None:
    for model_type, params in hp.items():
        if model_type not in DEFAULT_HYPERPARAMETERS:
            raise ConfigError(f"unknown model type {model_type!r} under hyperparameters in "
                              f"{source}; use one of: {', '.join(MODEL_TYPES)}")
        if not isinstance(params, Mapping):
            raise ConfigError(f"hyperparameters.{model_type} in {source} must be a mapping, "
                              f"got {params!r}")
        bounds = HYPERPARAMETER_BOUNDS[model_type]
        for key, value in params.items():
            if key not in bounds:
                raise ConfigError(
                    f"unknown hyperparameter {model_type}.{key} in {source}; "
                    f"known for {model_type}: {', '.join(sorted(bounds))}")
            kind, low, high, low_open = bounds[key]
            good = (isinstance(value, (int, float)) and not isinstance(value, bool)
                    and math.isfinite(value) and (value > low if low_open else value >= low)
                    and value <= high)
            if kind is int:
                good = good and isinstance(value, int)
            if not good:
                what = "an integer" if kind is int else "a number"
                raise ConfigError(
                    f"invalid hyperparameter {model_type}.{key}={value!r} in {source}; it must be "
                    f"{what} {'>' if low_open else '>='} {low:g} and <= {high:g}")
