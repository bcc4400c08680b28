"""Performance metrics of a backtest, on daily returns so that minute and daily runs compare.

Daily equity: the last equity mark of each New York calendar date of the bar ends (one
point per session, after-hours included), anchored before the first day at the starting
cash. Daily returns: E_d / E_(d-1) - 1 over that series, so day 1 counts from the starting
cash and the returns compound exactly to the total return. A minute backtest and a daily
one with the same end-of-day equity therefore give the same return figures.

Definitions (None wherever a figure is undefined: no bars, no trades, zero dispersion ...):
- total_return: final_equity / start_cash - 1.
- annual_return: CAGR, (final_equity / start_cash) ** (365.25 / days) - 1, days = calendar days from the first to the last daily point.
- annual_volatility: sample std (ddof 1) of daily returns * sqrt(252).
- sharpe: mean / sample std of daily returns * sqrt(252), risk-free 0.
- sortino: 252 * mean daily return / (sqrt(mean(min(r, 0) ** 2)) * sqrt(252)), as empyrical.
- max_drawdown: min over days of E_d / max(E up to d) - 1 on the anchored daily equity (<= 0; intraday troughs unseen).
- max_drawdown_duration: longest calendar days from the last date at a running peak to the first date back at it (or to the last date).
- calmar: annual_return / |max_drawdown|.
- win_rate: fraction of round-trip trades with pnl > 0 (pnl net of costs).
- profit_factor: sum of winning pnl / |sum of losing pnl|; None when no trade lost.
- trades: number of closed round trips (a position still open at the end is not one).
- avg_trade_return: mean return of a trade as a fraction of its entry value, net of costs.
- exposure: time in the market, the fraction of regular-session time the book held any position,
  from the fills (tapeflow/backtest/exposure.py), so an intraday strategy marked daily still counts.
- gross_exposure: mean over bars of gross position value / equity (average gross exposure; 1 = fully invested).
- turnover: sum of |qty * price| over all fills / mean daily equity, for the whole run (not annualised).
- commissions, fees, slippage: sums over the fills.
- slippage_bps: slippage / traded value (sum of |qty * price| over the fills) * 1e4: the average cost per side in basis points.
- final_equity: the last equity mark (the starting cash when there are no bars).

Against a benchmark curve (`benchmark_metrics`, on the dates both have):
- benchmark_return: the benchmark's final equity / start_cash - 1.
- beta: cov(strategy, benchmark) / var(benchmark) of daily returns (sample, ddof 1).
- alpha: (mean daily return - beta * benchmark mean daily return) * 252: annualised, risk-free 0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import cast

import numpy as np
import polars as pl

from tapeflow.backtest.engine import BacktestResult, daily_of
from tapeflow.backtest.exposure import time_in_market

TRADING_DAYS = 252
DAYS_PER_YEAR = 365.25
# Equity this close under its peak is float noise, not a drawdown (for durations only).
_UNDERWATER_TOLERANCE = 1e-12


@dataclass(frozen=True)
class Metrics:
    """The headline numbers of one backtest; definitions in the module docstring."""

    total_return: float | None
    annual_return: float | None
    annual_volatility: float | None
    sharpe: float | None
    sortino: float | None
    max_drawdown: float | None
    max_drawdown_duration: int | None
    calmar: float | None
    win_rate: float | None
    profit_factor: float | None
    trades: int
    avg_trade_return: float | None
    exposure: float | None
    gross_exposure: float | None
    turnover: float | None
    commissions: float
    fees: float
    slippage: float
    slippage_bps: float | None
    final_equity: float


def compute_metrics(result: BacktestResult) -> dict[str, float | int | None]:
    """Every metric of `result` as a plain dict (JSON-ready, no NaN)."""
    return asdict(metrics_of(result))


def daily_equity(result: BacktestResult) -> pl.DataFrame:
    """One row per New York date of the bar ends: `date` and the day's last `equity`."""
    return result.daily_equity


def daily_returns(result: BacktestResult) -> np.ndarray:
    """Daily simple returns, the first one from the starting cash (one per daily point)."""
    anchored = np.concatenate([[result.start_cash], daily_equity(result)["equity"].to_numpy()])
    if anchored.size < 2 or (anchored[:-1] <= 0).any():
        return np.array([], dtype=float)
    return anchored[1:] / anchored[:-1] - 1.0


