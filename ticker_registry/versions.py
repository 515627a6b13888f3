"""Ticker models in an MLflow registry: registration and reads, above the adapter.

Each ticker is one MLflow registered model named ``<namespace>.<TICKER>``
(``order_flow.ETHUSDT`` by default). Each training is one run (params,
metrics, lineage), one MLflow 3 LoggedModel produced by that run (a pyfunc
saved with "models from code", see :mod:`ticker_registry.store.packaging`),
and one model version made from that LoggedModel, whose tags carry the
metrics, the lineage, the ticker's running totals (:mod:`.lineage`) and an
idempotency key. Stages are aliases (``production``, ``staging``): the alias
is the one record of which version serves; moving it is :mod:`.aliases`'s
job, and :class:`ticker_registry.registry.TickerRegistry` puts the two together.

Only :mod:`ticker_registry.store` talks to MLflow; this module works on its
records. The store is chosen once: an explicit ``tracking_uri``, else
``MLFLOW_TRACKING_URI``, else ``sqlite:///<models_dir>/mlflow.db`` with
artifacts under ``<models_dir>/mlartifacts``; MLflow's global tracking URI is
never changed.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Collection
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from . import native_cache
from .audit import AuditTrail
from .config import Config, load_config
from .descriptions import version_description
from .evaluation import HEADS
from .exceptions import InvalidArgumentError, ModelNotFoundError
from .lineage import next_totals
from .locking import TickerLock
from .model import OrderFlowModel
from .records import ModelRecord, Snapshot, TrainingLineage, VersionInfo
from .redaction import redact_uri
from .store import DEFAULT_MODELS_DIR, MlflowStore, resolve_tracking_uri
from .store.runs import log_training
from .tickers import normalize_ticker

__all__ = ["REGISTRY_TAGS", "REGISTRY_TAG_PREFIXES", "VersionCatalog"]

KIND = "order_flow_model"
_KEY = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: Version tags the registry computes (and prefixes of those): ``extra_tags`` may not replace them.
REGISTRY_TAGS = frozenset({"ticker", "idempotency_key", "model_type", "created_at", "model_id"})
REGISTRY_TAG_PREFIXES = ("metric.", "skill.", "serving.", "totals.", "lineage.", "gate.", "native.")


def _check_key(key: object) -> str:
    """An idempotency key that is safe in an MLflow filter string."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise InvalidArgumentError(f"idempotency key {key!r} is not valid; use 1-64 letters, digits, "
                            "'.', '_' or '-' (training keys are hex digests)")
    return key


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class VersionCatalog:
    """Register and read ticker models in one MLflow registry (aliases: see ``TickerRegistry``).

    Parameters
    ----------
    config
        Config (or dict / YAML path): namespace, alias names, gate settings,
        ``registry_timeout``.
    tracking_uri
        Any MLflow URI (``sqlite:///...``, ``http://...``,
        ``postgresql+psycopg2://...``); see :func:`resolve_tracking_uri`.
    models_dir
        Folder of the embedded store, local artifacts, locks and the model cache.
    """

    def __init__(self, config: Config | dict | str | Path | None = None, *,
                 tracking_uri: str | None = None,
                 models_dir: str | os.PathLike[str] | None = None) -> None:
        self.config = load_config(config)
        self.models_dir = Path(models_dir or DEFAULT_MODELS_DIR).absolute()
        self.store = MlflowStore(resolve_tracking_uri(tracking_uri, self.models_dir),
                                 models_dir=self.models_dir,
                                 timeout=self.config.registry_timeout)
        self.experiment_name = f"ticker-registry/{self.config.namespace}"
        self.audit = AuditTrail(self.store, self.config.namespace)
        self._known_models: set[str] = set()  # registered models seen to exist
        self._created_models: set[str] = set()  # ... and those this catalog created

    # ------------------------------------------------------------------ plumbing
    @property
    def tracking_uri(self) -> str:
        return self.store.tracking_uri

    @property
    def is_local(self) -> bool:
        """True for the embedded SQLite store (file locks are enough)."""
        return self.store.is_local

    @property
    def experiment_id(self) -> str:
        """The id of the experiment holding this namespace's training runs."""
        return self.store.experiment_id(self.experiment_name)

    def model_name(self, ticker: str) -> str:
        """The registered model name of ``ticker``: ``<namespace>.<TICKER>``."""
        return f"{self.config.namespace}.{normalize_ticker(ticker)}"

    def ticker_of(self, name: str) -> str:
        return name[len(self.config.namespace) + 1:]

    def lock(self, ticker: str) -> TickerLock:
        """The write lock of ``ticker`` (used for registration and alias moves)."""
        return TickerLock(self.store, self.model_name(ticker))

    def model(self, ticker: str) -> ModelRecord:
        """The registered model of ``ticker`` (:class:`ModelNotFoundError` if none)."""
        try:
            return self.store.get_model(self.model_name(ticker))
        except ModelNotFoundError:
            raise ModelNotFoundError(
                f"{normalize_ticker(ticker)} is not in the registry at "
                f"{redact_uri(self.tracking_uri)}; `ticker-registry status` lists the tickers "
                "there (train it first, or check --models-dir / --tracking-uri)") from None

    def _ensure_registered_model(self, name: str, ticker: str) -> None:
        """Create the registered model unless this catalog saw it already (no read then)."""
        if name in self._known_models:
            return
        tags = {"ticker": ticker, "kind": KIND, "namespace": self.config.namespace,
                "created_at": _now()}
        # create straight away (one request): False when it exists already
        if self.store.create_model(name, tags=tags, description=f"Order-flow model of {ticker} "
                                   "(no version yet)."):
            self._created_models.add(name)  # ours: no counter tags of an older layout
        self._known_models.add(name)

    # ------------------------------------------------------------------ registration
    def find_by_idempotency_key(self, ticker: str, key: str) -> VersionInfo | None:
        """The version registered with ``key``, or None."""
        _check_key(key)
        name = self.model_name(ticker)
        try:
            found = self.store.search_versions(f"name='{name}' and tags.idempotency_key='{key}'")
        except ModelNotFoundError:
            return None
        live = [v for v in found if v.status != "FAILED_REGISTRATION"]
        return min(live, key=lambda v: v.version) if live else None

    def register(self, ticker: str, model: OrderFlowModel, *, lineage: TrainingLineage,
                 idempotency_key: str, extra_tags: dict[str, str] | None = None,
                 gate_tags: dict[str, str] | None = None,
                 description: str | None = None,
                 holdout: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> tuple[VersionInfo, bool]:
        """Log ``model`` as one run and register it as a new version of ``ticker``.

        Returns ``(version, created)``; ``created`` is False when a version
        with the same idempotency key already existed (nothing new is written).
        ``holdout`` (the candidate's validation rows) feeds the confusion-matrix
        plot when ``log_plots`` is on. ``gate_tags`` are the gate's ``gate.*`` tags
        (:func:`ticker_registry.gate.decision_tags`) when it decided before the version
        existed: they are written with the version rather than one by one after it.
        """
        model._check_fitted()
        if any(not k.startswith("gate.") for k in gate_tags or {}):
            raise InvalidArgumentError("gate_tags must all start with 'gate.'")
        _check_key(idempotency_key)
        clash = sorted(k for k in extra_tags or {}
                       if k in REGISTRY_TAGS or k.startswith(REGISTRY_TAG_PREFIXES))
        if clash:
            raise InvalidArgumentError(f"extra_tags {clash[:5]} would replace tags the registry "
                                       "writes itself; give them other names (e.g. 'source.*')")
        ticker = normalize_ticker(ticker)
        name = self.model_name(ticker)
        self._ensure_registered_model(name, ticker)
        with self.lock(ticker):
            # one read: a version with this key already (a retried training), and the newest
            # version's running totals
            keyed, newest = self.store.registration_state(name, idempotency_key)
            live = [v for v, status in keyed if status != "FAILED_REGISTRATION"]
            if live:
                return self.get_version(ticker, min(live)), False
            logged = log_training(self.store, self.experiment_name, ticker, model,
                                  lineage=lineage, key=idempotency_key,
                                  log_plots=self.config.log_plots, holdout=holdout)
            # a ticker's first version: an older layout kept the counters on the model
            legacy = (self.store.get_model(name).tags
                      if newest is None and name not in self._created_models else None)
            tags = {
                "ticker": ticker, "idempotency_key": idempotency_key,
                "model_type": model.config.model_type, "created_at": _now(),
                "model_id": logged.model_id, "native.sha256": logged.native_sha256,
                **{f"metric.{k}": repr(float(v)) for k, v in model.metrics_.items()},
                **{f"skill.{h}": str(e.has_skill).lower() for h, e in model.evaluation_.items()},
                **{f"serving.{h}": model.serving_[h] for h in HEADS},
                **next_totals(newest, lineage.n_samples, legacy),
                **lineage.tags(), **(gate_tags or {}), **(extra_tags or {}),
            }
            create = functools.partial(
                self.store.create_version, name, source=logged.artifact_location,
                run_id=logged.run_id, tags=tags,
                description=description or version_description(ticker, model),
                model_id=logged.model_id, key=idempotency_key)
            try:
                info = create()
            except ModelNotFoundError:  # the registered model was deleted since we saw it
                self._known_models.discard(name)
                self._ensure_registered_model(name, ticker)
                info = create()
            self.store.link_logged_model(logged.model_id, name, info.version)
            self.store.finish_run(logged.run_id)
        return info, True

    # ------------------------------------------------------------------ reading
    def get_version(self, ticker: str, version: int) -> VersionInfo:
        try:
            return self.store.get_version(self.model_name(ticker), int(version))
        except ModelNotFoundError:
            raise ModelNotFoundError(f"{normalize_ticker(ticker)} has no version {version}; "
                                     f"see `ticker-registry versions {normalize_ticker(ticker)}`"
                                     ) from None

    def resolve(self, ticker: str, version_or_alias: int | str | None = None) -> VersionInfo:
        """A version by number or alias (default: production)."""
        ref = self.config.production_alias if version_or_alias is None else version_or_alias
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            return self.get_version(ticker, int(ref))
        try:
            version = self.model(ticker).aliases.get(ref)
        except ModelNotFoundError:
            version = None
        if version is None:
            raise ModelNotFoundError(f"{normalize_ticker(ticker)} has no {ref!r} version; train "
                                     "it or promote a version first")
        return replace(self.get_version(ticker, version), aliases=(ref,))

    def production_version(self, ticker: str) -> int | None:
        """The version number holding the production alias, or None."""
        try:
            return self.model(ticker).aliases.get(self.config.production_alias)
        except ModelNotFoundError:
            return None

    def load_model(self, ticker: str, version: int | str | None = None) -> OrderFlowModel:
        """Download (once) and load the native model of a version."""
        return OrderFlowModel.load(self.download_native(self.resolve(ticker, version)))

    def download_native(self, info: VersionInfo, cache_dir: Path | None = None) -> Path:
        """The local folder of a version's native model, downloaded into the cache once."""
        return native_cache.fetch(self.store, info,
                                  Path(cache_dir or native_cache.cache_root(self.models_dir)))

    def list_versions(self, ticker: str) -> list[VersionInfo]:
        """Every version of a ticker, newest first, with aliases filled in."""
        name = self.model_name(ticker)
        by_version: dict[int, list[str]] = {}
        for alias, v in self.model(ticker).aliases.items():
            by_version.setdefault(v, []).append(alias)
        out = [replace(v, aliases=tuple(sorted(by_version.get(v.version, ()))))
               for v in self.store.search_versions(f"name='{name}'")]
        return sorted(out, key=lambda v: -v.version)

    def search_versions(self, filter_string: str) -> list[VersionInfo]:
        """Model versions matching an MLflow filter (paged). Their ``aliases`` are empty."""
        return self.store.search_versions(filter_string)

    def snapshot(self, keys: Collection[str] | None = None) -> Snapshot:
        """This namespace's registered models, their live version counts and head versions
        (newest and aliased), in one read (:meth:`ticker_registry.store.MlflowStore.snapshot`);
        the versions have no aliases (they are on the models), and only the tags in ``keys``
        (None: all of them)."""
        return self.store.snapshot(f"{self.config.namespace}.", keys)

    def search_models(self) -> list[ModelRecord]:
        """All registered models of this namespace (paged; aliases and tags included)."""
        return self.store.search_models(f"{self.config.namespace}.%")

    # ------------------------------------------------------------------ writing
    def delete_version(self, ticker: str, version: int) -> None:
        self.store.delete_version(self.model_name(ticker), version)

    def delete_logged_model(self, model_id: str) -> bool:
        """Mark a version's LoggedModel deleted (``mlflow gc`` reclaims its files); False if gone."""
        return self.store.delete_logged_model(model_id)

    def delete_registered_model(self, ticker: str) -> None:
        self.store.delete_model(self.model_name(ticker))

    def set_version_tag(self, ticker: str, version: int, key: str, value: str) -> None:
        self.store.set_version_tag(self.model_name(ticker), version, key, value)

    def log_run_metrics(self, run_id: str, metrics: dict[str, float], step: int) -> None:
        """Log stepped metrics (live performance) on a version's training run."""
        self.store.log_metrics(run_id, metrics, step=step)
