"""Import: a verified, test-loaded bundle registered as a new version with its lineage."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..aliases import GateCall
from ..evaluation import head_skill
from ..exceptions import BundleError, ModelFormatError, ModelNotFoundError, PromotionConflictError
from ..features import FEATURE_NAMES
from ..gate import decision_tags
from ..model import OrderFlowModel, package_versions
from ..records import ModelRecord, PromotionDecision, TrainingLineage, VersionInfo
from ..tickers import normalize_ticker
from ..versions import REGISTRY_TAG_PREFIXES, REGISTRY_TAGS
from .check import import_native
from .checker import check_in_subprocess, start_check_worker
from .keys import first_bad_key, metrics_problem
from .manifest import BundleManifest
from .reader import _read_bundle

if TYPE_CHECKING:
    from ..registry import TickerRegistry

log = logging.getLogger("ticker_registry.bundle")  # the package's logger, as before the split

#: Version tags the importing registry computes itself; a source value is kept as ``source.<key>``.
#: Tags a bundle may not set on the version it becomes (kept as ``source.<key>`` instead).
_OWN_TAGS = (*REGISTRY_TAGS, "imported_from")
_OWN_TAG_PREFIXES = (*REGISTRY_TAG_PREFIXES, "import.", "source.")


@dataclass(frozen=True)
class ImportResult:
    """The version an import produced (``created``) or found (same bundle imported before)."""

    version: VersionInfo
    created: bool
    manifest: BundleManifest
    decision: PromotionDecision | None = None


#: sha256 of bundles whose exact bytes passed the isolated test load in this
#: process (kept in memory only): importing them again (force, as_ticker,
#: another store) skips the subprocess, not the verification.
_TEST_LOADED: dict[str, list[float]] = {}


def import_bundle(registry: TickerRegistry, path: str | os.PathLike[str],
                  as_ticker: str | None = None, force: bool = False,
                  promote: bool = False) -> ImportResult:
    """Verify a bundle, test-load its models in a subprocess, register a new version.

    The version lands on staging: a bundle's metrics are its own claims, so it is
    served only after review and an explicit promotion, even for a ticker with no
    production version. ``promote=True`` makes it production at once when the
    ticker has none (it never replaces an existing production version).
    Importing the same file again returns the version it created (``created``
    False; placed now if the import that created it never got to) unless ``force``
    is true; concurrent imports of one file all report the same version and aliases.
    ``as_ticker`` registers it under another ticker. Nothing is written to the registry
    unless every check passes.

    Raises
    ------
    BundleError
        The file is not a bundle, or fails a check (the message says which).
    """
    path = Path(path)
    target = normalize_ticker(as_ticker) if as_ticker else None
    start_check_worker()  # its start-up (first import of the process) overlaps the reading
    workdir = Path(tempfile.mkdtemp(prefix="ticker-registry-import-"))  # 0700, ours alone
    try:
        model_dir = workdir / "model"
        verified = _read_bundle(path, dest=model_dir)
        manifest = verified.manifest
        ticker = target or manifest.ticker
        lineage = _lineage(manifest, path.name)
        key = f"import-{verified.sha256[:24]}"
        if force:
            key = f"{key}-{uuid.uuid4().hex[:12]}"
        else:
            existing = registry.find_by_idempotency_key(ticker, key)
            if existing is not None and _placed(registry, existing.version,
                                                registry.model(ticker)):
                return ImportResult(registry.get_version(ticker, existing.version), False,
                                    manifest)
            # not placed yet (another process is importing it, or an import died before
            # placing it): go on; registration finds the version and placement finishes
        expected = _TEST_LOADED.get(verified.sha256)
        if expected is None:
            # the child loads the files; this process imports their library meanwhile
            # (a second or more in a fresh process) and loads them only once it reports
            expected = check_in_subprocess(
                model_dir, label=f"bundle {path.name!r}",
                meanwhile=lambda: import_native(manifest.model_type))
            if len(_TEST_LOADED) < 256:
                _TEST_LOADED[verified.sha256] = expected
        model = _load(model_dir, path.name)
        _check_same_prediction(model, expected, path.name)
        _warn_on_version_mismatch(manifest, path.name)
        tags = _import_tags(manifest, path.name, verified.sha256)
        _check_keys(ticker, model, lineage, tags, path.name)  # before the first write
        # decided before the version exists, so its gate.* tags are registered with it
        plan = _plan(registry, ticker, model, promote, _aliases(registry, ticker))
        info, created = registry.register(
            ticker, model, lineage=lineage, idempotency_key=key, extra_tags=tags,
            gate_tags=plan.call.tags, description=_description(manifest, path.name))
        # Placed by whichever importer of this bundle gets there first (another process may
        # be importing the same file): each reports the version as it stands once placed.
        decision = _settle(registry, ticker, info.version, model, promote,
                           plan if created else None)
        return ImportResult(registry.get_version(ticker, info.version), created, manifest,
                            decision)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _load(model_dir: Path, file_name: str) -> OrderFlowModel:
    try:
        return OrderFlowModel.load(model_dir)
    except ModelFormatError as exc:
        raise BundleError(f"bundle {file_name!r} is refused: {exc}") from None


def _check_keys(ticker: str, model: OrderFlowModel, lineage: TrainingLineage,
                tags: dict[str, str], file_name: str) -> None:
    """Every tag, param and metric key the registration would write from this bundle is one
    MLflow accepts and outside its reserved namespaces (:func:`.keys.key_problem`)."""
    from ..store.runs import training_params

    problem = (metrics_problem(model.metrics_, "model.json 'metrics'")
               or first_bad_key(tags, "tag")
               or first_bad_key(lineage.tags(), "lineage tag")
               or first_bad_key((f"metric.{k}" for k in model.metrics_), "metric tag")
               or first_bad_key(training_params(ticker, model), "param"))
    if problem:
        raise BundleError(f"bundle {file_name!r} is refused: {problem}")


def _lineage(manifest: BundleManifest, file_name: str) -> TrainingLineage:
    lin = manifest.lineage
    try:
        n_samples = int(lin.get("n_samples", "0") or 0)
    except ValueError:
        raise BundleError(f"bundle {file_name!r} is refused: lineage n_samples "
                          f"{lin.get('n_samples')!r} is not an integer") from None
    core = ("n_samples", "first_trade", "last_trade", "fingerprint", "source")
    return TrainingLineage(n_samples=n_samples, first_trade=lin.get("first_trade") or None,
                           last_trade=lin.get("last_trade") or None,
                           fingerprint=lin.get("fingerprint", ""),
                           source=lin.get("source", "import"),
                           extra={k: v for k, v in lin.items() if k not in core})


def _import_tags(manifest: BundleManifest, file_name: str, sha256: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for key, value in manifest.tags.items():
        if key.startswith("lineage."):
            continue  # travels in the lineage
        if key in _OWN_TAGS or key.startswith(_OWN_TAG_PREFIXES):
            key = f"source.{key}"  # a chain of imports nests: source.source.ticker, ...
        if len(key) <= 250:
            tags[key] = value
    tags.update({
        "imported_from": file_name[:250],
        "import.source_model": manifest.model_name,
        "import.source_version": str(manifest.model_version),
        "import.source_registry": manifest.source_registry,
        "import.bundle_sha256": sha256,
    })
    return tags


def _description(manifest: BundleManifest, file_name: str) -> str:
    note = (f"Imported from {file_name} ({manifest.model_name} version "
            f"{manifest.model_version} of {manifest.source_registry}).")
    return f"{manifest.description}\n\n{note}" if manifest.description else note


def _warn_on_version_mismatch(manifest: BundleManifest, file_name: str) -> None:
    ours = package_versions()
    for pkg in ("xgboost", "lightgbm", "scikit-learn", "skops", "numpy"):
        theirs = manifest.package_versions.get(pkg)
        if theirs and ours.get(pkg) and theirs.split(".")[:2] != ours[pkg].split(".")[:2]:
            log.warning("%s was trained with %s %s; this process has %s", file_name, pkg,
                        theirs, ours[pkg])


def _check_same_prediction(model: OrderFlowModel, expected: list[float], file_name: str) -> None:
    import numpy as np

    got = model.predict_matrix(np.zeros((1, len(FEATURE_NAMES))))[0]
    if not np.allclose(got, expected, rtol=1e-9, atol=1e-12, equal_nan=False):
        raise BundleError(f"bundle {file_name!r} is refused: the model predicts differently "
                          "here than in the isolated test load")


def _settle(registry: Any, ticker: str, version: int, model: OrderFlowModel, promote: bool,
            plan: _Plan | None) -> PromotionDecision | None:
    """Place ``version`` unless it already was; the decision made here, or None.

    ``plan`` is the placement decided before this call registered the version (None when
    registration found it existing: its tags were not written). Idempotent and safe to
    race: placement compares-and-sets the alias against the snapshot it decided on, so of
    several importers of one bundle exactly one moves it, and the others, refused or
    arriving after, find it placed.
    """
    if plan is not None:
        try:
            return _move(registry, ticker, version, plan)
        except PromotionConflictError:
            pass  # an alias moved since the plan: look again, as for a version found existing
    for _ in range(_PLACE_ATTEMPTS):
        state = registry.model(ticker)
        if _placed(registry, version, state):
            return None
        plan = _plan(registry, ticker, model, promote, dict(state.aliases))
        try:
            for key, value in plan.call.tags.items():
                registry.set_version_tag(ticker, version, key, value)
            return _move(registry, ticker, version, plan)
        except PromotionConflictError:
            continue  # an alias moved since the snapshot: look again
    if _placed(registry, version, registry.model(ticker)):
        return None
    raise BundleError(f"{ticker} version {version} was imported but could not be placed on "
                      f"staging: its aliases kept moving ({_PLACE_ATTEMPTS} attempts); promote "
                      "it explicitly")


#: How often placement is retried when another writer moves an alias in between.
_PLACE_ATTEMPTS = 5


def _placed(registry: Any, version: int, state: ModelRecord) -> bool:
    """An alias of ``state`` (the ticker's record, just read) holds ``version``, or its audit
    trail records an import or gate placing it (it may have been moved on since: an import
    never puts it back). The trail is read from ``state``, not from a second read of it."""
    if int(version) in state.aliases.values():
        return True
    return any(e.to_version == int(version) and e.action in ("import", "gate")
               for e in registry.audit.events(state))


@dataclass(frozen=True)
class _Plan:
    """Where an imported version goes, with the ``gate.*`` tags recording why.

    ``call.seen`` holds the aliases it was decided on (the compare-and-set of the move);
    ``by_gate`` is true when the gate decided (``promote`` and nothing served).
    """

    call: GateCall
    by_gate: bool


def _aliases(registry: Any, ticker: str) -> dict[str, int]:
    try:
        return dict(registry.model(ticker).aliases)
    except ModelNotFoundError:  # the ticker's first version: nothing serves yet
        return {}


def _plan(registry: Any, ticker: str, model: OrderFlowModel, promote: bool,
          seen: dict[str, int]) -> _Plan:
    """Where an imported version goes: staging, or production when asked and the ticker has none.

    A bundle's metrics are its own claims (``model.json``), not scores we
    measured, so an import never replaces an existing production version, and
    by default it is not served until promoted explicitly after review.
    ``seen`` is the snapshot of the aliases the move is decided on.
    """
    production = registry.config.production_alias
    if promote and production not in seen:
        call = registry.gate_decision(ticker, model)
        if production not in call.seen:  # (the gate read the aliases again)
            return _Plan(call, True)
        seen = dict(call.seen)
    champion = seen.get(production)
    reason = ("imported versions never replace production automatically (their metrics are "
              "the bundle's claims); promote it explicitly after review" if champion is not None
              else "imported versions are served only after review: promote it explicitly "
              "(or import with --promote)")
    decision = PromotionDecision(False, registry.config.staging_alias, reason,
                                 dict(model.metrics_), {}, champion, head_skill(model.metrics_))
    return _Plan(GateCall(decision, decision_tags(decision, []), seen), False)


def _move(registry: Any, ticker: str, version: int, plan: _Plan) -> PromotionDecision:
    """Move the alias ``plan`` chose to ``version``, compare-and-set against what it saw."""
    decision = plan.call.decision
    if plan.by_gate:
        registry.place(ticker, version, plan.call)
    else:
        registry.promote(ticker, version, to=decision.alias, reason=f"import: {decision.reason}",
                         action="import", expected=plan.call.seen.get(decision.alias))
    return decision