def metrics_of(result: BacktestResult) -> Metrics:
    """The Metrics of `result`."""
    days = daily_equity(result)
    dates = days["date"].to_list()
    equity = days["equity"].to_numpy()
    returns = daily_returns(result)
    start, final = result.start_cash, result.final_equity
    total = _finite(final / start - 1.0) if start > 0 else None
    annual = _cagr(start, final, (dates[-1] - dates[0]).days) if dates else None
    drawdown = _max_drawdown(start, equity) if equity.size and start > 0 else None
    pnl = result.trades["pnl"].to_numpy()
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    mean_equity = float(equity.mean()) if equity.size else None
    fills = result.fills
    traded = float((fills["qty"] * fills["price"]).abs().sum())
    return Metrics(
        total_return=total,
        annual_return=annual,
        annual_volatility=_volatility(returns),
        sharpe=_sharpe(returns),
        sortino=_sortino(returns),
        max_drawdown=drawdown,
        max_drawdown_duration=_max_drawdown_duration(start, dates, equity) if drawdown is not None else None,
        calmar=_finite(annual / -drawdown) if annual is not None and drawdown else None,
        win_rate=wins.size / pnl.size if pnl.size else None,
        profit_factor=float(wins.sum() / -losses.sum()) if losses.size else None,
        trades=int(pnl.size),
        # polars types a mean as any scalar; these columns are Float64
        avg_trade_return=_finite(cast(float, result.trades["return_pct"].mean()) / 100) if pnl.size else None,
        exposure=_finite(time_in_market(fills, cast(datetime, result.equity["ts"].min()),
                                         cast(datetime, result.equity["ts"].max())))
        if result.equity.height else None,
        gross_exposure=_finite(cast("float | None", result.equity["exposure"].mean())) if result.equity.height else None,
        turnover=_finite(traded / mean_equity)
        if mean_equity and mean_equity > 0 else None,
        commissions=float(fills["commission"].sum()),
        fees=float(fills["fees"].sum()),
        slippage=float(fills["slippage"].sum()),
        slippage_bps=_finite(float(fills["slippage"].sum()) / traded * 1e4) if traded > 0 else None,
        final_equity=float(final),
    )


def _finite(value: float | None) -> float | None:
    """`value` as a float, or None for None, NaN and infinities."""
    return float(value) if value is not None and math.isfinite(value) else None


def _cagr(start: float, final: float, days: int) -> float | None:
    """Compound annual growth from `start` to `final` over `days` calendar days."""
    if days <= 0 or start <= 0 or final < 0:
        return None
    try:
        return _finite((final / start) ** (DAYS_PER_YEAR / days) - 1.0)
    except OverflowError:
        return None


def _volatility(returns: np.ndarray) -> float | None:
    """Annualised sample standard deviation of daily returns."""
    return _finite(returns.std(ddof=1) * math.sqrt(TRADING_DAYS)) if returns.size >= 2 else None


def _sharpe(returns: np.ndarray) -> float | None:
    """Annualised mean over sample std; None when the returns do not vary."""
    if returns.size < 2 or returns.max() == returns.min():
        return None
    return _finite(returns.mean() / returns.std(ddof=1) * math.sqrt(TRADING_DAYS))


def _sortino(returns: np.ndarray) -> float | None:
    """Annualised mean over annualised downside deviation (target 0); None without a down day."""
    if returns.size < 2:
        return None
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2))) * math.sqrt(TRADING_DAYS)
    return _finite(returns.mean() * TRADING_DAYS / downside) if downside > 0 else None


def _max_drawdown(start: float, equity: np.ndarray) -> float | None:
    """Deepest fall under the running peak of the daily equity anchored at `start`."""
    anchored = np.concatenate([[start], equity])
    return _finite(float((anchored / np.maximum.accumulate(anchored) - 1.0).min()))


def _max_drawdown_duration(start: float, dates: list[date], equity: np.ndarray) -> int:
    """Longest calendar days from a peak to recovery (or to the last date); the starting
    cash is a peak dated on the first day."""
    anchored = np.concatenate([[start], equity])
    when = [dates[0], *dates]
    peak = np.maximum.accumulate(anchored)
    underwater = anchored < peak * (1 - _UNDERWATER_TOLERANCE)
    longest, peak_at = 0, when[0]
    for i in range(anchored.size):
        if not underwater[i]:
            if i and underwater[i - 1]:
                longest = max(longest, (when[i] - peak_at).days)
            peak_at = when[i]
    if underwater[-1]:
        longest = max(longest, (when[-1] - peak_at).days)
    return longest


def benchmark_metrics(result: BacktestResult, benchmark: pl.DataFrame) -> dict[str, float | None]:
    """benchmark_return, alpha and beta of `result` against a `benchmark` equity frame (ts,
    equity) that started with the same cash; None where undefined."""
    start = result.start_cash
    mine, theirs = daily_of(result.equity), daily_of(benchmark)
    both = mine.join(theirs, on="date", how="inner", suffix="_b").sort("date")
    final = float(benchmark.sort("ts")["equity"][-1]) if benchmark.height else None
    out: dict[str, float | None] = {
        "benchmark_return": _finite(final / start - 1.0) if final is not None and start > 0 else None,
        "alpha": None, "beta": None}
    if both.height < 2 or start <= 0:
        return out
    r = np.diff(np.concatenate([[start], both["equity"].to_numpy()])) / np.concatenate([[start], both["equity"].to_numpy()[:-1]])
    b = np.diff(np.concatenate([[start], both["equity_b"].to_numpy()])) / np.concatenate([[start], both["equity_b"].to_numpy()[:-1]])
    variance = float(np.var(b, ddof=1))
    if variance <= 0 or not math.isfinite(variance):
        return out
    beta = float(np.cov(r, b, ddof=1)[0, 1]) / variance
    out["beta"] = _finite(beta)
    out["alpha"] = _finite((float(r.mean()) - beta * float(b.mean())) * TRADING_DAYS)
    return out
