"""What was known of a name's liquidity before a session: its average daily dollar volume (ADV)
and daily volatility, from the sessions before it, in bars at hand or in the warehouse.

ADV: the mean dollar volume (close x volume) of the SESSIONS latest sessions with bars before
the session, within LOOKBACK_DAYS calendar days. sigma_daily: the sample standard deviation of
the close-to-close returns (each session's last close) between the SESSIONS + 1 latest of them;
at least MIN_RETURNS returns, else unknown. Unknown is NaN. In the warehouse a session counts its
daily bar where one is stored, else the sum of its minute bars, and the closes are taken across
recorded corporate actions without their jumps.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import duckdb
import numpy as np
import polars as pl

from tapeflow.calendar.exchange import NEW_YORK, ny_day_bounds
from tapeflow.model import ActionKind
from tapeflow.strategy.history import LIQUIDITY_COLUMNS
from warehouse.reads import actions_between

SESSIONS = 20
LOOKBACK_DAYS = 60  # older sessions say little about today's market
MIN_RETURNS = 5  # a standard deviation of fewer returns is noise
_EPOCH = date(1970, 1, 1)

# Bars are read through `bars_all` (warehouse/bars_view.py), so archived months count too.
# One row a symbol and New York day: its daily bar's dollar volume and close where stored, else
# its minute bars' (summed in time order, so that two copies of the data give the same sums).
_DAYS = """
SELECT symbol, day, arg_min(dollars, rank) AS dollars, arg_min(last_close, rank) AS close FROM (
    SELECT symbol, timezone('America/New_York', ts)::DATE AS day, sum(close * volume ORDER BY ts) AS dollars,
           arg_max(close, ts) AS last_close, CASE timeframe WHEN '1d' THEN 0 ELSE 1 END AS rank
    FROM bars_all WHERE timeframe IN ('1d', '1m') AND list_contains($symbols, symbol) AND ts >= $lo AND ts < $hi
    GROUP BY symbol, timeframe, day)
GROUP BY symbol, day ORDER BY symbol, day
"""

# The bars `_DAYS` reads for the sessions of first..last: what a replay's own warehouse must hold.
_SOURCES = """
SELECT b.* EXCLUDE (month) FROM bars_all b
WHERE list_contains($symbols, b.symbol) AND b.ts >= $lo AND b.ts < $hi AND (b.timeframe = '1d' OR (
    b.timeframe = '1m' AND NOT EXISTS (
        SELECT 1 FROM bars_all d WHERE d.timeframe = '1d' AND d.symbol = b.symbol AND d.ts >= $lo AND d.ts < $hi
        AND timezone('America/New_York', d.ts)::DATE = timezone('America/New_York', b.ts)::DATE)))
