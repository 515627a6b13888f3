"""One training: features and labels in, a fitted model, its holdout and lineage out.

Pure apart from the fitting itself: nothing here talks to the registry. The
idempotency key of a training is a SHA-256 over the training matrix, labels,
model type, hyperparameters and feature spec, so retrying the same training
(after a crash, a lost response, a second process) finds the version already
registered instead of creating another.

It also holds the public forms of :func:`build_training_set` and
:func:`compute_live_features`: :mod:`ticker_registry.features` ships inside every
model and must not import the config, so the config forms (a dict, a YAML path,
None) are turned into a :class:`Config` here before the pure functions run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from . import features
from .config import CONFIG_FORMS, Config, ConfigSource, load_config
from .exceptions import ConfigError
from .features import FEATURE_NAMES, FeatureSpec
from .model import OrderFlowModel
from .records import TrainingLineage
from .walk_forward import HeadTrainer

__all__ = ["TrainingResult", "build_training_set", "compute_live_features", "evaluate_trades",
           "fingerprint", "train_model", "train_on_trades"]


def _recipe(config: ConfigSource | FeatureSpec) -> Config | FeatureSpec:
    """A FeatureSpec as is, any other accepted config form as a validated Config."""
    if isinstance(config, FeatureSpec):
        return config
    if config is None or isinstance(config, (Config, Mapping, str, os.PathLike)):
        return load_config(config)
    raise ConfigError(f"config is {config!r:.80} (type {type(config).__name__}); pass the "
                      f"FeatureSpec of a model, {CONFIG_FORMS}")


def build_training_set(trades: pd.DataFrame, config: ConfigSource | FeatureSpec,
                       market: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features ``X`` and labels ``y`` for every event with a full past window and horizon.

    Parameters
    ----------
    trades
        Canonical trades (``read_trades`` output), sorted by time.
    config
        A :class:`Config`, a mapping of config keys, the path of a YAML config file,
        None for the defaults, or the :class:`FeatureSpec` of an existing model. An
        ``auto`` threshold is set from these trades; the spec used is in
        ``X.attrs["feature_spec"]``.
    market
        Optional quotes with ``timestamp, bid, ask, bid_size, ask_size``; each event uses
        the latest quote at or before it.

    Returns
    -------
    (X, y)
        ``X`` has the ``FEATURE_NAMES`` columns, ``y`` the ``LABEL_NAMES`` ones:
        ``flow_type`` (categorical of ``FLOW_TYPES``), ``impact`` (bps) and
        ``time_to_execution`` (seconds); both are indexed by event timestamp.

    Raises
    ------
    ConfigError
        ``config`` is invalid or none of the forms above.
    TrainingDataError
        If no event has a full window and a full horizon.
    """
    return features.build_training_set(trades, _recipe(config), market)


def compute_live_features(order_events: Sequence[Mapping[str, Any]] | pd.DataFrame,
                          market_data: Mapping[str, Any] | None,
                          config: ConfigSource | FeatureSpec) -> dict[str, float]:
    """Features of one live window: the last ``sequence_length`` order events.

    ``order_events`` is a list of dicts (``timestamp`` as an epoch in s, ms, us or ns, unit
    inferred by :mod:`ticker_registry.timestamps`, or a datetime, ``price``, ``quantity`` or
    ``amount``, ``side`` as ``'buy'``/``'sell'`` or +1/-1) or a canonical trades frame;
    ``market_data`` is an optional dict with ``bid``, ``ask``, ``bid_size``, ``ask_size``
    (other keys are ignored). ``config`` is a :class:`Config`, a mapping of config keys,
    the path of a YAML config file, None for the defaults, or a model's
    :class:`FeatureSpec` (a ``large_order_threshold`` of ``auto`` needs the spec, which
    records the value set from the trades). The result equals the row
    :func:`build_training_set` gives for the same event.

    Raises :class:`ConfigError` when ``config`` is invalid or none of these forms.
    """
    return features.compute_live_features(order_events, market_data, _recipe(config))


@dataclass(frozen=True)
class TrainingResult:
    """A fitted model plus what the registry needs to record and gate it."""

    model: OrderFlowModel
    X_valid: pd.DataFrame  # the last walk-forward test block: the gate's out-of-sample rows
    y_valid: pd.DataFrame
    lineage: TrainingLineage
    idempotency_key: str


