"""The equity curve by period: drawdown episodes, calendar months and years, rolling statistics.

All of it is read from the daily equity of `tapeflow.backtest.metrics` (the last mark of each
New York date, anchored at the starting cash), so the numbers agree with the headline metrics:
the worst drawdown here is `max_drawdown`, the longest is `max_drawdown_duration`, and months
and years compound to `total_return`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from tapeflow.backtest.engine import BacktestResult
from tapeflow.backtest.metrics import TRADING_DAYS, daily_equity

ROLLING_DAYS = 63  # about a quarter of sessions
_UNDERWATER_TOLERANCE = 1e-12  # as metrics: this close under the peak is float noise


@dataclass(frozen=True)
class Drawdown:
    """One episode under water: from the last date at the peak to the first date back at it."""

    start: date  # the peak
    valley: date
    recovery: date | None  # None: still under water at the end
    depth: float  # valley / peak - 1 (<= 0)
    days: int  # calendar days from `start` to `recovery` (or to the last date)


def drawdowns(result: BacktestResult) -> list[Drawdown]:
    """Every drawdown episode of the anchored daily equity, deepest first (then earliest)."""
    days = daily_equity(result)
    if days.height == 0 or result.start_cash <= 0:
        return []
    dates = days["date"].to_list()
    when = [dates[0], *dates]  # the starting cash is a peak dated on the first day
    equity = np.concatenate([[result.start_cash], days["equity"].to_numpy()])
    peak = np.maximum.accumulate(equity)
    under = equity < peak * (1 - _UNDERWATER_TOLERANCE)
    episodes: list[Drawdown] = []
    begin: int | None = None
    for i in range(equity.size + 1):
        if i < equity.size and under[i]:
            if begin is None:
                begin = i - 1  # the last index at the peak
            continue
        if begin is not None:
            low = begin + 1 + int(np.argmin(equity[begin + 1:i]))
            recovered = when[i] if i < equity.size else None
            episodes.append(Drawdown(when[begin], when[low], recovered, float(equity[low] / peak[low] - 1),
                                     ((recovered or when[-1]) - when[begin]).days))
            begin = None
    return sorted(episodes, key=lambda d: (d.depth, d.start))


def monthly_returns(result: BacktestResult) -> pl.DataFrame:
    """Return per New York calendar month (year, month, ret), from the last equity mark of each
    month against the month before's (the first month against the starting cash)."""
    return _per_period(result, by_month=True)


def yearly_returns(result: BacktestResult) -> pl.DataFrame:
    """Return per New York calendar year (year, ret), as `monthly_returns` by year."""
    return _per_period(result, by_month=False)


def _per_period(result: BacktestResult, *, by_month: bool) -> pl.DataFrame:
    schema = {"year": pl.Int32, "month": pl.Int8, "ret": pl.Float64} if by_month else {"year": pl.Int32, "ret": pl.Float64}
    days = daily_equity(result)
    if days.height == 0:
        return pl.DataFrame(schema=schema)
    keys = [pl.col("date").dt.year().cast(pl.Int32).alias("year")]
    if by_month:
        keys.append(pl.col("date").dt.month().cast(pl.Int8).alias("month"))
    ends = days.group_by(keys, maintain_order=True).agg(pl.col("equity").last()).sort([k.meta.output_name() for k in keys])
    previous = ends["equity"].shift(1).fill_null(float(result.start_cash))
    ret = (ends["equity"] / previous - 1).fill_nan(None)
    return ends.drop("equity").with_columns(ret.cast(pl.Float64).alias("ret"))


def rolling_stats(result: BacktestResult, window: int = ROLLING_DAYS) -> pl.DataFrame:
    """date, sharpe and volatility (annualised, risk-free 0) of the last `window` daily returns,
    from the first date with a full window."""
    days = daily_equity(result)
    anchored = np.concatenate([[result.start_cash], days["equity"].to_numpy()])
    if days.height < window or (anchored[:-1] <= 0).any():
        return pl.DataFrame(schema={"date": pl.Date, "sharpe": pl.Float64, "volatility": pl.Float64})
    returns = pl.Series(anchored[1:] / anchored[:-1] - 1.0)
    mean, std = returns.rolling_mean(window), returns.rolling_std(window)
    sharpe = (mean / std * math.sqrt(TRADING_DAYS)).fill_nan(None)
    return pl.DataFrame({"date": days["date"], "sharpe": sharpe, "volatility": std * math.sqrt(TRADING_DAYS)}).slice(window - 1)


def daily_return_values(result: BacktestResult) -> np.ndarray:
    """The daily returns (from the starting cash), for a histogram."""
    days = daily_equity(result)
    anchored = np.concatenate([[result.start_cash], days["equity"].to_numpy()])
    if anchored.size < 2 or (anchored[:-1] <= 0).any():
        return np.array([], dtype=float)
    return anchored[1:] / anchored[:-1] - 1.0
