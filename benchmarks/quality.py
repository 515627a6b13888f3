"""``python -m benchmarks.quality``: is the promotion decision telling skill from noise?

Every figure is measured on the real trades in ``../shared/data`` (override with
``TR_SHARED_DATA``), never on the synthetic market, with the package's own purged
walk-forward (:mod:`ticker_registry.evaluation`), so the numbers are the ones a
user's versions record. Sections (``--only walk,shuffle,replay,tuning,transfer``):

walk     per-head walk-forward table (model vs each baseline, skill with its 95 %
         interval, folds won, per-fold skill, what serves) for LTCUSDT and XRPETH
         with the default config, for each model type;
shuffle  trainings on labels permuted across the whole training set: how often a
         head is declared skilled, and whether the gate would promote such a
         candidate over a real production version (judged on the true labels of
         the candidate's out-of-sample rows);
replay   ``run-strategy`` replays (OrderFlowTradingStrategy through the manager on a
         fresh embedded store): every version's served heads, skills and the
         gate's decision with its reason;
tuning   ``tune`` (Optuna, ``TUNING_TRIALS`` trials, seed 0) of each data set: default vs
         tuned hyperparameters, flow_type log-loss skill and time_to_execution skill
         per fold of the tuning part's walk-forward, and on the final block, which
         the search never saw;
transfer a "new" ticker (LTCUSDT after its first 24 hours) with only its first 1,000,
         3,000 and 10,000 samples, the template LTCUSDT's first 24 hours (tuned, its
         heads for warm start) with XRPETH as a second pooled ticker: skill on the
         following 10,000 samples (after a purge) of from-scratch vs (a) template
         hyperparameters, (b) warm start, (c) pooled, at four start points (0, 1/4,
         1/2 and 3/4 into the new ticker's trades; those without 5,000 test rows after
         the training block are left out).

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


# --------------------------------------------------------------------------- tuning
TUNING_TRIALS = 25
_TUNED: dict[str, dict] = {}  # data set -> tuned hyperparameters (the transfer section reuses them)


def _tuning_set(trades, cfg):
    """Features and labels as ``tune_on_trades`` builds them (threshold from before the final
    block), so the quality fits score the very rows the study was given."""
    from ticker_registry import build_training_set
    from ticker_registry.features import FeatureSpec

    head = trades.iloc[: len(trades) * cfg.cv_folds // (cfg.cv_folds + 1)]
    spec = FeatureSpec.from_config(cfg, price=head["price"].to_numpy(),
                                   quantity=head["quantity"].to_numpy())
    return build_training_set(trades, spec)


def _tune(label: str, trades, cfg, trials: int):
    from ticker_registry.tuning import tune_hyperparameters

    X, y = _tuning_set(trades, cfg)
    start = time.perf_counter()
    result = tune_hyperparameters(X, y, cfg, n_trials=trials, seed=0)
    _TUNED[label] = dict(result.best_params)
    return X, y, result, time.perf_counter() - start


def tuning_section(quick: bool) -> None:
    from ticker_registry import Config, OrderFlowModel

    trials = 3 if quick else TUNING_TRIALS
    print(f"## Tuning: default vs tuned hyperparameters (xgboost, {trials} Optuna trials, seed 0)\n")
    print("Skill = 1 - model loss / best naive baseline loss, out of sample. Per fold: the "
          "walk-forward of the tuning part (what the search scored); final: trained on every "
          "tuning row, scored on the final block the search never saw.\n")
    for name in (LTC, XRP):
        trades = _load(name)
        if quick:
            trades = trades.iloc[: len(trades) // 4].reset_index(drop=True)
        label = name.split("-")[0]
        cfg = Config()
        X, y, result, took = _tune(label, trades, cfg, trials)
        print(f"### {label}: {len(X):,} events; {result.n_tuning_rows:,} tuning rows, final "
              f"block {result.n_final_rows:,} rows from {result.final_start}; {took:.0f} s\n")
        ev = result.evidence
        print("search's best: " + ", ".join(f"{k}={v:.4g}" for k, v in
                                            result.search_best_params.items())
              + f"; per-fold served-skill gain over the default {ev.get('gain', 0.0):+.4f}, "
              f"t={ev.get('t', 0.0):.2f} (needed {ev.get('needed', float('inf')):.2f}): "
              + ("**kept the default** (within fold-to-fold noise)" if result.kept_default
                 else "chosen") + "\n")
        print("tuned (the chosen set): " + ", ".join(f"{k}={v:.4g}" for k, v in
                                                     result.best_params.items()) + "\n")
        end = result.n_tuning_rows
        rows = []
        for which, params in (("default", result.default_params), ("tuned", result.best_params)):
            table = {"xgboost": {**cfg.model_hyperparameters(), **params}}
            model = OrderFlowModel(cfg.replace(hyperparameters=table)).fit(X.iloc[:end],
                                                                         y.iloc[:end])
            final = result.final[which]
            for head in ("flow_type", "time_to_execution", "impact"):
                e = model.evaluation_[head]
                rows.append([which, head, " ".join(_fmt(s, 3) for s in e.fold_skill),
                             _fmt(e.skill), _fmt(final[f"skill_{head}"])])
            rows.append([which, "served score", "-", "-", _fmt(final["score"])])
        _print_table(["hyperparameters", "head", "per-fold skill (tuning part)",
                      "pooled skill (tuning part)", "final block skill"], rows)
        t, d = result.final["tuned"]["score"], result.final["default"]["score"]
        verdict = ("not worse: adopted (later trainings use it)" if result.adopted else
                   f"worse by {d - t:.4f}: not adopted (later trainings keep the default)")
        print(f"Final block served score: tuned {t:+.4f}, default {d:+.4f}: tuned is "
              f"{verdict}.\n")


# --------------------------------------------------------------------------- transfer
TRANSFER_SIZES = (1_000, 3_000, 10_000)
TRANSFER_TEST = 10_000


def _skills(head_preds: dict, labels: dict, train_labels: dict) -> dict[str, float]:
    from ticker_registry.evaluation import HEADS, fit_baselines, head_losses

    out = {}
    for head in HEADS:
        y = labels[head]
        base = fit_baselines(head, train_labels[head]).predictions(len(y))
        best = min(float(head_losses(head, y, p).mean()) for p in base.values())
        out[head] = 1.0 - float(head_losses(head, y, head_preds[head]).mean()) / best
    out["mean"] = sum(out[h] for h in HEADS) / len(HEADS)
    out["served"] = sum(max(out[h], 0.0) for h in HEADS) / len(HEADS)
    return out


def transfer_section(quick: bool) -> None:
    from ticker_registry import Config, build_training_set
    from ticker_registry.evaluation import HEADS, evaluable, fit_baselines
    from ticker_registry.features import FeatureSpec
    from ticker_registry.transfer import (
        STRATEGIES,
        Template,
        TemplateRows,
        transfer_config,
        transfer_trainer,
    )
    from ticker_registry.walk_forward import config_trainer

    cfg = Config()
    ltc = _load(LTC)
    day = ltc["timestamp"].iloc[0] + pd.Timedelta(hours=24)
    first, later = ltc[ltc["timestamp"] < day], ltc[ltc["timestamp"] >= day]
    if quick:
        first = first.iloc[-30_000:]
    first = first.reset_index(drop=True)
    later = later.reset_index(drop=True)

    # the template: LTCUSDT's first 24 hours, tuned (the tuning section's search, or one now)
    if "LTCUSDT-day1" not in _TUNED:
        _tune("LTCUSDT-day1", first, cfg, 3 if quick else TUNING_TRIALS)
    tuned = {**cfg.model_hyperparameters(), **_TUNED["LTCUSDT-day1"]}
    ltc_rows = TemplateRows.of("LTCUSDT", *build_training_set(first, cfg))
    xt, lt, tt = ltc_rows.x, ltc_rows.labels, ltc_rows.event_ns
    t_cfg = cfg.replace(hyperparameters={"xgboost": tuned})
    fit = config_trainer(t_cfg)
    heads = {h: fit(h, xt, lt[h], tt) for h in HEADS}
    xrp_rows = TemplateRows.of("XRPETH", *build_training_set(_load(XRP), cfg))
    xrp_x, xrp_l, xrp_t = xrp_rows.x, xrp_rows.labels, xrp_rows.event_ns
    # XRPETH's trades are from 2019: as a pooled ticker its rows all precede the new ticker's
    template = Template("LTCUSDT", None, "xgboost", _TUNED["LTCUSDT-day1"], heads,
                        (ltc_rows, xrp_rows),
                        time_median=float(np.median(lt["time_to_execution"])))
    # a second, other-instrument template for (a) and (b): XRPETH, tuned on its own trades
    if "XRPETH" not in _TUNED:
        _tune("XRPETH", _load(XRP), cfg, 3 if quick else TUNING_TRIALS)
    x_cfg = cfg.replace(hyperparameters={"xgboost": {**cfg.model_hyperparameters(),
                                                     **_TUNED["XRPETH"]}})
    x_fit = config_trainer(x_cfg)
    xrp_template = Template("XRPETH", None, "xgboost", _TUNED["XRPETH"],
                            {h: x_fit(h, xrp_x, xrp_l[h], xrp_t) for h in HEADS},
                            time_median=float(np.median(xrp_l["time_to_execution"])))
    variants = [(s, s, template) for s in STRATEGIES] + [
        (f"{s} (XRPETH)", s, xrp_template) for s in ("hyperparameters", "warm_start")]
    names = [v[0] for v in variants]
    print("## Transfer to a new ticker (xgboost)\n")
    print(f"Template: LTCUSDT {first['timestamp'].iloc[0]:%Y-%m-%d %H:%M} to "
          f"{first['timestamp'].iloc[-1]:%m-%d %H:%M} ({len(xt):,} samples), tuned: "
          + ", ".join(f"{k}={v:.4g}" for k, v in _TUNED["LTCUSDT-day1"].items())
          + f"; pooled adds XRPETH ({len(xrp_x):,} samples). New ticker: LTCUSDT from "
          f"{later['timestamp'].iloc[0]:%m-%d %H:%M}, its first n samples to train, the next "
          f"{TRANSFER_TEST:,} after a purge of one horizon to test; skill against the best "
          "naive baseline fitted on the n samples. Rows '(XRPETH)' take XRPETH, another "
          "instrument, as the template (tuned on its own trades).\n")
    horizon = FeatureSpec.from_config(cfg, price=later["price"].to_numpy()[:100],
                                      quantity=later["quantity"].to_numpy()[:100]).horizon_ns
    sizes = (1_000, 3_000) if quick else TRANSFER_SIZES
    totals: dict[str, list[float]] = {s: [] for s in names}
    raw: dict[str, list[float]] = {s: [] for s in names}
    by_size: dict[tuple[int, str], list[float]] = {}
    rows = []
    for size in sizes:
        for start_share in (0.0, 0.25, 0.5, 0.75):
            # the new ticker's recipe (an auto threshold) from its training trades only
            offset = int(len(later) * start_share)
            part = later.iloc[offset:].reset_index(drop=True)
            train_trades = part.iloc[: size + cfg.sequence_length]
            spec = FeatureSpec.from_config(cfg, price=train_trades["price"].to_numpy(),
                                           quantity=train_trades["quantity"].to_numpy())
            X, y = build_training_set(part, spec)
            new = TemplateRows.of("LTCUSDT", X, y)
            x, lab, ev = new.x, new.labels, new.event_ns
            test_start = int(np.searchsorted(ev, ev[size - 1] + horizon, side="right"))
            test = np.arange(test_start, min(test_start + TRANSFER_TEST, len(x)))
            if test.size < TRANSFER_TEST // 2:
                continue
            train = np.arange(size)
            for label, strategy, source in variants:
                s_cfg = transfer_config(cfg, strategy, source)
                trainer = transfer_trainer(s_cfg, strategy, source)
                preds = {}
                for head in HEADS:
                    y_train = lab[head][train]
                    if evaluable(head, y_train):
                        model = trainer(head, x[train], y_train, ev[train])
                        preds[head] = model.predict(np.ascontiguousarray(x[test]))
                    else:
                        base = fit_baselines(head, y_train).predictions(test.size)
                        preds[head] = base["prior" if head == "flow_type" else "mean"]
                sk = _skills(preds, {h: lab[h][test] for h in HEADS},
                             {h: lab[h][train] for h in HEADS})
                totals[label].append(sk["served"])
                raw[label].append(sk["mean"])
                by_size.setdefault((size, label), []).append(sk["served"])
                rows.append([f"{size:,}", f"{X.index[0]:%m-%d %H:%M}", label,
                             _fmt(sk["flow_type"]), _fmt(sk["impact"]),
                             _fmt(sk["time_to_execution"]), _fmt(sk["mean"]),
                             _fmt(sk["served"])])
    _print_table(["samples", "new ticker from", "strategy", "flow_type skill", "impact skill",
                  "time_to_execution skill", "mean skill", "served score"], rows)
    _print_table(["samples", *names], [
        [f"{size:,}", *(_fmt(float(np.mean(by_size[(size, s)]))) if (size, s) in by_size
                        else "-" for s in names)] for size in sizes])
    means = {s: float(np.mean(v)) for s, v in totals.items() if v}
    raw_means = {s: float(np.mean(v)) for s, v in raw.items() if v}
    winner = max((s for s in means if s in STRATEGIES and s != "scratch"), key=means.get)
    print("Served score (mean over heads of max(0, skill)) averaged over sizes and start points: "
          + ", ".join(f"{s} {v:+.4f}" for s, v in means.items())
          + "; mean skill (not floored): "
          + ", ".join(f"{s} {v:+.4f}" for s, v in raw_means.items())
          + f". Best transfer strategy by served score: **{winner}**.\n")


SECTIONS = {"walk": walk_section, "shuffle": shuffle_section, "replay": replay_section,
            "tuning": tuning_section, "transfer": transfer_section}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller slices, for a smoke run")
    parser.add_argument("--only", default="walk,shuffle,replay,tuning,transfer",
                        help="comma-separated sections: " + ", ".join(SECTIONS))
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
