"""Synthetic trade streams for tests, demos and benchmarks — not a market model.

:func:`generate_trades` returns trades in the canonical schema of
:func:`ticker_registry.data.read_trades`, drawn from a small generative story
with just enough structure for the three order-flow heads (flow type, impact,
time to execution) to beat their naive baselines with the default
:class:`~ticker_registry.config.Config` (20-trade windows, 5-minute labels):

* **Flow regimes.** Wall-clock regimes of about 15 minutes (gamma lengths,
  three times the default label horizon): a fifth are balanced, the rest
  have a buy/sell lean of about +-0.7 (~85% of fresh sides go one way).
  Aggressor sides follow a Markov chain (``flow_persistence`` is the chance
  a trade repeats the previous side) whose fresh draws lean towards the
  regime's side, so the 20-trade window tells the regime and the regime
  tells the next five minutes' flow. Directional regimes are busier.
* **Activity.** On top of the regime's activity, the arrival rate wanders
  from trade to trade (a lognormal level averaged over ~60 trades), so the
  window's trade intensity says how soon the next trades come.
* **Bursts.** With ``burst_prob`` per trade a burst of ~40 trades starts:
  trades arrive 10x faster, mostly on one side (usually the regime's), and
  large orders are 10x likelier.
* **Sizes.** Notionals are lognormal around ``mean_notional``; most of the
  log-size spread is shared by neighbouring trades (split parent orders), so
  the window's mean notional predicts the next trades' sizes. With
  ``large_order_prob`` a trade is ``large_order_multiplier`` times bigger.
  Trades of 1000 quote or more (the default ``large_order_threshold``) stay
  a minority for every profile.
* **Price.** Each trade moves the log price by a square-root impact of
  ``impact_bps * side * sqrt(notional / mean_notional)`` plus ``volatility``
  bps of noise, both scaled down by the current activity (busy books are
  deeper), so the price drifts with the regime's flow at a rate per second
  that activity does not change. The 5-minute return is mostly that drift.
* **Times.** Exponential gaps at ``trades_per_second`` times the activity
  (and the burst factor), rounded to milliseconds.

The known profiles trade slowly (0.1-0.25 trades per second, far slower than
the real ETH, BTC and ADA markets) on purpose: 20,000 trades then span one to
two days, so the time-ordered 20% holdout of a training covers 15-35 regimes
instead of one or two, and the holdout scores measure skill rather than luck.
Profiles differ in price level, volatility, trade rate and trade sizes.

Everything is vectorised numpy and deterministic for ``(ticker, n_trades,
seed)``. Profiles of unknown tickers come from sha256 of the normalised
ticker, never from Python's salted ``hash()``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from .exceptions import ConfigError
from .tickers import normalize_ticker

__all__ = ["PROFILES", "TickerProfile", "generate_trades", "profile_for"]

_REGIME_SECONDS = 900.0  # mean wall-clock length of a flow regime
_REGIME_SHAPE = 4.0  # gamma shape of regime lengths (1 would be exponential)
_BALANCED_SHARE = 0.2  # share of balanced regimes; the others lean one way
_DIRECTIONAL_LEAN = 0.7  # typical |buy/sell lean| (-1..1) of a directional regime
_LEAN_STD = 0.12  # spread of a regime's lean around 0 or +-_DIRECTIONAL_LEAN
_MEAN_ABS_LEAN = (1 - _BALANCED_SHARE) * _DIRECTIONAL_LEAN + _BALANCED_SHARE * _LEAN_STD * 0.8
_ACTIVITY_SIGMA = 0.3  # lognormal spread of regime activity
_ACTIVITY_TREND = 1.0  # extra regime activity per unit of |lean|
_MICRO_TRADES = 60  # memory, in trades, of the wandering activity and size levels
_MICRO_RATE_SIGMA = 0.8  # lognormal spread of the wandering activity
_SIZE_CLUSTER = 0.6  # share of the log-size variance shared by neighbouring trades
_BURST_TRADES = 40.0  # mean trades per burst
_BURST_RATE = 10.0  # arrival-rate multiplier inside a burst
_BURST_LARGE = 10.0  # large-order probability multiplier inside a burst
_BURST_DEPTH = 3.0  # book depth multiplier inside a burst (liquidity refills)
_BURST_FOLLOW = 1.4  # a burst buys with chance (1 + _BURST_FOLLOW * regime lean) / 2
_BURST_ONE_SIDED = 0.85  # chance a fresh side in a burst follows the burst's direction


@dataclass(frozen=True)
class TickerProfile:
    """Parameters of one ticker's synthetic trade stream.

    Parameters
    ----------
    base_price
        Starting price (quote currency), > 0.
    volatility
        Standard deviation of the per-trade log-return noise, in bps, at
        average activity, >= 0.
    trades_per_second
        Mean arrival rate outside bursts, > 0.
    mean_notional
        Mean trade notional (quote currency), > 0.
    notional_sigma
        Lognormal sigma of trade notionals, >= 0.
    large_order_prob
        Chance that a trade is a large order, in [0, 1].
    large_order_multiplier
        Notional multiplier of a large order, >= 1.
    burst_prob
        Chance per trade that a burst starts, in [0, 1).
    flow_persistence
        Chance that a trade repeats the previous aggressor side, in [0, 1).
    impact_bps
        Permanent price impact, in bps, of a trade of ``mean_notional`` at
        average activity; it grows with the square root of the notional, >= 0.

    Raises
    ------
    ConfigError
        If a value is not a finite number in its range.
    """

    base_price: float
    volatility: float
    trades_per_second: float
    mean_notional: float
    notional_sigma: float
    large_order_prob: float
    large_order_multiplier: float
    burst_prob: float
    flow_persistence: float
    impact_bps: float

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            low, high, closed = _RANGES[f.name]
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = ok and math.isfinite(value)
            ok = ok and (value >= low if closed[0] == "[" else value > low)
            ok = ok and (value <= high if closed[1] == "]" else value < high)
            if not ok:
                raise ConfigError(
                    f"TickerProfile.{f.name}={value!r} is out of range; expected a finite "
                    f"number in {closed[0]}{low:g}, {high:g}{closed[1]}"
                )


# field -> (low, high, bracket kinds)
_RANGES: dict[str, tuple[float, float, str]] = {
    "base_price": (0.0, math.inf, "()"),
    "volatility": (0.0, math.inf, "[)"),
    "trades_per_second": (0.0, math.inf, "()"),
    "mean_notional": (0.0, math.inf, "()"),
    "notional_sigma": (0.0, 5.0, "[]"),
    "large_order_prob": (0.0, 1.0, "[]"),
    "large_order_multiplier": (1.0, math.inf, "[)"),
    "burst_prob": (0.0, 1.0, "[)"),
    "flow_persistence": (0.0, 1.0, "[)"),
    "impact_bps": (0.0, math.inf, "[)"),
}


PROFILES: MappingProxyType[str, TickerProfile] = MappingProxyType(
    {
        "ETHUSDT": TickerProfile(
            base_price=1600.0, volatility=0.36, trades_per_second=0.18, mean_notional=280.0,
            notional_sigma=1.1, large_order_prob=0.01, large_order_multiplier=12.0,
            burst_prob=0.002, flow_persistence=0.15, impact_bps=0.42,
        ),
        "BTCUSDT": TickerProfile(
            base_price=23000.0, volatility=0.26, trades_per_second=0.22, mean_notional=700.0,
            notional_sigma=1.2, large_order_prob=0.008, large_order_multiplier=15.0,
            burst_prob=0.0015, flow_persistence=0.2, impact_bps=0.26,
        ),
        "ADAUSDT": TickerProfile(
            base_price=0.35, volatility=0.8, trades_per_second=0.12, mean_notional=90.0,
            notional_sigma=1.0, large_order_prob=0.015, large_order_multiplier=12.0,
            burst_prob=0.004, flow_persistence=0.1, impact_bps=1.1,
        ),
    }
)


def profile_for(ticker: str) -> TickerProfile:
    """Return the profile of ``ticker``: from :data:`PROFILES`, or derived from its sha256.

    Raises
    ------
    InvalidTickerError
        If ``ticker`` is not a valid symbol (see :func:`normalize_ticker`).
    """
    name = normalize_ticker(ticker)
    if name in PROFILES:
        return PROFILES[name]
    u = [int(x) / 65536.0 for x in np.frombuffer(hashlib.sha256(name.encode("ascii")).digest(), ">u2")]
    return TickerProfile(
        base_price=float(f"{10 ** (-2 + 6 * u[0]):.4g}"),
        volatility=round(0.2 + 0.8 * u[1], 3),
        trades_per_second=round(0.1 + 0.2 * u[2], 3),
        mean_notional=round(50 * 20 ** u[3], 2),
        notional_sigma=round(0.8 + 0.5 * u[4], 3),
        large_order_prob=round(0.002 + 0.018 * u[5], 4),
        large_order_multiplier=round(5 + 25 * u[6], 2),
        burst_prob=round(0.0005 + 0.0035 * u[7], 5),
        flow_persistence=round(0.05 + 0.25 * u[8], 3),
        impact_bps=round(0.2 + 1.0 * u[9], 4),
    )


def generate_trades(
    ticker: str,
    n_trades: int,
    *,
    seed: int = 0,
    start: Any = "2024-01-01T00:00:00Z",
    profile: TickerProfile | None = None,
) -> pd.DataFrame:
    """Generate a synthetic trade stream in the canonical trade schema.

    Parameters
    ----------
    ticker
        Symbol; picks the profile (unless ``profile`` is given) and salts the
        random stream.
    n_trades
        Number of trades, >= 1.
    seed
        Non-negative integer; the same ``(ticker, n_trades, seed)`` always
        gives the same frame.
    start
        Time of the first trade's clock origin (anything ``pandas.Timestamp``
        accepts; naive times are UTC).
    profile
        Overrides :func:`profile_for`.

    Returns
    -------
    pandas.DataFrame
        Columns ``timestamp`` (datetime64[ns, UTC], ascending), ``price``,
        ``quantity`` (float64), ``side`` (int8, +1/-1), ``trade_id`` (int64,
        0..n-1), with a ``RangeIndex``.

    Raises
    ------
    ConfigError
        If ``n_trades``, ``seed`` or ``start`` is invalid.
    InvalidTickerError
        If ``ticker`` is not a valid symbol.
    """
    name = normalize_ticker(ticker)
    p = profile if profile is not None else profile_for(name)
    n = _check_count(n_trades)
    rng = np.random.default_rng(_seed_sequence(name, seed))
    start_ns = _start_ns(start)

    # The trade clock first: a wandering activity level and bursts, in trade order.
    micro = np.exp(_MICRO_RATE_SIGMA * _smooth_noise(rng, n, _MICRO_TRADES) + _MICRO_RATE_SIGMA**2 / 2)
    in_burst, burst_start = _bursts(rng, n, p)
    base_gap = rng.exponential(1.0, n) / (
        p.trades_per_second * micro * np.where(in_burst, _BURST_RATE, 1.0)
    )
    # Regimes last a given wall-clock time whatever the activity within them.
    regime, imbalance, activity = _regimes(rng, np.cumsum(base_gap))
    seconds = np.cumsum(base_gap / activity[regime])
    ts_ns = start_ns + np.round(seconds * 1e3).astype(np.int64) * 1_000_000

    # A burst leans with its regime more often than not and is mostly one-sided.
    starts = np.flatnonzero(burst_start)
    lean_at = imbalance[regime[starts]]
    follow = np.clip(_BURST_FOLLOW * lean_at, -1.0, 1.0)
    direction = np.where(rng.random(starts.size) < (1.0 + follow) / 2.0, 1.0, -1.0)
    burst_side = np.append(0.0, direction)[np.cumsum(burst_start)]
    lean = np.where(in_burst, burst_side * (2 * _BURST_ONE_SIDED - 1), imbalance[regime])
    fresh = np.where(rng.random(n) < (1.0 + lean) / 2.0, 1, -1).astype(np.int8)
    repeat = rng.random(n) < p.flow_persistence
    repeat[0] = False
    source = np.maximum.accumulate(np.where(repeat, 0, np.arange(n)))
    side = fresh[source]

    large_prob = np.minimum(np.where(in_burst, p.large_order_prob * _BURST_LARGE, p.large_order_prob), 0.5)
    # Part of the log-size spread is clustered over neighbouring trades (split orders).
    clustered = math.sqrt(_SIZE_CLUSTER) * _smooth_noise(rng, n, _MICRO_TRADES)
    log_size = math.sqrt(1.0 - _SIZE_CLUSTER) * rng.standard_normal(n) + clustered
    size = np.exp(p.notional_sigma * log_size - p.notional_sigma**2 / 2)
    size *= np.where(rng.random(n) < large_prob, p.large_order_multiplier, 1.0)
    size /= 1.0 + large_prob.mean() * (p.large_order_multiplier - 1.0)  # mean notional stays put

    # Square-root impact of every trade plus noise, so the price drifts with the regime's
    # flow. Busy markets have deeper books: impact per trade falls as 1/activity and noise
    # as 1/sqrt(activity), so drift and volatility per second do not depend on activity.
    depth = activity[regime] * micro * np.where(in_burst, _BURST_DEPTH, 1.0)
    log_return = 1e-4 * (
        p.volatility * rng.standard_normal(n) / np.sqrt(depth)
        + p.impact_bps * side * np.sqrt(size) / depth
    )
    log_return[0] = 0.0
    decimals = 5 - math.floor(math.log10(p.base_price))  # ~5 significant digits
    price = np.round(p.base_price * np.exp(np.cumsum(log_return)), decimals)
    price = np.maximum(price, 10.0**-decimals)
    quantity = np.maximum(np.round(size * p.mean_notional / price, 8), 1e-8)

    return pd.DataFrame(
        {
            "timestamp": pd.DatetimeIndex(ts_ns.view("datetime64[ns]")).tz_localize("UTC"),
            "price": price.astype(np.float64),
            "quantity": quantity.astype(np.float64),
            "side": side.astype(np.int8),
            "trade_id": np.arange(n, dtype=np.int64),
        },
        index=pd.RangeIndex(n),
    )


def _regimes(
    rng: np.random.Generator, base_clock: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Regime of every trade, and each regime's imbalance and activity.

    ``base_clock`` is the trade times at activity 1; a regime with activity
    ``a`` lasting ``d`` seconds covers ``a * d`` of that clock.
    """
    end = float(base_clock[-1])
    count = int(end / _REGIME_SECONDS * 1.5) + 8
    parts: list[tuple[np.ndarray, ...]] = []
    covered = 0.0
    while covered <= end:  # rarely more than one round (deterministic given rng)
        # A regime is balanced (lean near 0) or directional (|lean| near _DIRECTIONAL_LEAN).
        directional = rng.random(count) >= _BALANCED_SHARE
        sign = np.where(rng.random(count) < 0.5, -1.0, 1.0)
        spread = rng.standard_normal(count)
        strength = np.where(
            directional,
            np.clip(_DIRECTIONAL_LEAN + _LEAN_STD * spread, 0.3, 0.9),
            np.clip(_LEAN_STD * spread, -0.3, 0.3),
        )
        # Directional regimes are busier; the normaliser keeps the mean rate at 1.
        busy = (1.0 + _ACTIVITY_TREND * np.abs(strength)) / (1.0 + _ACTIVITY_TREND * _MEAN_ABS_LEAN)
        activity = busy * np.exp(_ACTIVITY_SIGMA * rng.standard_normal(count) - _ACTIVITY_SIGMA**2 / 2)
        seconds = rng.gamma(_REGIME_SHAPE, _REGIME_SECONDS / _REGIME_SHAPE, count)
        span = seconds * activity
        parts.append((span, sign * strength, activity))
        covered += float(span.sum())
    span, imbalance, activity = (np.concatenate(x) for x in zip(*parts))
    regime = np.searchsorted(np.cumsum(span), base_clock, side="left")
    return regime, imbalance, activity


