"""SyncTickerModelManager: the facade a trading program lives with all day.

It serves, collects samples and retrains here; its registry operations (views,
alias moves, bundles, cleanup, doctor) come from :mod:`.manager_ops`, and its
async twin :class:`~ticker_registry.manager_async.TickerModelManager` is
generated from it (:mod:`.manager_async`).

Decisions (see the README, "Manager"):

- A ticker without a production version is served by an *untrained* entry:
  ``predict_for_ticker`` raises :class:`NotTrainedError` rather than invent a
  neutral prediction, so a strategy cannot mistake "no model" for "no signal".
- ``add_training_sample`` returns only after the sample is committed to the
  sample store. When a ticker first reaches ``min_training_samples``, and then
  every ``retrain_interval`` new samples, a retrain is scheduled on a
  background thread; a lease in the sample store keeps it to one at a time per
  ticker across processes, and the training batch's idempotency key makes a
  repeated retrain find the version it already registered.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .aliases import GateCall
from .cache import ModelCache, ServedModel
from .config import Config, load_config
from .exceptions import (
    NotTrainedError,
    PromotionConflictError,
    RegistryError,
    TickerRegistryError,
    TrainingDataError,
)
from .features import FLOW_TYPES, FeatureSpec, live_feature_vector
from .locking import HOST_ID
from .manager_ops import RegistryOperations
from .model import OrderFlowModel
from .performance import LivePerformance
from .records import PromotionDecision, TrainOutcome, VersionInfo
from .registry import DEFAULT_MODELS_DIR, TickerRegistry
from .retraining import RetrainScheduler
from .samples import SampleStore, spec_hash, validate_sample
from .tickers import normalize_ticker
from .training import TrainingResult, fingerprint, train_model, train_on_trades

__all__ = ["LEASE_TTL_S", "LIVE_LOG_EVERY", "SyncTickerModelManager"]

log = logging.getLogger(__name__)

#: A training lease outlives any sane training; a crashed holder frees it after this.
LEASE_TTL_S = 900.0
#: Live figures are logged to MLflow every this many labelled samples.
LIVE_LOG_EVERY = 100


class SyncTickerModelManager(RegistryOperations):
    """The synchronous core: models, samples, retraining and registry operations.

    Parameters
    ----------
    base_config
        Config, dict or YAML path (see :class:`~ticker_registry.config.Config`).
    models_dir
        Folder of the embedded store (default ``./mlruns``): MLflow's SQLite
        database, artifacts, the sample database and the model cache.
    tracking_uri
        Any MLflow URI; default ``MLFLOW_TRACKING_URI`` or SQLite in ``models_dir``.
    sample_store_url
        SQLAlchemy URL of the sample store; default SQLite in ``models_dir``.
    auto_retrain
        Schedule retraining from samples automatically (default True).
    read_only
        Only read: a sample store that does not exist is not created (reads are empty).
    """

    def __init__(self, base_config: Config | Mapping[str, Any] | str | Path | None = None,
                 models_dir: str | os.PathLike[str] | None = None,
                 tracking_uri: str | None = None, *, sample_store_url: str | None = None,
                 auto_retrain: bool = True, read_only: bool = False) -> None:
        self.config = load_config(base_config)
        self.models_dir = Path(models_dir or DEFAULT_MODELS_DIR).absolute()
        self.registry = TickerRegistry(self.config, tracking_uri=tracking_uri,
                                       models_dir=self.models_dir)
        self.samples = SampleStore(sample_store_url, models_dir=self.models_dir,
                                   create=not read_only)
        self.auto_retrain = auto_retrain
        self.cache = ModelCache(self._load_served, self._production_versions,
                                max_size=self.config.max_cached_models,
                                refresh_interval=self.config.refresh_interval)
        self.retraining = RetrainScheduler(self.config, self.samples, self.retrain,
                                           self.cache.peek, self._release_lease)
        self._resumed: set[str] = set()
        self._names: dict[str, str] = {}
        self._specs: dict[str, FeatureSpec] = {}
        self._owner = f"{HOST_ID}:{os.getpid()}"  # doctor can tell whether it still runs
        self._tuned_seen = {}

    def _ticker(self, text: str) -> str:
        name = self._names.get(text)
        if name is None:
            name = normalize_ticker(text)
            if len(self._names) < 100_000:
                self._names[text] = name
        return name

    # ------------------------------------------------------------------ models
    def _load_served(self, ticker: str) -> ServedModel:
        version = self.registry.production_version(ticker)
        if version is None:
            return ServedModel(ticker, None, None, time.time())
        info = self.registry.get_version(ticker, version)
        return self._served(ticker, info, OrderFlowModel.load(self.registry.download_native(info)))

    def _served(self, ticker: str, info: VersionInfo, model: OrderFlowModel) -> ServedModel:
        """The one factory of serving entries: version, run (for live metrics), age from the
        version's creation, live scoring."""
        created = pd.Timestamp(info.created_at).timestamp() if info.created_at else None
        return ServedModel(ticker, info.version, model, time.time(), created,
                           LivePerformance(model.baselines_, self.config.performance_window),
                           info.run_id)

    def get_or_create_model(self, ticker: str) -> ServedModel:
        """The ticker's serving entry: its production version, or an untrained entry.

        The first use of a ticker in this process also resumes a training that is
        due (samples that crossed the threshold in a process that has since exited).
        """
        name = self._ticker(ticker)
        entry = self.cache.get(name)
        self._resume_due(name, entry)
        return entry

    def _resume_due(self, name: str, entry: ServedModel | None) -> None:
        if not self.auto_retrain or name in self._resumed:
            return
        self._resumed.add(name)
        try:
            self.retraining.maybe_schedule(name, entry)
        except TickerRegistryError as exc:  # serving never fails for the sample store
            log.warning("cannot check whether %s is due for training: %s", name, exc)

    def _release_lease(self, name: str, thread_ident: int) -> None:
        try:
            self.samples.release_lease(name, f"{self._owner}:{thread_ident}")
        except TickerRegistryError as exc:
            log.warning("cannot release the training lease of %s: %s", name, exc)

    def predict_for_ticker(self, ticker: str,
                           order_events: Sequence[Mapping[str, Any]] | pd.DataFrame,
                           market_data: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Predict flow_type, its probabilities, impact and time_to_execution for one window.

        Cold, it loads the version in this thread first (the async twin: ``predict_timeout``).

        Raises
        ------
        NotTrainedError
            The ticker has no production version yet.
        """
        name = self._ticker(ticker)
        entry = self.cache.peek(name) or self.cache.get(name)
        return self._predict(entry, order_events, market_data)

    def _predict(self, entry: ServedModel, order_events: Any,
                 market_data: Mapping[str, Any] | None) -> dict[str, Any]:
        model = entry.model
        if model is None:
            raise NotTrainedError(
                f"{entry.ticker} has no trained model yet; it trains automatically after "
                f"{self.config.min_training_samples} samples, or run "
                f"`ticker-registry train {entry.ticker} --trades FILE`")
        vector = live_feature_vector(order_events, market_data, model.spec_)
        raw = model.predict_matrix(vector.reshape(1, -1))[0]
        values = raw.tolist()  # the Python floats float(raw[i]) gives, in one call
        stale = bool(self.config.max_model_age and entry.created_at
                     and time.time() - entry.created_at > self.config.max_model_age)
        return {
            "ticker": entry.ticker, "version": entry.version,
            "flow_type": FLOW_TYPES[int(np.argmax(raw[:3]))],
            "probabilities": dict(zip(FLOW_TYPES, values[:3], strict=True)),
            "impact": values[3], "time_to_execution": values[4], "stale": stale,
            **{f"{head}_source": source for head, source in model.serving_.items()},
        }

    # ------------------------------------------------------------------ samples
    def add_training_sample(self, ticker: str, features: Any, flow_type: str | int,
                            impact: float, time_to_execution: float,
                            timestamp: Any = None) -> int:
        """Validate and durably store one labelled sample; schedule retraining when due.

        ``timestamp`` is the event's trade time (epoch s/ms/us/ns, datetime or ISO
        text); training, purging and lineage use it. Without it the time of
        insertion is recorded, which is right only for samples stored live.
        Returns the sample id. The sample is committed before this returns.
        """
        name = self._ticker(ticker)
        vector, code, impact_v, tte_v = validate_sample(features, flow_type, impact,
                                                        time_to_execution)
        entry = self.cache.peek(name)
        sample_id = self.samples.add(name, vector, code, impact_v, tte_v, event_time=timestamp,
                                     spec=self._known_spec(name, entry))
        if entry is not None and entry.model is not None and entry.live is not None:
            self._score_live(entry, vector, code, impact_v, tte_v)
        if self.auto_retrain:
            self.retraining.maybe_schedule(name, entry)
        return sample_id

    def _score_live(self, entry: ServedModel, vector: np.ndarray, code: int, impact: float,
                    tte: float) -> None:
        assert entry.model is not None
        entry.live.update(entry.model.predict_matrix(vector.reshape(1, -1))[0], code, impact, tte)
        if entry.live.seen % LIVE_LOG_EVERY == 0 and entry.run_id:
            # off the caller's path: a registry outage must never block or fail a sample
            self.retraining.submit(self._log_live, entry.ticker, entry.run_id,
                                   entry.live.summary(), entry.live.seen)

    def _log_live(self, ticker: str, run_id: str, figures: dict[str, float], step: int) -> None:
        try:
            self.registry.log_run_metrics(run_id, figures, step)
        except RegistryError as exc:
            log.warning("cannot log live metrics of %s: %s", ticker, exc)

    def use_feature_spec(self, ticker: str, spec: FeatureSpec) -> None:
        """Declare the feature spec this process computes ``ticker``'s samples with.

        The strategy calls this once it has set an ``auto`` threshold from the
        ticker's trades; retraining on samples then records that spec.
        """
        self._specs[self._ticker(ticker)] = spec

    def _known_spec(self, name: str, entry: ServedModel | None) -> FeatureSpec | None:
        """The spec samples are computed with, from what is at hand (never a registry call:
        storing a sample must not depend on the registry being up)."""
        if name in self._specs:
            return self._specs[name]
        if entry is not None and entry.model is not None:
            return entry.model.spec_
        if self.config.large_order_threshold == "auto":
            return None
        return FeatureSpec.from_config(self.config)

    def feature_spec(self, ticker: str) -> FeatureSpec | None:
        """The spec ``ticker``'s samples are computed with, or None while it is unknown.

        In order: the spec declared with :meth:`use_feature_spec`, the production
        version's spec, the config's (None when its threshold is ``auto``).
        """
        name = self._ticker(ticker)
        if name in self._specs:
            return self._specs[name]
        entry = self.cache.get(name)
        if entry.model is not None:
            return entry.model.spec_
        if self.config.large_order_threshold == "auto":
            return None
        return FeatureSpec.from_config(self.config)

    def _training_spec(self, name: str) -> tuple[FeatureSpec, int]:
        """The spec a retrain of ``name`` uses, and how many stored samples it skips.

        The serving spec (declared, production's, or the config's) when known; else the
        spec of the newest samples. Samples computed with any other spec are never mixed
        in: they are skipped, and the count is logged and recorded in the lineage.
        """
        spec = self.feature_spec(name)
        counts = self.samples.spec_counts(name)
        if spec is None:
            recorded = [h for h, _, _ in counts if h is not None]
            found = self.samples.feature_spec(recorded[-1]) if recorded else None
            if found is None:
                raise TrainingDataError(
                    f"the samples of {name} carry no known feature spec: large_order_threshold is "
                    "'auto' and neither a production version nor a strategy has set it; train "
                    f"{name} from trades first or set large_order_threshold to a number")
            spec = found
        key = spec_hash(spec)
        skipped = sum(n for h, n, _ in counts if h is not None and h != key)
        if skipped:
            log.warning("retraining %s on the samples of its serving feature spec %s; skipped %d "
                        "samples computed with other specs", name, key, skipped)
        return spec, skipped

    def retrain(self, ticker: str) -> TrainOutcome | None:
        """Train on the ticker's stored samples now (None if another process holds the lease)."""
        name = self._ticker(ticker)
        owner = f"{self._owner}:{threading.get_ident()}"
        if not self.samples.acquire_lease(name, owner, LEASE_TTL_S):
            log.info("another process is training %s; skipping", name)
            return None
        batch_id = None
        try:
            spec, skipped = self._training_spec(name)
            batch = self.samples.load(name, spec=spec_hash(spec))
            if batch.max_id is None:
                return None
            batch.X.attrs["feature_spec"] = spec.to_dict()
            config = self._ticker_config(name)  # with its tuned set, if it was tuned
            key = fingerprint(batch.X, batch.y, config)[:32]
            batch_id = self.samples.claim_batch(name, batch.max_id, key)
            extra = {"max_sample_id": str(batch.max_id), "feature_spec_hash": spec_hash(spec)}
            if skipped:
                extra["skipped_other_spec"] = str(skipped)
            result = train_model(batch.X, batch.y, config, source="samples",
                                 extra_lineage=extra)
            outcome = self._register(name, result)
            self.samples.finish_batch(batch_id, outcome.version.version)
            return outcome
        except BaseException as exc:
            if batch_id is not None:
                self.samples.fail_batch(batch_id, str(exc)[:500])
            raise
        finally:
            self.samples.release_lease(name, owner)

    def wait_for_retraining(self, timeout: float | None = None) -> list[TrainOutcome]:
        """Block until scheduled retrainings finish; return their outcomes."""
        return self.retraining.wait(timeout)

    # ------------------------------------------------------------------ training
    def _register(self, ticker: str, result: TrainingResult) -> TrainOutcome:
        # the gate decides first, so its tags are written with the version (one write)
        call = self.registry.gate_decision(ticker, result.model, result.X_valid, result.y_valid)
        info, created = self.registry.register(ticker, result.model, lineage=result.lineage,
                                               idempotency_key=result.idempotency_key,
                                               gate_tags=call.tags,
                                               holdout=(result.X_valid, result.y_valid))
        decision = None
        # A version found by its key whose gate never moved an alias was registered by an
        # attempt that died before (or while) gating it: finish that attempt's work now.
        if created or not self.registry.gate_applied(ticker, info.version):
            try:
                decision = self._gate(ticker, info.version, call if created else None, result)
            except PromotionConflictError:
                # another process registering the same training gated this version meanwhile:
                # the same outcome, not an error
                if not self.registry.gate_applied(ticker, info.version):
                    raise
            if decision is not None and decision.promoted and self.cache.peek(ticker) is not None:
                self.cache.put(self._served(ticker, info, result.model))
        return TrainOutcome(ticker, info, created, decision)

    def _gate(self, ticker: str, version: int, call: GateCall | None,
              result: TrainingResult) -> PromotionDecision:
        if call is not None:
            try:
                self.registry.place(ticker, version, call)
                return call.decision
            except PromotionConflictError:
                pass  # an alias moved since the gate decided: decide again against what serves
        return self.registry.apply_gate(ticker, version, result.model, result.X_valid,
                                        result.y_valid)

    def train(self, ticker: str, trades: pd.DataFrame | None = None, *,
              files: Iterable[str | os.PathLike[str]] = (), market: pd.DataFrame | None = None,
              X: pd.DataFrame | None = None, y: pd.DataFrame | None = None,
              n_jobs: int | None = None) -> TrainOutcome:
        """Train and register one version from trades (frame or files) or from ``(X, y)``.

        ``n_jobs`` overrides the config's threads per head for this training; a tuned ticker
        trains with its tuned set (:meth:`tune`).
        """
        name = self._ticker(ticker)
        config = self._ticker_config(name, n_jobs)
        if X is not None and y is not None:
            return self._register(name, train_model(X, y, config, source="features"))
        paths = [str(p) for p in files]
        trades = self._trades_of(trades, paths, "train")
        return self._register(name, train_on_trades(trades, config, market=market,
                                                    files=[Path(p).name for p in paths]))

    def close(self) -> None:
        """Finish scheduled retraining (at most ``close_timeout`` seconds: past it the training
        is abandoned and its samples stay for the next process), stop the refresher, release
        the stores."""
        self.retraining.shutdown(timeout=self.config.close_timeout)
        self.cache.close()
        self.samples.close()

    def __enter__(self) -> SyncTickerModelManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
