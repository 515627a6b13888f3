"""``python -m benchmarks.quality``: is the promotion decision telling skill from noise?

Every figure is measured on the real trades in ``../shared/data`` (override with
``TR_SHARED_DATA``), never on the synthetic market, with the package's own purged
walk-forward (:mod:`ticker_registry.evaluation`), so the numbers are the ones a
user's versions record. Sections (``--only walk,shuffle,replay``):

walk     per-head walk-forward table (model vs each baseline, skill with its 95 %
         interval, folds won, per-fold skill, what serves) for LTCUSDT and XRPETH
         with the default config, for each model type;
shuffle  trainings on labels permuted across the whole training set: how often a
         head is declared skilled, and whether the gate would promote such a
         candidate over a real production version (judged on the true labels of
         the candidate's out-of-sample rows);
replay   ``run-strategy`` replays (OrderFlowTradingStrategy through the manager on a
         fresh embedded store): every version's served heads, skills and the
         gate's decision with its reason.

``--quick`` shrinks every section (fewer permutations, shorter slices) for a smoke
run; the README quotes a full run. The load average is printed at start and end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
MODEL_TYPES = ("xgboost", "lightgbm", "random_forest")
LTC = "LTCUSDT-aggTrades-2025-06-21_22.csv.gz"
XRP = "XRPETH-aggTrades-2019-10.zip"


def data_dir() -> Path:
    return Path(os.environ.get("TR_SHARED_DATA") or REPO.parent / "shared" / "data")


def _load(name: str):
    from ticker_registry import read_trades

    path = data_dir() / name
    if not path.is_file():
        raise SystemExit(f"real trade file {path} not found; set TR_SHARED_DATA to the folder "
                         "that holds the shared data")
    return read_trades(path)


def _fmt(x: float, digits: int = 4) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:+.{digits}f}"


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()


# --------------------------------------------------------------------------- walk
def walk_section(quick: bool) -> None:
    from ticker_registry import Config, OrderFlowModel, build_training_set

    print("## Purged walk-forward, default config (5 folds, gap = horizon)\n")
    for name in (LTC, XRP):
        trades = _load(name)
        if quick:
            trades = trades.iloc[: len(trades) // 4].reset_index(drop=True)
        for model_type in MODEL_TYPES:
            cfg = Config(model_type=model_type)
            X, y = build_training_set(trades, cfg)
            start = time.perf_counter()
            model = OrderFlowModel(cfg).fit(X, y)
            took = time.perf_counter() - start
            print(f"### {name.split('-')[0]} {model_type}: {len(X):,} events, large_order_threshold "
                  f"{model.spec_.large_order_threshold:g} (auto), fit + walk-forward {took:.1f} s\n")
            rows = []
            for head, e in model.evaluation_.items():
                if not e.evaluable:
                    rows.append([head, "not evaluable", "-", "-", "-", "-", e.source, e.reason])
                    continue
                baselines = ", ".join(f"{k} {v:.4g}" for k, v in e.baseline_losses.items())
                rows.append([head, f"{e.model_loss:.4g}", baselines,
                             f"{_fmt(e.skill)} [{_fmt(e.skill_low)}, {_fmt(e.skill_high)}]",
                             f"{e.folds_won}/{e.n_folds}",
                             " ".join(_fmt(s, 3) for s in e.fold_skill), e.source,
                             f"z={e.z:.2f}"])
            _print_table(["head", "model loss", "baseline losses", "skill [95% CI]", "folds won",
                          "per-fold skill", "serves", "test"], rows)
            acc = model.evaluation_["flow_type"].accuracy
            if acc:
                print("flow_type accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in acc.items())
                      + "\n")


# --------------------------------------------------------------------------- shuffle
def shuffle_section(quick: bool) -> None:
    from ticker_registry import Config, OrderFlowModel, build_training_set
    from ticker_registry.gate import decide

    permutations = 2 if quick else 7
    print(f"## Shuffled labels ({permutations} permutations per data set and model type)\n")
    declared = heads = promoted = decisions = 0
    rows = []
    for name, rows_limit in ((LTC, 30_000 if quick else 45_000), (XRP, None)):
        trades = _load(name)
        cfg0 = Config()
        X_all, y_all = build_training_set(trades, cfg0)
        if rows_limit:
            X_all, y_all = X_all.iloc[:rows_limit], y_all.iloc[:rows_limit]
        X_all.attrs = dict(X_all.attrs)
        for model_type in MODEL_TYPES:
            cfg = Config(model_type=model_type)
            # a real production version trained on the first half: the shuffled candidate
            # must never be promoted over it
            half = len(X_all) // 2
            champion = OrderFlowModel(cfg).fit(X_all.iloc[:half], y_all.iloc[:half])
            last_event = X_all.index[half - 1].isoformat()
            found = []
            for seed in range(permutations):
                rng = np.random.default_rng(1000 + seed)
                shuffled = y_all.iloc[rng.permutation(len(y_all))].set_axis(y_all.index)
                model = OrderFlowModel(cfg).fit(X_all, shuffled)
                skilled = [h for h, e in model.evaluation_.items() if e.has_skill]
                declared += len(skilled)
                heads += len(model.evaluation_)
                holdout_rows = model.gate_holdout_.positions
                decision, _ = decide(model, champion=champion, champion_version=1,
                                     champion_last_event=last_event,
                                     X_holdout=X_all.iloc[holdout_rows],
                                     y_holdout=y_all.iloc[holdout_rows], cfg=cfg)
                decisions += 1
                promoted += int(decision.promoted)
                zs = " ".join(f"{e.z:.2f}" for e in model.evaluation_.values())
                found.append(f"seed {seed}: z {zs}{' SKILL ' + ','.join(skilled) if skilled else ''}")
            rows.append([name.split("-")[0], model_type, f"{len(X_all):,}", "; ".join(found)])
    _print_table(["data", "model", "events", "per training: z of flow_type, impact, "
                  "time_to_execution"], rows)
    print(f"**Skill declared on {declared} of {heads} heads ({100 * declared / max(heads, 1):.1f} %); "
          f"gate promoted {promoted} of {decisions} shuffled candidates over a real production "
          "version.**\n")


# --------------------------------------------------------------------------- replay
def replay_section(quick: bool) -> None:
    from ticker_registry import Config, OrderFlowTradingStrategy, TickerModelManager

    print("## run-strategy replays (strategy -> samples -> automatic retraining -> gate)\n")
    plans = ((XRP, "XRPETH", 1000, 1000, None), (LTC, "LTCUSDT", 20_000, 20_000, 60_000 if quick else None))
    for name, ticker, first, interval, limit in plans:
        trades = _load(name)
        if limit:
            trades = trades.iloc[:limit].reset_index(drop=True)
        cfg = Config(min_training_samples=first, retrain_interval=interval, symbol=ticker)
        with tempfile.TemporaryDirectory(prefix="tr-quality-") as tmp:
            async def run(cfg=cfg, tmp=tmp, trades=trades, ticker=ticker) -> list:
                manager = TickerModelManager(cfg, models_dir=tmp)
                try:
                    strategy = OrderFlowTradingStrategy(manager)
                    start = time.perf_counter()
                    summary = await strategy.replay(trades)
                    took = time.perf_counter() - start
                    versions = manager.sync.registry.list_versions(ticker)
                    print(f"### {ticker}: {len(trades):,} trades, {summary.samples:,} samples, "
                          f"{len(versions)} versions, production v{summary.production_version}, "
                          f"{took:.0f} s\n")
                    return versions
                finally:
                    await manager.aclose()

            versions = asyncio.run(run())
            rows = []
            for v in sorted(versions, key=lambda v: v.version):
                t = v.tags
                served = ", ".join(f"{h}={t.get(f'serving.{h}', '?')}"
                                   f"({_fmt(v.metrics.get(f'skill_{h}', float('nan')), 3)})"
                                   for h in ("flow_type", "impact", "time_to_execution"))
                negative = [h for h in ("flow_type", "impact", "time_to_execution")
                            if t.get(f"serving.{h}") == "model"
                            and v.metrics.get(f"skill_{h}", 0.0) <= 0]
                rows.append([f"v{v.version}", ",".join(v.aliases) or "-", served,
                             "NONE" if not negative else "NEGATIVE: " + ",".join(negative),
                             t.get("gate.decision", "-"), t.get("gate.reason", "-")[:300]])
            _print_table(["version", "aliases", "served heads (skill)", "model serving negative skill",
                          "gate", "reason"], rows)


SECTIONS = {"walk": walk_section, "shuffle": shuffle_section, "replay": replay_section}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller slices, for a smoke run")
    parser.add_argument("--only", default="walk,shuffle,replay",
                        help="comma-separated sections: walk, shuffle, replay")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown section(s) {unknown}; use some of {', '.join(SECTIONS)}")
    import logging

    logging.getLogger("ticker_registry").setLevel(logging.ERROR)
    print(f"# Quality run {pd.Timestamp.now(tz='UTC'):%Y-%m-%d %H:%M} UTC, load average at start "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} cores, data "
          f"{data_dir()}\n")
    start = time.perf_counter()
    for section in chosen:
        SECTIONS[section](args.quick)
        sys.stdout.flush()
    print(f"Total {time.perf_counter() - start:.0f} s; load average at end "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