def fingerprint(X: pd.DataFrame, y: pd.DataFrame, config: Config,
                extra: Mapping[str, str] | None = None) -> str:
    """SHA-256 of the training data and everything that shapes the model (``extra``: what
    else does, e.g. the template a transfer starts from)."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(X[list(FEATURE_NAMES)].to_numpy(np.float64)).tobytes())
    digest.update(np.asarray(y["flow_type"].astype(str)).astype("U16").tobytes())
    digest.update(np.ascontiguousarray(y[["impact", "time_to_execution"]].to_numpy(np.float64)).tobytes())
    recipe = {k: v for k, v in config.to_dict().items()
              if k in ("model_type", "prediction_horizon", "sequence_length",
                       "large_order_threshold", "flow_band", "random_seed", "cv_folds",
                       "cv_embargo", "skill_alpha")}
    recipe["hyperparameters"] = config.model_hyperparameters()
    if extra:
        recipe["extra"] = dict(extra)
    if X.attrs.get("feature_spec"):  # the resolved recipe (an 'auto' threshold as a number)
        recipe["feature_spec"] = X.attrs["feature_spec"]
    # event times decide the walk-forward's purge, so they are part of the training
    if isinstance(X.index, pd.DatetimeIndex):
        digest.update(X.index.as_unit("ns").asi8.tobytes())
    digest.update(json.dumps(recipe, sort_keys=True).encode())
    return digest.hexdigest()


def train_model(X: pd.DataFrame, y: pd.DataFrame, config: ConfigSource = None, *,
                source: str = "samples", extra_lineage: dict[str, str] | None = None,
                trainer: HeadTrainer | None = None,
                recipe: Mapping[str, str] | None = None) -> TrainingResult:
    """Fit an :class:`OrderFlowModel` on ``(X, y)`` and describe the training.

    ``trainer`` fits the heads (default: from scratch; see :mod:`ticker_registry.transfer`);
    ``recipe`` names what else shapes the model (a transfer's template), so that it is part
    of the training's fingerprint and idempotency key.
    """
    cfg = load_config(config)
    if isinstance(X.index, pd.DatetimeIndex) and not X.index.is_monotonic_increasing:
        order = np.argsort(X.index.asi8, kind="stable")
        X, y = X.iloc[order], y.iloc[order]
    model = OrderFlowModel(cfg).fit(X, y, trainer=trainer)
    first = last = None
    if isinstance(X.index, pd.DatetimeIndex) and len(X):
        first, last = X.index[0].isoformat(), X.index[-1].isoformat()
    key = fingerprint(X, y, cfg, recipe)
    lineage = TrainingLineage(n_samples=len(X), first_trade=first, last_trade=last,
                              fingerprint=key, source=source, extra=dict(extra_lineage or {}))
    holdout = model.gate_holdout_
    rows = holdout.positions if holdout is not None else np.zeros(0, dtype=np.int64)
    return TrainingResult(model, X.iloc[rows], y.iloc[rows], lineage, key[:32])


def train_on_trades(trades: pd.DataFrame, config: ConfigSource = None, *,
                    market: pd.DataFrame | None = None,
                    files: list[str] | None = None) -> TrainingResult:
    """Build the training set from canonical trades and train on it."""
    cfg = load_config(config)
    X, y = features.build_training_set(trades, cfg, market=market)
    extra = {"trades": str(len(trades))}
    if files:
        extra["files"] = ",".join(files)[:4000]
    return train_model(X, y, cfg, source="trades", extra_lineage=extra)


def evaluate_trades(trades: pd.DataFrame, config: ConfigSource = None, *,
                    market: pd.DataFrame | None = None) -> OrderFlowModel:
    """Purged walk-forward evaluation of ``config``'s model on ``trades``; registers nothing.

    Returns the fitted model: ``evaluation_`` holds each head's verdict,
    ``spec_`` the feature spec used (an ``auto`` threshold resolved).
    """
    cfg = load_config(config)
    X, y = features.build_training_set(trades, cfg, market=market)
    return OrderFlowModel(cfg).fit(X, y)
