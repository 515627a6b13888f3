"""B4: ``build_training_set`` over 1M trades.

Ours: ``build_training_set(trades, config)`` (features and labels) on 1M
synthetic trades with the default config (20-trade windows, 5-minute horizon).

Baseline: the same eleven window features written the straightforward pandas
way, one ``Series.rolling(n).apply(f, raw=True)`` per feature (a NumPy
function per window), plus the same vectorised labels as ours (the package's
label function, so both sides pay the same label cost). It runs on the first
50,000 trades and its per-trade cost is extrapolated to 1M (rolling.apply is
linear in the number of windows). Its features are checked against ours on
that sample, so both sides compute the same thing.

Targets: at least 2M trades/s; at least 10x the baseline.
"""

from __future__ import annotations

from typing import Any

from .fixtures import config
from .harness import Context, Row, interleaved, median


def rolling_apply_features(trades: Any, n: int, large_threshold: float) -> Any:
    """The window features of every full window, by ``rolling(n).apply`` (the baseline)."""
    import numpy as np
    import pandas as pd

    ts = pd.Series(pd.to_datetime(trades["timestamp"], utc=True).astype("int64").to_numpy()
                   .astype(np.float64) / 1e9)
    price = trades["price"].astype(np.float64).reset_index(drop=True)
    qty = trades["quantity"].astype(np.float64).reset_index(drop=True)
    side = trades["side"].astype(np.float64).reset_index(drop=True)
    notional = price * qty
    large = (notional >= large_threshold).astype(np.float64)
    log_price = np.log(price)

    def roll(s: pd.Series, f: Any, window: int = n) -> pd.Series:
        return s.rolling(window).apply(f, raw=True)

    qty_sum = roll(qty, np.sum)
    notional_sum = roll(notional, np.sum)
    duration = roll(ts, lambda w: w[-1] - w[0])
    pos = pd.Series(np.arange(len(price), dtype=np.float64))
    ts_v, large_v = ts.to_numpy(), large.to_numpy()

    def since_large(w: np.ndarray) -> float:
        idx = w.astype(np.int64)
        hits = np.flatnonzero(large_v[idx])
        last = idx[hits[-1]] if len(hits) else idx[0]
        return ts_v[idx[-1]] - ts_v[last] if len(hits) else ts_v[idx[-1]] - ts_v[idx[0]]

    features = pd.DataFrame({
        "signed_volume_imbalance": roll(side * qty, np.sum) / qty_sum,
        "buy_trade_share": roll((side > 0).astype(np.float64), np.mean),
        "trade_intensity": (n - 1) / np.maximum(duration, 1e-3),
        "realized_volatility_bps": roll(log_price.diff(), lambda r: np.sqrt(np.sum(r * r)),
                                        n - 1) * 1e4,
        "vwap_deviation_bps": (price / (notional_sum / qty_sum) - 1.0) * 1e4,
        "window_return_bps": roll(log_price, lambda w: w[-1] - w[0]) * 1e4,
        "large_order_count": roll(large, np.sum),
        "large_order_share": roll(notional * large, np.sum) / notional_sum,
        "time_since_large_order_s": roll(pos, since_large),
        "log_mean_notional": np.log(roll(notional, np.mean)),
        "last_side": side,
    })
    return features.iloc[n - 1:]


def run(ctx: Context) -> list[Row]:
    import numpy as np

    from ticker_registry import build_training_set, generate_trades
    from ticker_registry.features import FeatureSpec, _labels, _trade_arrays

    cfg = config(False)  # the real feature recipe in both modes; only the sizes shrink
    spec = FeatureSpec.from_config(cfg)
    n_trades = ctx.pick(100_000, 1_000_000)
    n_sample = ctx.pick(5_000, 50_000)
    trades = generate_trades("ETHUSDT", n_trades, seed=3)
    sample = trades.iloc[:n_sample].reset_index(drop=True)

    def ours() -> None:
        build_training_set(trades, cfg)

    def baseline() -> Any:
        feats = rolling_apply_features(sample, spec.sequence_length, spec.large_order_threshold)
        ts_ns, price, qty, side = _trade_arrays(sample)
        last = np.searchsorted(ts_ns, ts_ns[-1] - spec.horizon_ns, side="right") - 1
        _labels(ts_ns, price, qty, side, np.arange(spec.sequence_length - 1, last + 1), spec)
        return feats

    X, _ = build_training_set(sample, cfg)
    ref = baseline().iloc[: len(X)]
    cols = list(ref.columns)
    worst = float(np.max(np.abs(ref.to_numpy() - X[cols].to_numpy())
                         / np.maximum(1.0, np.abs(X[cols].to_numpy()))))
    assert worst < 1e-6, f"baseline features differ from ours by {worst}"

    cpu: dict[str, list[float]] = {}
    times = interleaved({"ours": ours, "baseline": baseline}, rounds=ctx.pick(1, 5), warmup=1,
                        cpu=cpu)
    ctx.profile_calls("B4 build_training_set", ours, 1)
    t_ours = median(times["ours"])
    t_base = median(times["baseline"]) * n_trades / n_sample  # extrapolated per-trade cost
    rate_ours, rate_base = n_trades / t_ours, n_trades / t_base
    return [Row("B4", f"build_training_set, {n_trades:,} trades", rate_ours, "trades/s",
                f"pandas rolling.apply ({n_sample:,}-trade sample, extrapolated)", rate_base,
                ">= 10x and >= 2M trades/s", rate_ours / rate_base >= 10 and rate_ours >= 2e6,
                higher_is_better=True, repeats=len(times["ours"]),
                note=f"ours {t_ours:.3f} s for {n_trades:,} trades ({median(cpu['ours']):.3f} s "
                     f"CPU: {n_trades / median(cpu['ours']) / 1e6:.1f} M trades per CPU-second); "
                     f"baseline "
                     f"{median(times['baseline']):.2f} s for {n_sample:,} "
                     f"(max relative feature difference {worst:.1e})")]
