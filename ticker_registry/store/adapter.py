"""The registry adapter: the one class that talks to MLflow's tracking and registry APIs.

Everything above it (registration, aliases, the audit trail, views, locks,
doctor, maintenance, bundles) calls these narrow methods and receives our own
records (:mod:`ticker_registry.records`), never an MLflow entity. Each method
is one retried operation (:func:`~ticker_registry.store.retry.with_retries`,
jittered back-off within ``deadline`` seconds), and MLflow / SQLAlchemy /
connection errors leave it as :mod:`ticker_registry.exceptions`: retries and
error translation live here and nowhere else, so they never nest.

The store is chosen by the caller (:func:`resolve_tracking_uri`): MLflow's
global tracking URI is never read or changed. On an ``http(s)://`` store the
per-request timeout is MLflow's ``MLFLOW_HTTP_REQUEST_TIMEOUT`` (MLflow reads
it from the environment at each request and has no per-client setting): the
adapter sets it from ``timeout`` unless the user set it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from filelock import FileLock

from ..exceptions import ModelNotFoundError, RegistryError
from ..records import ModelRecord, RunRecord, Snapshot, VersionInfo
from .entities import download, model_record, run_record, version_info
from .retry import apply_http_deadlines, default_deadline, translate_errors, with_retries

__all__ = ["ARTIFACT_ROOT", "DEFAULT_MODELS_DIR", "MlflowStore", "resolve_tracking_uri"]

T = TypeVar("T")

log = logging.getLogger("ticker_registry.registry")  # the logger these warnings always had

DEFAULT_MODELS_DIR = "mlruns"
#: Folder of a new embedded store's artifacts inside ``models_dir`` (``mlflow server``'s default).
ARTIFACT_ROOT = "mlartifacts"
_PAGE = 1000
#: The LoggedModel tag listing the versions made from it (MLflow's ``mlflow.modelVersions``).
_MODEL_VERSIONS_TAG = "mlflow.modelVersions"


def resolve_tracking_uri(tracking_uri: str | None, models_dir: str | os.PathLike[str] | None) -> str:
    """The store URI: explicit, else ``MLFLOW_TRACKING_URI``, else SQLite in ``models_dir``."""
    if tracking_uri:
        return tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    directory = Path(models_dir or DEFAULT_MODELS_DIR).absolute()
    return f"sqlite:///{directory / 'mlflow.db'}"


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


class MlflowStore:
    """One MLflow tracking + registry store (SQLite, a SQL database, or an ``mlflow server``).

    Parameters
    ----------
    tracking_uri
        The store's URI (also its registry URI).
    models_dir
        Folder of the embedded store's artifacts and lock files.
    timeout
        Seconds per HTTP request to a server store (``registry_timeout`` in the config).
    deadline
        Seconds after which no retry starts; default: env ``TICKER_REGISTRY_RETRY_DEADLINE``,
        else ``timeout`` on a server store and 30 s on a local one.
    """

    def __init__(self, tracking_uri: str, *, models_dir: Path, timeout: float = 10.0,
                 deadline: float | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.models_dir = Path(models_dir)
        self.timeout = timeout
        self._deadline = deadline
        self._client: Any = None
        self._sql: Any = None  # SQLAlchemy engine of the snapshot read, created on first use
        self._experiments: dict[str, str] = {}

    # ------------------------------------------------------------------ plumbing
    @property
    def is_local(self) -> bool:
        """True for the embedded SQLite store (file locks are enough)."""
        return self.tracking_uri.startswith("sqlite:")

    @property
    def is_http(self) -> bool:
        return self.tracking_uri.lower().startswith(("http:", "https:"))

    @property
    def sqlite_path(self) -> Path | None:
        """The database file of a SQLite store, else None."""
        return Path(self.tracking_uri.removeprefix("sqlite:///")) if self.is_local else None

    @property
    def deadline(self) -> float:
        if self._deadline is not None:
            return self._deadline
        if os.environ.get("TICKER_REGISTRY_RETRY_DEADLINE", "").strip():
            return default_deadline()
        return self.timeout if self.is_http else default_deadline()

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return with_retries(fn, *args, uri=self.tracking_uri, deadline=self.deadline, **kwargs)

    @property
    def client(self) -> Any:
        """The store's own ``MlflowClient``, created on first use."""
        if self._client is None:
            from mlflow import MlflowClient

            # MLflow draws tqdm bars on artifact transfers once tqdm is installed (Optuna brings
            # it): noise on a trading program's stderr and in the CLI's output. Yours win.
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
            with translate_errors(self.tracking_uri):
                if self.sqlite_path is not None:
                    # MLflow creates/migrates the schema on first use; two processes doing it
                    # at once on a new file fail ("duplicate column"), so serialise it. A store
                    # we may only read (a read-only mount, another user's files) is opened
                    # without the lock: reading creates and migrates nothing.
                    with self._init_lock():
                        client = MlflowClient(tracking_uri=self.tracking_uri,
                                              registry_uri=self.tracking_uri)
                        client.search_experiments(max_results=1)
                        client.search_registered_models(max_results=1)
                else:
                    if self.is_http:  # a dead server fails within timeout, not in ~4 minutes
                        apply_http_deadlines(self.timeout)
                    client = MlflowClient(tracking_uri=self.tracking_uri,
                                          registry_uri=self.tracking_uri)
                self._client = client
        return self._client

    def _init_lock(self) -> AbstractContextManager[object]:
        db = self.sqlite_path
        assert db is not None
        if db.is_file() and db.stat().st_size > 0 and not os.access(db.parent, os.W_OK):
            return nullcontext()
        db.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(self.lock_dir() / "_store_init.lock")

    def lock_dir(self) -> Path:
        """The folder of this SQLite store's lock files (created on demand)."""
        assert self.sqlite_path is not None, "file locks exist only beside a SQLite store"
        folder = self.sqlite_path.parent / ".locks"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def experiment_id(self, name: str) -> str:
        """The id of experiment ``name``, created (artifacts under ``models_dir``) if missing."""
        if name not in self._experiments:
            exp = self._call(self.client.get_experiment_by_name, name)
            if exp is None:
                location = None
                if not self.tracking_uri.startswith(("http:", "https:", "databricks")):
                    location = (self.models_dir / ARTIFACT_ROOT).as_uri()
                try:
                    self._experiments[name] = self._call(self.client.create_experiment, name,
                                                         artifact_location=location)
                except RegistryError:  # created by another process meanwhile
                    exp = self._call(self.client.get_experiment_by_name, name)
                    if exp is None:
                        raise
            if exp is not None:
                self._experiments[name] = exp.experiment_id
        return self._experiments[name]

    # ------------------------------------------------------------------ registered models
    def get_model(self, name: str) -> ModelRecord:
        """A registered model; :class:`ModelNotFoundError` when there is none."""
        return model_record(self._call(self.client.get_registered_model, name))

    def create_model(self, name: str, *, tags: dict[str, str], description: str) -> bool:
        """Create a registered model; False when one of that name already exists."""
        try:
            self._call(self.client.create_registered_model, name, tags=tags,
                       description=description)
        except RegistryError as exc:
            if getattr(exc, "already_exists", False):
                return False
            raise
        return True

    def delete_model(self, name: str) -> None:
        self._call(self.client.delete_registered_model, name)

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        self._call(self.client.set_registered_model_tag, name, key, value)

    def delete_model_tag(self, name: str, key: str) -> None:
        self._call(self.client.delete_registered_model_tag, name, key)

    def set_model_description(self, name: str, text: str) -> None:
        self._call(self.client.update_registered_model, name, description=text)

    def search_models(self, name_like: str) -> list[ModelRecord]:
        """Registered models whose name is ``LIKE name_like`` (paged; aliases and tags included)."""
        return [model_record(rm) for rm in self._pages(self.client.search_registered_models,
                                                        f"name LIKE '{name_like}'", _PAGE)]

    def _pages(self, search: Callable[..., Any], filter_string: str, size: int) -> Iterator[Any]:
        token = None
        while True:
            page = self._call(search, filter_string, max_results=size, page_token=token)
            yield from page
            token = getattr(page, "token", None)
            if not token:
                return

    def snapshot(self, prefix: str, keys: Collection[str] | None = None) -> Snapshot:
        """Every registered model named ``prefix...``, its live version count and its head
        versions, in one read (:func:`.snapshot.snapshot`); ``keys`` limits their tags."""
        from .snapshot import snapshot

        return snapshot(self, prefix, keys)

    # ------------------------------------------------------------------ aliases
    def set_alias(self, name: str, alias: str, version: int) -> None:
        self._call(self.client.set_registered_model_alias, name, alias, str(version))

    def delete_alias(self, name: str, alias: str) -> None:
        self._call(self.client.delete_registered_model_alias, name, alias)

    def mirror_stage(self, name: str, version: int, stage: str) -> None:
        """Set the (deprecated) stage, for UIs and tools that still read stages."""
        self._call(self.client.transition_model_version_stage, name, str(version), stage)

    # ------------------------------------------------------------------ model versions
    def get_version(self, name: str, version: int) -> VersionInfo:
        return version_info(self._call(self.client.get_model_version, name, str(int(version))))

    def search_versions(self, filter_string: str) -> list[VersionInfo]:
        """Model versions matching an MLflow filter (paged). Their ``aliases`` are empty."""
        return [version_info(mv) for mv in self._pages(self.client.search_model_versions,
                                                        filter_string, _PAGE * 10)]

    def registration_state(self, name: str, key: str) -> tuple[list[tuple[int, str]],
                                                                dict[str, str] | None]:
        """The versions tagged with idempotency ``key`` and the newest version's tags, in one
        read (:func:`.snapshot.registration_state`)."""
        from .snapshot import registration_state

        return registration_state(self, name, key)

    def newest_version(self, name: str) -> VersionInfo | None:
        """The highest-numbered version of ``name`` (any status), or None."""
        found = self._call(self.client.search_model_versions, f"name='{name}'", max_results=1,
                           order_by=["version_number DESC"])
        return version_info(found[0]) if found else None

    def create_version(self, name: str, *, source: str, run_id: str, tags: dict[str, str],
                       description: str, model_id: str | None, key: str) -> VersionInfo:
        """Create a version tagged ``idempotency_key=key``: retried without duplicates.

        A retry first looks for the version an earlier attempt may have created (its
        response lost); on a server, MLflow's HTTP client may also have re-sent the
        create, so any second version carrying ``key`` is deleted (the oldest is kept).
        """
        attempts = 0
        by_key = f"name='{name}' and tags.idempotency_key='{key}'"

        def create() -> Any:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                found = self.client.search_model_versions(by_key)
                if found:
                    return min(found, key=lambda mv: int(mv.version))
            return self.client.create_model_version(name, source, run_id, tags=tags,
                                                    description=description, model_id=model_id)

        created = version_info(self._call(create))
        if self.is_local:
            return created
        found = self.search_versions(by_key)
        keep = min(found, key=lambda v: v.version) if found else created
        for dup in found:
            if dup.version != keep.version:
                log.warning("deleting %s version %s: a duplicate of version %s (idempotency key "
                            "%s) created by a re-sent request", name, dup.version, keep.version, key)
                self.delete_version(name, dup.version)
        return keep

    def delete_version(self, name: str, version: int) -> None:
        self._call(self.client.delete_model_version, name, str(version))

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        self._call(self.client.set_model_version_tag, name, str(version), key, value)

    # ------------------------------------------------------------------ runs
    def create_run(self, experiment: str, *, tags: dict[str, str]) -> str:
        """A new run in experiment ``experiment`` (by name); its id."""
        run = self._call(self.client.create_run, self.experiment_id(experiment), tags=tags)
        return str(run.info.run_id)

    def get_run(self, run_id: str) -> RunRecord:
        return run_record(self._call(self.client.get_run, run_id))

    def search_runs(self, experiment: str, max_results: int = 10_000) -> list[RunRecord]:
        runs = self._call(self.client.search_runs, [self.experiment_id(experiment)],
                          max_results=max_results)
        return [run_record(run) for run in runs]

    def set_run_tag(self, run_id: str, key: str, value: str) -> None:
        self._call(self.client.set_tag, run_id, key, value)

    def finish_run(self, run_id: str, status: str = "FINISHED") -> None:
        self._call(self.client.set_terminated, run_id, status)

    def delete_run(self, run_id: str) -> bool:
        """Soft-delete a run (``mlflow gc`` reclaims it); False when it is gone already."""
        try:
            self._call(self.client.delete_run, run_id)
        except ModelNotFoundError:
            return False
        return True

    def log_metrics(self, run_id: str, metrics: dict[str, float], *, step: int = 0,
                    model_id: str | None = None, params: dict[str, str] | None = None,
                    stepped: Sequence[tuple[str, float, int]] = ()) -> None:
        """Log metrics at ``step`` (and ``stepped`` ``(key, value, step)`` triples, and params)
        in one batch; ``model_id`` also attaches them to that LoggedModel."""
        from mlflow.entities import Metric, Param

        now = _now_ms()
        batch = [Metric(k, float(v), now, step, model_id=model_id) for k, v in metrics.items()]
        batch += [Metric(k, float(v), now, s) for k, v, s in stepped]
        self._call(self.client.log_batch, run_id, metrics=batch,
                   params=[Param(k, str(v)) for k, v in (params or {}).items()])

    def log_artifacts(self, run_id: str, local_dir: Path, artifact_path: str) -> None:
        self._call(self.client.log_artifacts, run_id, str(local_dir), artifact_path)

    # ------------------------------------------------------------------ logged models
    def create_logged_model(self, experiment: str, *, name: str, run_id: str, model_type: str,
                            params: dict[str, str], tags: dict[str, str]) -> tuple[str, str]:
        """A PENDING LoggedModel produced by ``run_id``: ``(model_id, artifact_location)``."""
        logged = self._call(self.client.create_logged_model, self.experiment_id(experiment),
                            name=name, source_run_id=run_id, model_type=model_type,
                            params=params, tags=tags)
        from mlflow.entities import LoggedModelOutput

        self._call(self.client.log_outputs, run_id, [LoggedModelOutput(logged.model_id, step=0)])
        return str(logged.model_id), str(logged.artifact_location)

    def upload_logged_model(self, model_id: str, local_dir: Path) -> None:
        self._call(self.client.log_model_artifacts, model_id, str(local_dir))

    def finalize_logged_model(self, model_id: str, status: str = "READY") -> None:
        self._call(self.client.finalize_logged_model, model_id, status)

    def link_logged_model(self, model_id: str, name: str, version: int) -> None:
        """List a version on its LoggedModel, as MLflow's tracking server does itself (the
        embedded SQL store does not, so the UI's link from model to version would be missing)."""
        if self.is_http:
            return
        self._call(self.client.set_logged_model_tags, model_id,
                   {_MODEL_VERSIONS_TAG: json.dumps([{"name": name, "version": version}])})

    def delete_logged_model(self, model_id: str) -> bool:
        """Mark a LoggedModel deleted (``mlflow gc`` reclaims its files); False if gone."""
        try:
            self._call(self.client.delete_logged_model, model_id)
        except ModelNotFoundError:
            return False
        return True

    # ------------------------------------------------------------------ artifacts
    def download(self, artifact_uri: str, dst: Path) -> None:
        """Download ``artifact_uri`` (a folder) into ``dst``, resolved against this store."""
        self._call(download, artifact_uri, dst, self.tracking_uri)