"""


def prior_liquidity(days: np.ndarray, dollars: np.ndarray, close: np.ndarray,
                    targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ADV, sigma_daily) before each target day, from one symbol's sessions: `days` (epoch days,
    ascending, one entry each) with their dollar volume and last close."""
    targets = np.asarray(targets, dtype=np.int64)
    if len(days) == 0:
        return np.full(len(targets), np.nan), np.full(len(targets), np.nan)
    # Each row: the SESSIONS + 1 sessions before a target, oldest first (the oldest only starts a return).
    cols = np.searchsorted(days, targets, side="left")[:, None] + np.arange(-SESSIONS - 1, 0)
    valid = cols >= 0
    cols = np.where(valid, cols, 0)
    valid &= days[cols] >= (targets - LOOKBACK_DAYS)[:, None]
    counted = valid[:, 1:].sum(axis=1)
    summed = np.where(valid[:, 1:], dollars[cols[:, 1:]], 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        adv = np.where(counted > 0, summed / counted, np.nan)
        closes = np.where(valid, close[cols], np.nan)
        returns = closes[:, 1:] / closes[:, :-1] - 1.0
        ok = ~np.isnan(returns)
        n = ok.sum(axis=1)
        mean = np.where(ok, returns, 0.0).sum(axis=1) / n
        var = (np.where(ok, returns - mean[:, None], 0.0) ** 2).sum(axis=1) / (n - 1)
    return adv, np.where(n >= MIN_RETURNS, np.sqrt(var), np.nan)


def bar_liquidity(session: np.ndarray, close: np.ndarray, volume: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ADV, sigma_daily) per bar of one symbol, bars in time order, `session` their epoch days."""
    days, inverse = np.unique(session, return_inverse=True)
    dollars = np.bincount(inverse, weights=close * volume, minlength=len(days))
    last = np.searchsorted(session, days, side="right") - 1  # the session's last bar
    adv, sigma = prior_liquidity(days, dollars, close[last], days)
    return adv[inverse], sigma[inverse]


def stored_liquidity(con: duckdb.DuckDBPyConnection, symbols: Sequence[str], sessions: Sequence[date]) -> pl.DataFrame:
    """(symbol, session, adv_dollars, sigma_daily) for each symbol before each of `sessions`,
    from the warehouse's bars."""
    if not symbols or not sessions:
        return pl.DataFrame(schema=LIQUIDITY_COLUMNS)
    sessions = sorted(set(sessions))
    lo = ny_day_bounds(sessions[0] - timedelta(days=LOOKBACK_DAYS))[0]
    rows = con.sql(_DAYS, params={"symbols": list(symbols), "lo": lo, "hi": ny_day_bounds(sessions[-1])[0]}).pl()
    # One pass over arrays: each symbol is a run of rows (the query orders by symbol, day).
    names = rows["symbol"].to_list()
    days_all = rows["day"].cast(pl.Int32).to_numpy().astype(np.int64)
    dollars_all, closes_all = rows["dollars"].to_numpy(), rows["close"].to_numpy()
    runs: dict[str, slice] = {}
    for i, name in enumerate(names):
        runs[name] = slice(runs[name].start, i + 1) if name in runs else slice(i, i + 1)
    actions = actions_between(con, sessions[0] - timedelta(days=LOOKBACK_DAYS), sessions[-1], list(symbols))
    by_action = {s: group for (s,), group in actions.partition_by("symbol", as_dict=True).items()} if actions.height else {}
    targets = np.array([(s - _EPOCH).days for s in sessions], dtype=np.int64)
    advs, sigmas = [], []
    for symbol in symbols:
        part = runs.get(symbol)
        if part is None:
            adv, sigma = prior_liquidity(np.array([], dtype=np.int64), np.array([]), np.array([]), targets)
        else:
            days = days_all[part]
            closes = closes_all[part]
            if symbol in by_action:
                closes = _continuous(days, closes, by_action[symbol])
            adv, sigma = prior_liquidity(days, dollars_all[part], closes, targets)
        advs.append(adv)
        sigmas.append(sigma)
    return pl.DataFrame({"symbol": np.repeat(np.array(list(symbols), dtype=object), len(sessions)).tolist(),
                         "session": sessions * len(symbols), "adv_dollars": np.concatenate(advs),
                         "sigma_daily": np.concatenate(sigmas)}, schema=LIQUIDITY_COLUMNS)


def _continuous(days: np.ndarray, close: np.ndarray, actions: pl.DataFrame) -> np.ndarray:
    """Closes with the jumps recorded corporate actions make taken out (a 2-for-1 split is no
    -50% return to measure volatility on); dollar volume needs no such care."""
    close = close.astype(float).copy()
    for kind, ex_date, ratio, amount, factor in actions.select(
            "kind", "ex_date", "ratio", "amount", "price_factor").iter_rows():
        k = int(np.searchsorted(days, (ex_date - _EPOCH).days, side="left"))
        if k == 0:
            continue
        multiplier = (1 / ratio if kind in (ActionKind.SPLIT, ActionKind.REVERSE_SPLIT) and ratio
                      else 1 - amount / close[k - 1] if amount and amount < close[k - 1] else factor)
        if multiplier:
            close[:k] *= multiplier
    return close


def liquidity_of(con: duckdb.DuckDBPyConnection, bars: pl.DataFrame) -> pl.DataFrame:
    """`stored_liquidity` for the symbols and New York days of `bars`."""
    if bars.is_empty():
        return pl.DataFrame(schema=LIQUIDITY_COLUMNS)
    days = bars.select(_day().unique().sort())["_session"].to_list()
    return stored_liquidity(con, bars["symbol"].unique().sort().to_list(), days)


def with_liquidity(bars: pl.DataFrame, liquidity: pl.DataFrame) -> pl.DataFrame:
    """`bars` with the `adv_dollars` and `sigma_daily` of their session, where `liquidity` has
    any (the fill model then reads them instead of measuring the bars at hand)."""
    if liquidity.is_empty():
        return bars
    known = liquidity.select("symbol", pl.col("session").alias("_session"), "adv_dollars", "sigma_daily")
    return (bars.with_columns(_day()).join(known, on=["symbol", "_session"], how="left", maintain_order="left")
            .drop("_session"))


def liquidity_sources(con: duckdb.DuckDBPyConnection, symbols: Sequence[str], first: date, last: date) -> pl.DataFrame:
    """The warehouse's bars that `stored_liquidity` reads for `symbols` on `first`..`last`."""
    params = {"symbols": list(symbols), "lo": ny_day_bounds(first - timedelta(days=LOOKBACK_DAYS))[0],
              "hi": ny_day_bounds(last)[0]}
    return con.sql(_SOURCES, params=params).pl()


def _day() -> pl.Expr:
    return pl.col("ts").dt.convert_time_zone(str(NEW_YORK)).dt.date().alias("_session")
