"""The registry operations of the manager: views, alias moves, bundles, cleanup, doctor, tuning.

A base class of :class:`~ticker_registry.manager.SyncTickerModelManager`: each
method normalises the ticker, calls one module (:mod:`.views`, :mod:`.registry`,
:mod:`.bundle`, :mod:`.maintenance`, :mod:`.doctor`, :mod:`.tuning`) and drops what
the model cache holds for a ticker whose production moved. :meth:`_ticker_config` is
the one place a training's config is made per ticker (its tuned set, if any).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .cache import ModelCache, ServedModel
from .config import Config
from .exceptions import ModelNotFoundError, RegistryError, TickerRegistryError
from .model import OrderFlowModel
from .records import AuditEvent, PreloadResult, TrainOutcome
from .registry import TickerRegistry
from .samples import SampleStore
from .tickers import normalize_ticker

if TYPE_CHECKING:
    from .training import TrainingResult
    from .tuning import TuningResult

__all__ = ["RegistryOperations"]


def _utc(value: object) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


class RegistryOperations:
    """What a manager does with the registry besides serving and training."""

    config: Config
    registry: TickerRegistry
    samples: SampleStore
    cache: ModelCache
    _tuned_seen: dict[str, dict[str, str]]  # ticker -> its tuned.* tags as last read

    def _resume_due(self, name: str, entry: ServedModel | None) -> None:
        """Schedule a training that is due (the manager's; nothing here)."""

    def _register(self, ticker: str, result: TrainingResult) -> TrainOutcome:
        """Register and gate one training (the manager's)."""
        raise NotImplementedError

    def _ticker(self, text: str) -> str:
        return normalize_ticker(text)

    @property
    def tracking_uri(self) -> str:
        return self.registry.tracking_uri

    def _production_versions(self) -> dict[str, int]:
        """Ticker -> production version, from one search (the model cache's refresh)."""
        alias = self.config.production_alias
        return {self.registry.ticker_of(s.name): s.aliases[alias]
                for s in self.registry.search_models() if alias in s.aliases}

    def create_from_template(self, new_ticker: str, template: str | None = None,
                             trades: pd.DataFrame | None = None, *,
                             files: Iterable[str | os.PathLike[str]] = (),
                             market: pd.DataFrame | None = None, strategy: str | None = None,
                             template_trades: pd.DataFrame | None = None,
                             template_files: Iterable[str | os.PathLike[str]] = ()
                             ) -> TrainOutcome:
        """Train ``new_ticker``'s version on its own trades, starting from a template ticker.

        The template is ``template``'s production version (default: the ticker ranked first by
        served skill, :func:`ticker_registry.views.best`). ``strategy`` (default: the config's
        ``transfer_strategy``) says what is taken from it (:mod:`ticker_registry.transfer`):
        its hyperparameters, its trees to continue boosting (``warm_start``), or its trades
        pooled with the new ticker's (``pooled``: ``template_trades`` or ``template_files``
        are then required). The version is evaluated by purged walk-forward on
        ``new_ticker``'s trades (``trades``, else ``files``), each fold fitted the way the
        version is, and gated like any other candidate: a head without skill on the new
        ticker's data is served by its baseline. Its lineage tags say so:
        ``lineage.source = template``, ``lineage.template_ticker``,
        ``lineage.template_version``, ``lineage.transfer_strategy`` (the one that ran: a
        random forest cannot warm start and takes the hyperparameters),
        ``lineage.evaluated_on = <new ticker>``, ``lineage.warm_heads`` (warm start: the
        heads that continued the template's trees; ``time_to_execution`` only at a similar
        scale), and ``lineage.template_overlaps``: true when
        the template's training data end after the new ticker's first trade, so its trees and
        hyperparameters may carry later market information into the early folds (use a
        template trained on earlier data, or ``pooled``, whose template rows are cut by time).

        Raises
        ------
        ModelNotFoundError
            No template: no ticker has a production version, or ``template`` has none.
        InvalidArgumentError
            An unknown strategy, or ``pooled`` without the template's trades.
        TickerRegistryError
            Neither ``trades`` nor ``files`` (the new ticker's own data is required).
        """
        from .features import build_training_set
        from .training import train_model
        from .transfer import (
            Template,
            TemplateRows,
            check_strategy,
            effective_strategy,
            transfer_config,
            transfer_trainer,
        )
        from .views import SKILL_SCORE, best

        name = self._ticker(new_ticker)
        chosen = strategy or self.config.transfer_strategy
        check_strategy(chosen)
        paths = [str(p) for p in files]
        if trades is None and not paths:
            raise TickerRegistryError(
                f"give {name}'s own trades (a frame or files): a version started from a "
                "template is evaluated on the new ticker's data before it may serve")
        if template is None:
            ranked = [r for r in best(self.registry, SKILL_SCORE, 50) if r["ticker"] != name]
            if not ranked:
                raise ModelNotFoundError("no ticker has a production version to use as a "
                                         "template; train one first")
            template = ranked[0]["ticker"]
        source = self.registry.resolve(self._ticker(template))
        seed = OrderFlowModel.load(self.registry.download_native(source))
        rows: tuple[TemplateRows, ...] = ()
        if chosen == "pooled" and (template_trades is not None or template_files):
            t_trades = self._trades_of(template_trades, [str(p) for p in template_files], "pool")
            rows = (TemplateRows.of(source.ticker,
                                    *build_training_set(t_trades, seed.spec_, market=market)),)
        plan = Template(source.ticker, source.version, seed.config.model_type,
                        seed.config.model_hyperparameters(), seed.heads_, rows,
                        time_median=seed.baselines_.get("median_time_to_execution"))
        used = effective_strategy(chosen, plan)
        config = transfer_config(self._ticker_config(name), used, plan)
        trainer = transfer_trainer(config, used, plan)
        new_trades = self._trades_of(trades, paths, "train")
        X, y = build_training_set(new_trades, config, market=market)
        recipe = {"template_ticker": source.ticker, "template_version": str(source.version),
                  "transfer_strategy": used}
        # the template's trees and hyperparameters saw data up to its last trade: when that is
        # after the new ticker's first event, the walk-forward's early folds are not blind to
        # the market's later state (the lineage says so; pooled rows are cut by time instead)
        template_last = source.tags.get("lineage.last_trade", "")
        overlaps = bool(template_last) and len(X) > 0 and _utc(template_last) > _utc(X.index[0])
        result = train_model(X, y, config, source="template", trainer=trainer, recipe=recipe,
                             extra_lineage={**recipe, "evaluated_on": name,
                                            "trades": str(len(new_trades)),
                                            "template_last_trade": template_last,
                                            "template_overlaps": str(overlaps).lower()})
        if used == "warm_start":  # which heads continued the template's trees in the final fit
            warm = ",".join(h for h, on in trainer.warm_heads.items() if on) or "none"
            result = dataclasses.replace(result, lineage=dataclasses.replace(
                result.lineage, extra={**result.lineage.extra, "warm_heads": warm}))
        return self._register(name, result)

    def preload(self, tickers: Iterable[str], *, workers: int = 4) -> list[PreloadResult]:
        """Download and load each ticker's production version; one failure never stops others."""
        names = [t for t in tickers]

        def one(raw: str) -> PreloadResult:
            start = time.perf_counter()
            try:
                name = self._ticker(raw)
                self.cache.invalidate(name)
                entry = self.cache.get(name)
                self._resume_due(name, entry)
                if entry.model is None or entry.version is None:
                    raise ModelNotFoundError(f"{name} has no production version")
                folder = self.registry.download_native(self.registry.get_version(name, entry.version))
                size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
                return PreloadResult(name, True, entry.version, time.perf_counter() - start, size)
            except TickerRegistryError as exc:
                return PreloadResult(str(raw), False, None, time.perf_counter() - start, 0, str(exc))

        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(names) or 1))) as pool:
            return list(pool.map(one, names))

    def status(self) -> list[dict[str, Any]]:
        """Status rows of every ticker, with sample counts and live performance."""
        from .views import status

        rows = status(self.registry)
        counts = self.samples.counts()
        for row in rows:
            c = counts.get(row["ticker"], {})
            row["samples_stored"] = c.get("total", 0)
            row["samples_pending"] = c.get("unconsumed", 0)
            entry = self.cache.peek(row["ticker"])
            if entry is not None and entry.live is not None:
                row.update(entry.live.summary())
        return rows

    def metadata(self) -> dict[str, dict[str, Any]]:
        from .views import metadata

        return metadata(self.registry)

    def versions(self, ticker: str) -> list[dict[str, Any]]:
        from .views import version_rows

        name = self._ticker(ticker)
        return version_rows(self.registry.list_versions(name), self.registry.audit_trail(name))

    def history(self, ticker: str) -> list[AuditEvent]:
        """Every alias move of ``ticker``, oldest first: who moved which alias, from which
        version to which, when and why (the complete audit trail)."""
        return self.registry.audit_trail(self._ticker(ticker))

    def compare(self, ticker: str, v1: int, v2: int) -> list[dict[str, Any]]:
        from .views import compare

        return compare(self.registry, self._ticker(ticker), v1, v2)

    def best(self, metric: str = "skill_score", n: int = 10) -> list[dict[str, Any]]:
        from .views import best

        return best(self.registry, metric, n)

    def promote(self, ticker: str, version: int, *, to: str | None = None, reason: str = "",
                expected: int | None | str = "current") -> Any:
        event = self.registry.promote(self._ticker(ticker), version, to=to, reason=reason,
                                      expected=expected)
        self.cache.invalidate(self._ticker(ticker))
        return event

    def rollback(self, ticker: str, *, to_version: int | None = None, reason: str = "",
                 expected: int | None | str = "current") -> Any:
        event = self.registry.rollback(self._ticker(ticker), to_version=to_version, reason=reason,
                                       expected=expected)
        self.cache.invalidate(self._ticker(ticker))
        return event

    def export(self, ticker: str, path: str | os.PathLike[str],
               version_or_alias: int | str | None = None) -> Any:
        from .bundle import export_bundle

        return export_bundle(self.registry, self._ticker(ticker), Path(path),
                             version_or_alias or self.config.production_alias)

    def export_all(self, directory: str | os.PathLike[str], which: str = "production",
                   progress: Any = None) -> Any:
        from .bundle import export_all

        return export_all(self.registry, Path(directory), which=which, progress=progress)

    def import_bundle(self, path: str | os.PathLike[str], as_ticker: str | None = None,
                      force: bool = False, promote: bool = False) -> Any:
        """Verify and register a bundle; it lands on staging unless ``promote`` (and the
        ticker has no production version): see :func:`ticker_registry.bundle.import_bundle`."""
        from .bundle import import_bundle

        result = import_bundle(self.registry, Path(path), as_ticker=as_ticker, force=force,
                               promote=promote)
        self.cache.invalidate(result.version.ticker)
        return result

    def cleanup(self, days: int = 30, keep_last: int = 2, ticker: str | None = None,
                dry_run: bool = False) -> Any:
        from .maintenance import cleanup

        return cleanup(self.registry, days=days, keep_last=keep_last,
                       ticker=self._ticker(ticker) if ticker else None, dry_run=dry_run)

    def doctor(self, repair: bool = False) -> list[Any]:
        """Inconsistencies in the registry and sample store (see :mod:`ticker_registry.doctor`)."""
        from .doctor import diagnose

        return diagnose(self, repair=repair)

    # ------------------------------------------------------------------ tuning
    def _ticker_config(self, name: str, n_jobs: int | None = None) -> Config:
        """The config a training of ``name`` uses: the manager's, with the ticker's tuned model
        type and hyperparameters (registered-model tags ``tuned.*``) when it was tuned."""
        from .tuned import TUNED_PREFIX, apply_tuned

        config = self.config if n_jobs is None else self.config.replace(n_jobs=n_jobs)
        seen = self._tuned_seen
        try:
            tags = self.registry.model(name).tags
        except ModelNotFoundError:
            tags = {}
        except RegistryError:
            # registry unreachable: the tuned set this process last read (a retrain then
            # claims its batch and fails at registration, on record), else the error
            if name not in seen:
                raise
            tags = seen[name]
        seen[name] = {k: v for k, v in tags.items() if k.startswith(TUNED_PREFIX)}
        return apply_tuned(config, tags)

    @staticmethod
    def _trades_of(trades: pd.DataFrame | None, paths: list[str], purpose: str) -> pd.DataFrame:
        """``trades``, else the trade files at ``paths`` read (one of them is required)."""
        from .data import read_trade_files

        if trades is not None:
            return trades
        if not paths:
            raise TickerRegistryError(f"give trades (a frame) or files to {purpose} on")
        return read_trade_files(paths)

    def tune(self, ticker: str, trades: pd.DataFrame | None = None, *,
             files: Iterable[str | os.PathLike[str]] = (), n_trials: int | None = 20,
             timeout: float | None = None, model_type: str | None = None,
             seed: int | None = None, progress: Any = None) -> TuningResult:
        """Tune ``ticker``'s hyperparameters on its trades and save the best set in the registry.

        The search (:func:`ticker_registry.tuning.tune_hyperparameters`) never sees the
        final block; the best set goes on the ticker's registered model as ``tuned.*`` tags
        (a re-tuning replaces them) and the trials in a run ``tune-<TICKER>``; every later
        training of the ticker (``train``, automatic retrains) uses it when it was adopted:
        not worse than the config's hyperparameters on the final block (``tuned.adopted``).

        ``trades`` is a canonical frame, else ``files`` are read with ``read_trade_files``;
        the other parameters, the result and the errors are those of
        :func:`ticker_registry.tuning.tune_on_trades` (``model_type``: later trainings use it).
        """
        from .store.runs import log_tuning
        from .tuned import TUNED_PREFIX, tuned_tags
        from .tuning import tune_on_trades

        name = self._ticker(ticker)
        trades = self._trades_of(trades, [str(p) for p in files], "tune")
        result = tune_on_trades(trades, self.config, n_trials=n_trials, timeout=timeout,
                                model_type=model_type, seed=seed, progress=progress)
        registry, model_name = self.registry, self.registry.model_name(name)
        table = pd.DataFrame([{**{k: v for k, v in r.items() if k != "params"}, **r["params"]}
                              for r in result.trials])
        run_id = log_tuning(
            registry.store, f"{registry.experiment_name}/tuning", name,
            params={"model_type": result.model_type, "seed": str(result.seed),
                    "n_trials": str(n_trials), "timeout": str(timeout),
                    **{f"tuned.{k}": str(v) for k, v in result.best_params.items()}},
            metrics={"best_score": result.best_score,
                     **{f"final_{which}_{k}": v for which, scores in result.final.items()
                        for k, v in scores.items()}},
            trial_scores=[(r["trial"], r["score"]) for r in result.trials if "score" in r],
            table=table)
        registry._ensure_registered_model(model_name, name)  # a ticker may be tuned before training
        tags = {**tuned_tags(result, datetime.now(UTC).isoformat(timespec="seconds")),
                f"{TUNED_PREFIX}run": run_id}
        for key in registry.model(name).tags:
            if key.startswith(TUNED_PREFIX) and key not in tags:  # from an earlier tuning
                registry.store.delete_model_tag(model_name, key)
        for key, value in tags.items():
            registry.store.set_model_tag(model_name, key, value)
        return result
