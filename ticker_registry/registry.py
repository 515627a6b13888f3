"""The registry adapter: the only module that talks to ``MlflowClient``.

Each ticker is one MLflow registered model named ``<namespace>.<TICKER>``
(``order_flow.ETHUSDT`` by default). Each training is one run (params,
metrics, lineage), one MLflow 3 LoggedModel produced by that run (a pyfunc
saved with "models from code": the three native heads plus the serving code,
see :mod:`ticker_registry.pyfunc_package`; it carries the run's params and
headline metrics), and one model version made from that LoggedModel, whose
tags carry the metrics, the lineage and an idempotency key. Stages are
aliases (``production``, ``staging``), moved with compare-and-set under a
per-ticker lock, and every move is appended to an audit trail kept in the
registered model's tags (``audit.000001``, ...).

The store is chosen once: an explicit ``tracking_uri``, else
``MLFLOW_TRACKING_URI``, else ``sqlite:///<models_dir>/mlflow.db`` with
artifacts under ``<models_dir>/mlartifacts`` (the name MLflow's own server
uses). Where artifacts go is the experiment's ``artifact_location``, set once
when the experiment is created: stores made before keep ``<models_dir>/artifacts``.
MLflow's global tracking URI is never changed. MLflow errors are translated
into :mod:`ticker_registry.exceptions`.
"""

from __future__ import annotations

import getpass
import json
import logging
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from .config import Config, load_config
from .evaluation import HEADS as EVAL_HEADS
from .exceptions import (
    ModelNotFoundError,
    PromotionConflictError,
    RegistryError,
    RollbackError,
)
from .gate import decide, decision_tags, serving_summary
from .locking import TickerLock, store_init_lock
from .model import OrderFlowModel, package_versions
from .store.packaging import ARTIFACT_KEY, NATIVE_SUBDIR, local_artifact_dir, save_pyfunc
from .records import AuditEvent, PromotionDecision, TrainingLineage, VersionInfo
from .store.retry import apply_http_deadlines, translate_errors, with_retries
from .tickers import normalize_ticker

__all__ = ["ARTIFACT_ROOT", "DEFAULT_MODELS_DIR", "TickerRegistry", "resolve_tracking_uri"]

log = logging.getLogger(__name__)

DEFAULT_MODELS_DIR = "mlruns"
#: Folder of a new embedded store's artifacts inside ``models_dir`` (``mlflow server``'s default).
ARTIFACT_ROOT = "mlartifacts"
KIND = "order_flow_model"
_PAGE = 1000
#: The LoggedModel tag listing the versions made from it (MLflow's ``mlflow.modelVersions``).
_MODEL_VERSIONS_TAG = "mlflow.modelVersions"
_KEY = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _check_key(key: object) -> str:
    """An idempotency key that is safe in an MLflow filter string."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise RegistryError(f"idempotency key {key!r} is not valid; use 1-64 letters, digits, "
                            "'.', '_' or '-' (training keys are hex digests)")
    return key


def resolve_tracking_uri(tracking_uri: str | None, models_dir: str | os.PathLike[str] | None) -> str:
    """The store URI: explicit, else ``MLFLOW_TRACKING_URI``, else SQLite in ``models_dir``."""
    if tracking_uri:
        return tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    directory = Path(models_dir or DEFAULT_MODELS_DIR).absolute()
    return f"sqlite:///{directory / 'mlflow.db'}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _ms_to_iso(ms: int | None) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class _ModelState:
    """A registered model's aliases and tags, read in one call."""

    name: str
    aliases: dict[str, int]
    tags: dict[str, str]
    description: str