def _smooth_noise(rng: np.random.Generator, n: int, memory: int) -> np.ndarray:
    """Standard normal noise averaged over ``memory`` trades: a slowly wandering level."""
    walk = np.concatenate(([0.0], np.cumsum(rng.standard_normal(n + memory - 1))))
    return (walk[memory:] - walk[:-memory]) / math.sqrt(memory)


def _bursts(rng: np.random.Generator, n: int, p: TickerProfile) -> tuple[np.ndarray, np.ndarray]:
    """Whether each trade is in a burst, and whether a burst starts at it."""
    start = rng.random(n) < p.burst_prob
    starts = np.flatnonzero(start)
    lengths = rng.geometric(1.0 / _BURST_TRADES, starts.size)
    delta = np.zeros(n + 1, dtype=np.int64)
    np.add.at(delta, starts, 1)
    np.add.at(delta, np.minimum(starts + lengths, n), -1)
    return np.cumsum(delta[:n]) > 0, start


def _seed_sequence(name: str, seed: Any) -> np.random.SeedSequence:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}; pass e.g. seed=0")
    words = np.frombuffer(hashlib.sha256(name.encode("ascii")).digest(), dtype="<u4")
    return np.random.SeedSequence([int(seed), *(int(w) for w in words)])


def _check_count(n_trades: Any) -> int:
    if isinstance(n_trades, bool) or not isinstance(n_trades, (int, np.integer)) or n_trades < 1:
        raise ConfigError(
            f"n_trades must be a positive integer, got {n_trades!r}; pass e.g. n_trades=10_000"
        )
    return int(n_trades)


def _start_ns(start: Any) -> int:
    try:
        ts = pd.Timestamp(start)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"start={start!r} is not a time; pass an ISO-8601 string such as "
            "'2024-01-01T00:00:00Z' or a pandas.Timestamp"
        ) from exc
    if ts is pd.NaT:
        raise ConfigError(f"start={start!r} is not a time; pass e.g. '2024-01-01T00:00:00Z'")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.as_unit("ns").value)