class TickerRegistry:
    """Register, promote, roll back and view ticker models in one MLflow registry.

    Parameters
    ----------
    config
        Config (or dict / YAML path): namespace, alias names, gate settings.
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
        self.tracking_uri = resolve_tracking_uri(tracking_uri, self.models_dir)
        self._client: Any = None
        self._experiment_id: str | None = None

    # ------------------------------------------------------------------ plumbing
    @property
    def is_local(self) -> bool:
        """True for the embedded SQLite store (file locks are enough)."""
        return self.tracking_uri.startswith("sqlite:")

    @property
    def client(self) -> Any:
        """The registry's own ``MlflowClient``, created on first use."""
        if self._client is None:
            from mlflow import MlflowClient

            if self.is_local:
                path = self.tracking_uri.removeprefix("sqlite:///")
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            with translate_errors(self.tracking_uri):
                if self.is_local:
                    # MLflow creates/migrates the schema on first use; two processes doing it
                    # at once on a new file fail ("duplicate column"), so serialise it.
                    with store_init_lock(self.tracking_uri):
                        client = MlflowClient(tracking_uri=self.tracking_uri,
                                              registry_uri=self.tracking_uri)
                        client.search_experiments(max_results=1)
                        client.search_registered_models(max_results=1)
                else:
                    # a dead server fails within registry_timeout, not MLflow's ~4 minutes
                    apply_http_deadlines(self.config.registry_timeout)
                    client = MlflowClient(tracking_uri=self.tracking_uri,
                                          registry_uri=self.tracking_uri)
                self._client = client
        return self._client

    def model_name(self, ticker: str) -> str:
        """The registered model name of ``ticker``: ``<namespace>.<TICKER>``."""
        return f"{self.config.namespace}.{normalize_ticker(ticker)}"

    def ticker_of(self, name: str) -> str:
        return name[len(self.config.namespace) + 1:]

    def _lock(self, name: str) -> TickerLock:
        return TickerLock(self, name)

    def lock(self, ticker: str) -> TickerLock:
        """The write lock of ``ticker`` (used for registration and alias moves)."""
        return TickerLock(self, self.model_name(ticker))

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return with_retries(fn, *args, uri=self.tracking_uri, **kwargs)

    @property
    def experiment_id(self) -> str:
        if self._experiment_id is None:
            name = f"ticker-registry/{self.config.namespace}"
            exp = self._call(self.client.get_experiment_by_name, name)
            if exp is None:
                location = None
                if not self.tracking_uri.startswith(("http:", "https:", "databricks")):
                    location = (self.models_dir / ARTIFACT_ROOT).as_uri()
                try:
                    self._experiment_id = self._call(self.client.create_experiment, name,
                                                     artifact_location=location)
                except RegistryError:  # created by another process meanwhile
                    exp = self._call(self.client.get_experiment_by_name, name)
                    if exp is None:
                        raise
                    self._experiment_id = exp.experiment_id
            else:
                self._experiment_id = exp.experiment_id
        return self._experiment_id

    def _state(self, name: str) -> _ModelState:
        rm = self._call(self.client.get_registered_model, name)
        return _ModelState(name, {a: int(v) for a, v in (rm.aliases or {}).items()},
                           dict(rm.tags or {}), rm.description or "")

    def _ensure_registered_model(self, name: str, ticker: str) -> _ModelState:
        try:
            return self._state(name)
        except ModelNotFoundError:
            pass
        tags = {"ticker": ticker, "kind": KIND, "namespace": self.config.namespace,
                "created_at": _now(), "training_sessions": "0", "total_samples": "0",
                "last_trained": "", "audit_seq": "0"}
        try:
            self._call(self.client.create_registered_model, name, tags=tags,
                       description=f"Order-flow model of {ticker} (no version yet).")
        except RegistryError:
            pass  # another process created it first
        return self._state(name)

    # ------------------------------------------------------------------ registration
    def find_by_idempotency_key(self, ticker: str, key: str) -> VersionInfo | None:
        """The version registered with ``key``, or None."""
        _check_key(key)
        name = self.model_name(ticker)
        try:
            found = self._call(self.client.search_model_versions,
                               f"name='{name}' and tags.idempotency_key='{key}'")
        except ModelNotFoundError:
            return None
        live = [mv for mv in found if mv.status != "FAILED_REGISTRATION"]
        return self._version_info(min(live, key=lambda mv: int(mv.version))) if live else None

    def register(self, ticker: str, model: OrderFlowModel, *, lineage: TrainingLineage,
                 idempotency_key: str, extra_tags: dict[str, str] | None = None,
                 description: str | None = None,
                 holdout: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> tuple[VersionInfo, bool]:
        """Log ``model`` as one run and register it as a new version of ``ticker``.

        Returns ``(version, created)``; ``created`` is False when a version
        with the same idempotency key already existed (nothing new is written).
        ``holdout`` (the candidate's validation rows) feeds the confusion-matrix
        plot when ``log_plots`` is on.
        """
        model._check_fitted()
        _check_key(idempotency_key)
        ticker = normalize_ticker(ticker)
        name = self.model_name(ticker)
        existing = self.find_by_idempotency_key(ticker, idempotency_key)
        if existing is not None:
            return existing, False
        self._ensure_registered_model(name, ticker)
        with self._lock(name):
            existing = self.find_by_idempotency_key(ticker, idempotency_key)
            if existing is not None:
                return existing, False
            run_id, logged = self._log_run(ticker, model, lineage, idempotency_key, holdout)
            metrics = model.metrics_
            tags = {
                "ticker": ticker, "idempotency_key": idempotency_key,
                "model_type": model.config.model_type, "created_at": _now(),
                "model_id": logged.model_id,
                **{f"metric.{k}": repr(float(v)) for k, v in metrics.items()},
                **{f"skill.{h}": str(e.has_skill).lower() for h, e in model.evaluation_.items()},
                **{f"serving.{h}": model.serving_[h] for h in EVAL_HEADS},
                **lineage.tags(), **(extra_tags or {}),
            }
            mv = self._create_version(name, logged.artifact_location, run_id, tags,
                                      idempotency_key,
                                      description or self._version_description(ticker, model),
                                      logged.model_id)
            self._link_logged_model(logged.model_id, name, mv.version)
            self._call(self.client.set_terminated, run_id, "FINISHED")
            state = self._state(name)
            sessions = int(state.tags.get("training_sessions", "0")) + 1
            total = int(state.tags.get("total_samples", "0")) + lineage.n_samples
            for key, value in (("training_sessions", str(sessions)), ("total_samples", str(total)),
                               ("last_trained", tags["created_at"])):
                self._call(self.client.set_registered_model_tag, name, key, value)
        return self._version_info(mv), True

    def _create_version(self, name: str, source: str, run_id: str, tags: dict[str, str],
                        key: str, description: str, model_id: str | None = None) -> Any:
        attempts = 0

        def create() -> Any:
            nonlocal attempts
            attempts += 1
            if attempts > 1:  # a lost response to an earlier attempt may already have created it
                found = self._call(self.client.search_model_versions,
                                   f"name='{name}' and tags.idempotency_key='{key}'")
                if found:
                    return min(found, key=lambda mv: int(mv.version))
            return self.client.create_model_version(name, source, run_id, tags=tags,
                                                    description=description, model_id=model_id)

        return self._drop_duplicates(name, key, with_retries(create, uri=self.tracking_uri))

    def _link_logged_model(self, model_id: str, name: str, version: Any) -> None:
        """List the new version on its LoggedModel, as MLflow's tracking server does itself.

        A server records it when the version is created with a ``model_id``; the
        embedded SQL store does not, so the link from the LoggedModel to its
        version would be missing in the UI and in ``search_logged_models``.
        """
        if self.tracking_uri.startswith(("http:", "https:")):
            return
        self._call(self.client.set_logged_model_tags, model_id,
                   {_MODEL_VERSIONS_TAG: json.dumps([{"name": name, "version": version}])})

    def _drop_duplicates(self, name: str, key: str, created: Any) -> Any:
        """Keep the oldest version carrying ``key``; delete any other.

        MLflow's HTTP client re-sends a POST whose response was lost
        (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``), so one ``create_model_version``
        against a server that died and came back can create two versions.
        """
        if self.is_local:
            return created
        found = self._call(self.client.search_model_versions,
                           f"name='{name}' and tags.idempotency_key='{key}'")
        if len(found) < 2:
            return created
        keep = min(found, key=lambda mv: int(mv.version))
        for mv in found:
            if mv.version != keep.version:
                log.warning("deleting %s version %s: a duplicate of version %s (idempotency key "
                            "%s) created by a re-sent request", name, mv.version, keep.version, key)
                self._call(self.client.delete_model_version, name, str(mv.version))
        return keep

    def _log_run(self, ticker: str, model: OrderFlowModel, lineage: TrainingLineage,
                 key: str, holdout: tuple[pd.DataFrame, pd.DataFrame] | None) -> tuple[str, Any]:
        """The run of a training and the LoggedModel it outputs, with the model files in place.

        Returns ``(run_id, logged_model)``; the LoggedModel is READY, carries the
        run's params and the headline metrics, and is listed in the run's outputs.
        """
        from mlflow.entities import LoggedModelOutput, Metric, Param

        params = {"ticker": ticker, "model_type": model.config.model_type,
                  **{f"spec.{k}": v for k, v in model.spec_.to_dict().items()
                     if k not in ("feature_names", "flow_types")},
                  **{f"hp.{k}": v for k, v in model.config.model_hyperparameters().items()},
                  "cv_folds": model.config.cv_folds, "cv_embargo": model.config.cv_embargo,
                  "skill_alpha": model.config.skill_alpha,
                  "random_seed": model.config.random_seed}
        tags = {"ticker": ticker, "idempotency_key": key, "mlflow.runName": f"train-{ticker}",
                **lineage.tags(),
                **{f"package.{k}": v for k, v in package_versions().items()}}
        run = self._call(self.client.create_run, self.experiment_id, tags=tags)
        run_id = run.info.run_id
        logged = self._call(self.client.create_logged_model, self.experiment_id, name=ticker,
                            source_run_id=run_id, model_type=model.config.model_type,
                            params={k: str(v) for k, v in params.items()},
                            tags={"ticker": ticker, "idempotency_key": key})
        model_id = logged.model_id
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        # per-fold walk-forward figures as stepped metrics (step = fold): the UI plots them
        folds = [Metric(f"fold_{k}", float(v), now_ms, int(fold["fold"]))
                 for fold in getattr(model, "folds_", []) for k, v in fold.items() if k != "fold"]
        # the headline metrics go to the run and, through model_id, to the LoggedModel
        self._call(self.client.log_batch, run_id,  # the tags went with create_run
                   metrics=[Metric(k, float(v), now_ms, 0, model_id=model_id)
                            for k, v in model.metrics_.items()]
                   + folds, params=[Param(k, str(v)) for k, v in params.items()])
        self._call(self.client.log_outputs, run_id, [LoggedModelOutput(model_id, step=0)])
        if self.config.log_plots:
            from .plots import write_plots

            with tempfile.TemporaryDirectory(prefix="ticker-registry-plots-") as tmp:
                write_plots(model, Path(tmp) / "plots", *(holdout or (None, None)))
                self._call(self.client.log_artifacts, run_id, str(Path(tmp) / "plots"), "plots")
        local = local_artifact_dir(logged.artifact_location)
        identity = {"model_id": model_id, "run_id": run_id,
                    "artifact_uri": logged.artifact_location}
        if local is not None:  # embedded store: write in place rather than save + copy
            save_pyfunc(model, local, **identity)
        else:
            with tempfile.TemporaryDirectory(prefix="ticker-registry-model-") as tmp:
                save_pyfunc(model, Path(tmp) / "model", **identity)
                self._call(self.client.log_model_artifacts, model_id, str(Path(tmp) / "model"))
        self._call(self.client.finalize_logged_model, model_id, "READY")
        return run_id, logged

    def _version_description(self, ticker: str, model: OrderFlowModel) -> str:
        evaluations = "; ".join(e.summary() for e in model.evaluation_.values())
        return (f"{ticker} order-flow model ({model.config.model_type}), purged walk-forward "
                f"over {int(model.metrics_['n_train'])} rows ({int(model.metrics_['n_valid'])} "
                f"out of sample): {evaluations}. Serves {serving_summary(model)}.")

    # ------------------------------------------------------------------ gate
    def apply_gate(self, ticker: str, version: int, candidate: OrderFlowModel,
                   X_valid: pd.DataFrame | None = None,
                   y_valid: pd.DataFrame | None = None) -> PromotionDecision:
        """Champion/challenger: decide (:func:`ticker_registry.gate.decide`) and apply.

        ``X_valid``/``y_valid`` are the candidate's last walk-forward test block
        (``TrainingResult.X_valid``); production is loaded and scored on the
        rows of it that lie after its own training data.
        """
        cfg = self.config
        ticker = normalize_ticker(ticker)
        name = self.model_name(ticker)
        state = self._state(name)
        champion_version = state.aliases.get(cfg.production_alias)
        champion = last_event = None
        if champion_version is not None:
            champion = self.load_model(ticker, champion_version)
            last_event = self.get_version(ticker, champion_version).tags.get("lineage.last_trade")
        decision, comparisons = decide(candidate, champion=champion,
                                       champion_version=champion_version,
                                       champion_last_event=last_event, X_holdout=X_valid,
                                       y_holdout=y_valid, cfg=cfg)
        for key, value in decision_tags(decision, comparisons).items():
            self._call(self.client.set_model_version_tag, name, str(version), key, value)
        self.promote(ticker, version, to=decision.alias, reason=f"gate: {decision.reason}"[:1000],
                     expected=state.aliases.get(decision.alias), action="gate")
        return decision

    def gate_applied(self, ticker: str, version: int) -> bool:
        """True when the gate already placed ``version``: an alias holds it or the audit
        trail records the gate's move (the ``gate.*`` tags are written before the move,
        so they alone do not prove it happened)."""
        state = self._state(self.model_name(ticker))
        if int(version) in state.aliases.values():
            return True
        return any(e.action == "gate" and e.to_version == int(version)
                   for e in _audit_from_tags(state.tags))

    # ------------------------------------------------------------------ aliases
    def promote(self, ticker: str, version: int, *, to: str | None = None, reason: str = "",
                expected: int | None | str = "current", action: str = "promote") -> AuditEvent:
        """Point alias ``to`` (default production) at ``version``, compare-and-set.

        ``expected`` is the version the caller last saw on the alias (None:
        the alias was unset). With the default ``"current"`` the alias is read
        at call time, so only a move that lands between that read and the
        write is reported. A lost race raises :class:`PromotionConflictError`.
        """
        ticker = normalize_ticker(ticker)
        name = self.model_name(ticker)
        alias = to or self.config.production_alias
        if alias not in (self.config.production_alias, self.config.staging_alias):
            raise RegistryError(f"unknown alias {alias!r}; use {self.config.production_alias!r} "
                                f"or {self.config.staging_alias!r}")
        target = self.get_version(ticker, int(version))
        if target.status != "READY":
            raise RegistryError(f"{name} version {version} is {target.status}, not READY")
        if expected == "current":
            expected = self._state(name).aliases.get(alias)
        with self._lock(name):
            state = self._state(name)
            current = state.aliases.get(alias)
            if current != expected:
                raise PromotionConflictError(
                    f"{alias} of {ticker} moved to version {current} while you expected "
                    f"{expected}; read the status again and retry")
            self._call(self.client.set_registered_model_alias, name, alias, str(version))
            if alias == self.config.production_alias and action != "gate":
                staging = state.aliases.get(self.config.staging_alias)
                if staging == int(version):
                    self._call(self.client.delete_registered_model_alias, name,
                               self.config.staging_alias)
            event = self._append_audit(name, state, action=action, alias=alias,
                                       from_version=current, to_version=int(version), reason=reason)
            if self.config.mirror_stages:
                stage = "Production" if alias == self.config.production_alias else "Staging"
                self._call(self.client.transition_model_version_stage, name, str(version), stage)
            self._refresh_description(name, ticker)
        return event

    def _append_audit(self, name: str, state: _ModelState, **fields: Any) -> AuditEvent:
        seq = int(state.tags.get("audit_seq", "0")) + 1
        event = AuditEvent(seq=seq, when=_now(), user=_user(), **fields)
        self._call(self.client.set_registered_model_tag, name, f"audit.{seq:06d}", event.to_json())
        self._call(self.client.set_registered_model_tag, name, "audit_seq", str(seq))
        return event

    def audit_trail(self, ticker: str) -> list[AuditEvent]:
        """Every alias move of ``ticker``, oldest first."""
        return _audit_from_tags(self._state(self.model_name(ticker)).tags)

    def rollback(self, ticker: str, *, to_version: int | None = None, reason: str = "",
                 expected: int | None | str = "current") -> AuditEvent:
        """Move production back to the previous production version (or ``to_version``).

        Raises
        ------
        RollbackError
            No earlier production version, or the target is deleted / not READY.
        """
        ticker = normalize_ticker(ticker)
        name = self.model_name(ticker)
        alias = self.config.production_alias
        state = self._state(name)
        current = state.aliases.get(alias)
        if expected != "current" and expected != current:
            raise PromotionConflictError(
                f"{alias} of {ticker} moved to version {current} while you expected "
                f"{expected}; read the status again and retry")
        if to_version is None:
            history = _production_history(_audit_from_tags(state.tags), alias)
            if len(history) < 2:
                raise RollbackError(f"{ticker} has no earlier production version to roll back to; "
                                    "name one with --to-version")
            to_version = history[-2]
        try:
            target = self.get_version(ticker, int(to_version))
        except ModelNotFoundError:
            raise RollbackError(f"cannot roll {ticker} back to version {to_version}: it does not "
                                f"exist (deleted?); see `ticker-registry versions {ticker}`") from None
        if target.status != "READY":
            raise RollbackError(f"cannot roll {ticker} back to version {to_version}: "
                                f"it is {target.status}")
        if target.version == current:
            raise RollbackError(f"version {to_version} of {ticker} is already {alias}")
        return self.promote(ticker, target.version, to=alias, expected=current, action="rollback",
                            reason=reason or f"rollback from v{current}")

    def _refresh_description(self, name: str, ticker: str) -> None:
        state = self._state(name)
        prod = state.aliases.get(self.config.production_alias)
        text = f"Order-flow model of {ticker}."
        if prod is not None:
            info = self.get_version(ticker, prod)
            m = info.metrics
            text = (f"Order-flow model of {ticker} ({info.tags.get('model_type', '?')}). "
                    f"Production: version {prod}; flow_type accuracy "
                    f"{m.get('flow_type_accuracy', float('nan')):.3f}, impact MSE "
                    f"{m.get('impact_mse', float('nan')):.4g}, time_to_execution MSE "
                    f"{m.get('time_to_execution_mse', float('nan')):.4g}. "
                    f"Trained {state.tags.get('training_sessions', '0')} times on "
                    f"{state.tags.get('total_samples', '0')} samples.")
        if text != state.description:
            self._call(self.client.update_registered_model, name, description=text)

    # ------------------------------------------------------------------ reading
    def get_version(self, ticker: str, version: int) -> VersionInfo:
        name = self.model_name(ticker)
        try:
            mv = self._call(self.client.get_model_version, name, str(int(version)))
        except ModelNotFoundError:
            raise ModelNotFoundError(f"{normalize_ticker(ticker)} has no version {version}; "
                                     f"see `ticker-registry versions {normalize_ticker(ticker)}`"
                                     ) from None
        return self._version_info(mv)

    def resolve(self, ticker: str, version_or_alias: int | str | None = None) -> VersionInfo:
        """A version by number or alias (default: production)."""
        ref = self.config.production_alias if version_or_alias is None else version_or_alias
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            return self.get_version(ticker, int(ref))
        name = self.model_name(ticker)
        try:
            version = self._state(name).aliases.get(ref)
        except ModelNotFoundError:
            version = None
        if version is None:
            raise ModelNotFoundError(f"{normalize_ticker(ticker)} has no {ref!r} version; train "
                                     "it or promote a version first")
        return _with_aliases(self.get_version(ticker, version), (ref,))

    def production_version(self, ticker: str) -> int | None:
        """The version number holding the production alias, or None."""
        try:
            return self._state(self.model_name(ticker)).aliases.get(self.config.production_alias)
        except ModelNotFoundError:
            return None

    def _version_info(self, mv: Any) -> VersionInfo:
        tags = dict(mv.tags or {})
        return VersionInfo(
            ticker=tags.get("ticker") or self.ticker_of(mv.name), name=mv.name,
            version=int(mv.version), run_id=mv.run_id, created_at=_ms_to_iso(mv.creation_timestamp),
            aliases=tuple(mv.aliases or ()), metrics=_metric_tags(tags), tags=tags, source=mv.source,
            status=str(mv.status), description=mv.description or "")

    def load_model(self, ticker: str, version: int | str | None = None) -> OrderFlowModel:
        """Download (once) and load the native model of a version."""
        info = self.resolve(ticker, version)
        return OrderFlowModel.load(self.download_native(info))

    def download_native(self, info: VersionInfo, cache_dir: Path | None = None) -> Path:
        """The local folder of a version's native model, downloaded into the cache once.

        Read from the version's source (its LoggedModel's artifacts; for versions
        registered before LoggedModels, the run's ``model/`` artifact): the native
        files are at ``<source>/artifacts/order_flow_model`` in both.
        """
        root = Path(cache_dir or self.models_dir / "cache")
        # Keyed by run too: a deleted and re-created registered model restarts at version 1.
        target = root / info.name / f"{info.version}-{info.run_id}"
        if (target / "model.json").is_file():
            return target
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=root))
        try:
            self._call(_download, f"{info.source.rstrip('/')}/{NATIVE_SUBDIR}", tmp,
                       self.tracking_uri)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(tmp / ARTIFACT_KEY, target)
            except OSError:
                if not (target / "model.json").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    def list_versions(self, ticker: str) -> list[VersionInfo]:
        """Every version of a ticker, newest first, with aliases filled in."""
        name = self.model_name(ticker)
        state = self._state(name)
        by_version: dict[int, list[str]] = {}
        for alias, v in state.aliases.items():
            by_version.setdefault(v, []).append(alias)
        out = self.search_versions(f"name='{name}'")
        out = [_with_aliases(v, tuple(sorted(by_version.get(v.version, ())))) for v in out]
        return sorted(out, key=lambda v: -v.version)

    def search_versions(self, filter_string: str) -> list[VersionInfo]:
        """Model versions matching an MLflow filter (paged). Their ``aliases`` are empty."""
        out: list[VersionInfo] = []
        token = None
        while True:
            page = self._call(self.client.search_model_versions, filter_string,
                              max_results=_PAGE * 10, page_token=token)
            out.extend(self._version_info(mv) for mv in page)
            token = getattr(page, "token", None)
            if not token:
                return out

    def search_models(self) -> list[_ModelState]:
        """All registered models of this namespace (paged; aliases and tags included)."""
        out: list[_ModelState] = []
        token = None
        while True:
            page = self._call(self.client.search_registered_models,
                              f"name LIKE '{self.config.namespace}.%'", max_results=_PAGE,
                              page_token=token)
            out.extend(_ModelState(rm.name, {a: int(v) for a, v in (rm.aliases or {}).items()},
                                   dict(rm.tags or {}), rm.description or "") for rm in page)
            token = getattr(page, "token", None)
            if not token:
                return out

    def delete_version(self, ticker: str, version: int) -> None:
        self._call(self.client.delete_model_version, self.model_name(ticker), str(version))

    def delete_logged_model(self, model_id: str) -> bool:
        """Mark a version's LoggedModel deleted (``mlflow gc`` reclaims its files); False if gone."""
        try:
            self._call(self.client.delete_logged_model, model_id)
        except ModelNotFoundError:
            return False
        return True

    def delete_registered_model(self, ticker: str) -> None:
        self._call(self.client.delete_registered_model, self.model_name(ticker))

    def set_version_tag(self, ticker: str, version: int, key: str, value: str) -> None:
        self._call(self.client.set_model_version_tag, self.model_name(ticker), str(version), key,
                   value)

    def log_run_metrics(self, run_id: str, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        self._call(self.client.log_batch, run_id,
                   metrics=[Metric(k, float(v), now_ms, step) for k, v in metrics.items()])


def _download(artifact_uri: str, dst: Path, tracking_uri: str) -> None:
    """Download ``artifact_uri`` (a folder) into ``dst``, resolved against our store, not MLflow's global."""
    import mlflow.artifacts

    mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=str(dst),
                                        tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _metric_tags(tags: dict[str, str]) -> dict[str, float]:
    """The finite numeric ``metric.*`` tags; a tag set by hand in the UI (``metric.note=see
    notebook``) is kept as a tag but never breaks a view."""
    out = {}
    for key, value in tags.items():
        if key.startswith("metric."):
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if math.isfinite(number):
                out[key[7:]] = number
    return out


def _with_aliases(info: VersionInfo, aliases: tuple[str, ...]) -> VersionInfo:
    from dataclasses import replace

    return replace(info, aliases=aliases)


def _audit_from_tags(tags: dict[str, str]) -> list[AuditEvent]:
    events = []
    for key in sorted(k for k in tags if k.startswith("audit.")):
        try:
            events.append(AuditEvent.from_json(tags[key]))
        except (ValueError, TypeError):
            log.warning("ignoring unreadable audit tag %s", key)
    return events


def _production_history(events: list[AuditEvent], alias: str) -> list[int]:
    """The stack of production versions: promotions push, a rollback pops back to its target."""
    stack: list[int] = []
    for event in events:
        if event.alias != alias or event.to_version is None:
            continue
        if event.action == "rollback" and event.to_version in stack:
            del stack[stack.index(event.to_version) + 1:]
        elif not stack or stack[-1] != event.to_version:  # re-promoting the same version: no move
            stack.append(event.to_version)
    return stack


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"

