"""Backtest metrics: return figures against empyrical-reloaded on the same daily returns
(random curves and real SMA backtests), hand-computed trade and drawdown cases, edge cases."""

from __future__ import annotations

import json
import math
from dataclasses import fields
from datetime import UTC, date, datetime, time, timedelta

import empyrical as ep
import numpy as np
import pandas as pd
import polars as pl
import pytest

from strategies.sma_cross import SmaCross
from tapeflow.backtest import metrics as metrics_module
from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.costs import retail_default_costs
from tapeflow.backtest.engine import BacktestResult, simulate
from tapeflow.backtest.metrics import (
    Metrics,
    compute_metrics,
    daily_equity,
    daily_returns,
)
from tapeflow.calendar.exchange import NEW_YORK
from tapeflow.config import PROJECT_DATA
from tapeflow.schemas import EQUITY_SCHEMA, FILLS_SCHEMA, TRADES_SCHEMA, conform
from tapeflow.sources import Window
from tapeflow.sources.replay import ReplaySource
from tapeflow.strategy.history import History

UTC = UTC
RTOL = 1e-9
START = 100_000.0
ALL = Window(datetime(2009, 1, 1, tzinfo=UTC), datetime(2012, 1, 1, tzinfo=UTC))
RETURN_METRICS = ("total_return", "annual_return", "annual_volatility", "sharpe", "sortino", "max_drawdown",
                  "max_drawdown_duration", "calmar")


def make_result(ts: list[datetime], equity: list[float] | np.ndarray, *, start: float = START,
                exposure: list[float] | None = None, pnl: list[float] | None = None,
                return_pct: list[float] | None = None, fills: list[dict] | None = None) -> BacktestResult:
    """A BacktestResult around a hand-made equity curve, trades and fills."""
    equity = np.asarray(equity, dtype=float)
    pnl = pnl or []
    trades = pl.DataFrame({
        "symbol": ["X"] * len(pnl), "entry_ts": [ts[0]] * len(pnl) if ts else [], "exit_ts": [ts[-1]] * len(pnl) if ts else [],
        "qty": [1.0] * len(pnl), "entry_price": [1.0] * len(pnl), "exit_price": [1.0] * len(pnl), "pnl": pnl,
        "return_pct": return_pct or [0.0] * len(pnl), "costs": [0.0] * len(pnl),
    }, schema=TRADES_SCHEMA)
    curve = conform(pl.DataFrame({
        "ts": pl.Series(ts, dtype=EQUITY_SCHEMA["ts"]), "cash": equity, "positions": np.zeros_like(equity),
        "equity": equity, "exposure": exposure if exposure is not None else np.zeros_like(equity),
    }), EQUITY_SCHEMA)
    return BacktestResult(fills=pl.DataFrame(fills or [], schema=FILLS_SCHEMA), trades=trades, equity=curve,
                          decisions=pl.DataFrame(), config=BacktestConfig(cash=start), start_cash=start)


def closes(days: list[date]) -> list[datetime]:
    """The 16:00 New York close of each day, as UTC."""
    return [datetime.combine(d, time(16), tzinfo=NEW_YORK).astimezone(UTC) for d in days]


def business_days(first: date, n: int) -> list[date]:
    return [d.date() for d in pd.bdate_range(first, periods=n)]


def close_enough(actual: float | None, expected: float) -> bool:
    return actual is not None and math.isclose(actual, expected, rel_tol=RTOL, abs_tol=1e-15)


def assert_matches_empyrical(m: dict, r: np.ndarray, span_days: int) -> None:
    """Our figures against empyrical on the daily returns `r` spanning `span_days` calendar days."""
    # empyrical annualises by counting returns (len / 252 years); ours by calendar time. Giving
    # empyrical the periods-per-year that makes its year count equal ours compares the rest.
    per_year = len(r) * 365.25 / span_days
    assert close_enough(m["total_return"], ep.cum_returns_final(r))
    assert close_enough(m["annual_return"], ep.annual_return(r, annualization=per_year))
    assert close_enough(m["annual_volatility"], ep.annual_volatility(r))
    assert close_enough(m["sharpe"], ep.sharpe_ratio(r))
    assert close_enough(m["sortino"], ep.sortino_ratio(r))
    assert close_enough(m["max_drawdown"], ep.max_drawdown(r))
    assert close_enough(m["calmar"], ep.calmar_ratio(r, annualization=per_year))


def pandas_daily_returns(result: BacktestResult) -> tuple[np.ndarray, int]:
    """Daily returns (and calendar span) recomputed with pandas, independently of the module."""
    frame = result.equity.to_pandas()
    days = frame.groupby(frame["ts"].dt.tz_convert("America/New_York").dt.date)["equity"].last()
    anchored = np.concatenate([[result.start_cash], days.to_numpy()])
    return anchored[1:] / anchored[:-1] - 1, (days.index[-1] - days.index[0]).days


def assert_json_ready(m: dict) -> None:
    json.dumps(m, allow_nan=False)
    assert set(m) == {f.name for f in fields(Metrics)}


@pytest.fixture(scope="module")
def daily_run() -> BacktestResult:
    bars = ReplaySource(PROJECT_DATA).bars(["AAPL", "C", "F", "MSFT", "XRX", "JDSU"], "1d", ALL)
    history = History(bars=bars.filter(pl.col("problem").is_null()))
    return simulate(history.bars, SmaCross(fast=5, slow=20).signals(history), BacktestConfig(costs=retail_default_costs()))


@pytest.fixture(scope="module")
def minute_run() -> BacktestResult:
    bars = ReplaySource(PROJECT_DATA).bars(["SPY"], "1m", ALL)
    history = History(bars=bars.filter(pl.col("problem").is_null()))
    return simulate(history.bars, SmaCross(fast=30, slow=120).signals(history), BacktestConfig())


def test_every_metric_is_defined_in_the_module_docstring():
    doc = metrics_module.__doc__
    for f in fields(Metrics):
        assert f"- {f.name}:" in doc or f" {f.name}," in doc or f" {f.name}:" in doc, f.name


@pytest.mark.parametrize("seed", range(6))
def test_random_daily_curves_match_empyrical(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 700))
    r = rng.normal(rng.uniform(-0.001, 0.002), rng.uniform(0.002, 0.03), n)
    days = business_days(date(2015, 1, 1) + timedelta(days=int(rng.integers(0, 400))), n)
    result = make_result(closes(days), START * np.cumprod(1 + r))
    m = compute_metrics(result)
    np.testing.assert_allclose(daily_returns(result), r, rtol=1e-9, atol=1e-15)
    assert_matches_empyrical(m, r, (days[-1] - days[0]).days)
    assert_json_ready(m)


@pytest.mark.parametrize("seed", range(3))
def test_a_minute_curve_gives_the_figures_of_its_day_ends(seed):
    rng = np.random.default_rng(100 + seed)
    days = business_days(date(2011, 3, 1), 40)  # spans the DST switch of 2011-03-13
    day_end = START * np.cumprod(1 + rng.normal(0.0005, 0.01, len(days)))
    ts, marks = [], []
    for d, last in zip(days, day_end):
        # Pre-market at 04:01 to after-hours until 20:00 New York; the day's last mark is `last`.
        minutes = np.sort(rng.choice(np.arange(1, 16 * 60 + 1), size=int(rng.integers(2, 50)), replace=False))
        open_ = datetime.combine(d, time(4), tzinfo=NEW_YORK)
        ts += [(open_ + timedelta(minutes=int(k))).astimezone(UTC) for k in minutes]
        marks += [*(last * rng.uniform(0.97, 1.03, minutes.size - 1)), last]
    minute, daily = compute_metrics(make_result(ts, marks)), compute_metrics(make_result(closes(days), day_end))
    for name in RETURN_METRICS:
        assert minute[name] == daily[name], name
    assert daily_equity(make_result(ts, marks))["date"].to_list() == days


def test_a_bar_ending_after_midnight_utc_counts_to_its_new_york_date():
    # 20:00 New York on 2011-03-14 (EDT) is 00:00 UTC on the 15th: still the 14th's session.
    ts = [datetime(2011, 3, 14, 20, tzinfo=UTC), datetime(2011, 3, 15, 0, tzinfo=UTC), datetime(2011, 3, 15, 20, tzinfo=UTC)]
    days = daily_equity(make_result(ts, [101.0, 102.0, 103.0], start=100.0))
    assert days.rows() == [(date(2011, 3, 14), 102.0), (date(2011, 3, 15), 103.0)]


def test_real_daily_sma_backtest_matches_empyrical(daily_run):
    m = compute_metrics(daily_run)
    r, span = pandas_daily_returns(daily_run)
    assert len(r) == 245 and m["trades"] == daily_run.trades.height > 10
    np.testing.assert_allclose(daily_returns(daily_run), r, rtol=0, atol=0)
    assert_matches_empyrical(m, r, span)
    pnl = daily_run.trades["pnl"]
    assert m["win_rate"] == (pnl > 0).sum() / pnl.len()
    assert m["profit_factor"] == pytest.approx(pnl.filter(pnl > 0).sum() / -pnl.filter(pnl < 0).sum(), rel=1e-12)
    for column, name in (("commission", "commissions"), ("fees", "fees"), ("slippage", "slippage")):
        assert m[name] == pytest.approx(daily_run.fills[column].sum(), rel=1e-12) and m[name] > 0
    assert m["final_equity"] == daily_run.final_equity
    assert 0 < m["exposure"] < 1 and m["turnover"] > 0
    assert_json_ready(m)


def test_real_minute_sma_backtest_matches_empyrical(minute_run):
    m = compute_metrics(minute_run)
    r, span = pandas_daily_returns(minute_run)
    # 20 January + 23 March sessions; grouping by UTC date would make 52 (after-hours past midnight UTC).
    assert len(r) == 43 and m["trades"] > 10
    np.testing.assert_allclose(daily_returns(minute_run), r, rtol=0, atol=0)
    assert_matches_empyrical(m, r, span)
    assert_json_ready(m)


def test_empyrical_annual_return_disagrees_by_design_on_a_gappy_calendar(daily_run):
    # The bundled panel misses 7 sessions: 245 returns over 364 days. empyrical counts
    # 245 / 252 years; calendar time says 364 / 365.25.
    r, span = pandas_daily_returns(daily_run)
    ours = compute_metrics(daily_run)["annual_return"]
    assert ours == pytest.approx((1 + ep.cum_returns_final(r)) ** (365.25 / span) - 1, rel=RTOL)
    assert not math.isclose(ours, ep.annual_return(r), rel_tol=1e-4)


def test_win_rate_profit_factor_and_average_trade_by_hand():
    days = business_days(date(2024, 1, 2), 3)
    m = compute_metrics(make_result(closes(days), [100.0, 101.0, 102.0], start=100.0,
                                    pnl=[100.0, -50.0, 0.0, 30.0, -25.0], return_pct=[2.0, -1.0, 0.0, 0.5, -0.5]))
    assert m["trades"] == 5
    assert m["win_rate"] == 0.4  # a break-even trade is not a win
    assert m["profit_factor"] == pytest.approx(130 / 75)
    assert m["avg_trade_return"] == pytest.approx(0.002)


def test_profit_factor_without_losers_or_without_winners():
    days = business_days(date(2024, 1, 2), 2)
    winners = compute_metrics(make_result(closes(days), [1.0, 1.0], start=1.0, pnl=[5.0, 0.0]))
    assert winners["profit_factor"] is None and winners["win_rate"] == 0.5
    losers = compute_metrics(make_result(closes(days), [1.0, 1.0], start=1.0, pnl=[-5.0]))
    assert losers["profit_factor"] == 0.0 and losers["win_rate"] == 0.0


def test_drawdown_and_its_duration_by_hand():
    # Thu 4 Jan .. Mon 15 Jan 2024; peak 100 last seen on the 4th, recovered on the 9th (5 days);
    # new peak 101 on the 9th, still under water at the end on the 15th (6 days).
    days = [date(2024, 1, d) for d in (4, 5, 8, 9, 10, 11, 12, 15)]
    equity = [100.0, 90.0, 95.0, 101.0, 99.0, 98.0, 100.0, 100.5]
    m = compute_metrics(make_result(closes(days), equity, start=100.0))
    assert m["max_drawdown"] == pytest.approx(-0.10)
    assert m["max_drawdown_duration"] == 6
    recovered = compute_metrics(make_result(closes(days[:4]), equity[:4], start=100.0))
    assert recovered["max_drawdown_duration"] == 5


def test_a_first_day_loss_is_under_the_starting_cash():
    days = business_days(date(2024, 1, 2), 3)  # Tue 2 .. Thu 4 Jan
    m = compute_metrics(make_result(closes(days), [95.0, 97.0, 99.0], start=100.0))
    assert m["max_drawdown"] == pytest.approx(-0.05)
    assert m["max_drawdown_duration"] == 2  # from the start (dated the first day) to the end
    assert m["sortino"] is not None and m["total_return"] == pytest.approx(-0.01)


def test_cagr_by_hand():
    days = [date(2022, 1, 3), date(2023, 1, 3), date(2024, 1, 3)]
    m = compute_metrics(make_result(closes(days), [110.0, 100.0, 121.0], start=100.0))
    assert m["annual_return"] == pytest.approx(1.21 ** (365.25 / 730) - 1)
    assert m["calmar"] == pytest.approx(m["annual_return"] / (1 - 100 / 110))


def test_exposure_and_turnover_by_hand():
    days = business_days(date(2024, 1, 2), 2)
    ts = [closes(days)[0] - timedelta(hours=1), closes(days)[0], closes(days)[1]]
    fills = [
        {"order_id": "a", "symbol": "X", "side": "buy", "ts": ts[0], "qty": 10.0, "price": 5.0,
         "commission": 1.0, "fees": 0.0, "slippage": 0.25},
        {"order_id": "b", "symbol": "X", "side": "sell", "ts": ts[2], "qty": 10.0, "price": 6.0,
         "commission": 1.5, "fees": 0.1, "slippage": 0.5},
    ]
    m = compute_metrics(make_result(ts, [100.0, 104.0, 96.0], start=100.0, exposure=[0.5, 1.0, 0.0], fills=fills))
    # Time in the market: held from an hour before day 1's close to day 2's close, so 1 h of
    # day 1's 6.5 h session and all of day 2's, over the two sessions' 13 h.
    assert m["exposure"] == pytest.approx(7.5 / 13)
    assert m["gross_exposure"] == pytest.approx(0.5)  # mean over the three bars of gross value / equity
    assert m["turnover"] == pytest.approx((50 + 60) / ((104 + 96) / 2))  # over the mean daily equity
    assert (m["commissions"], m["fees"], m["slippage"]) == pytest.approx((2.5, 0.1, 0.75))


def test_flat_equity_without_trades():
    days = business_days(date(2024, 1, 2), 30)
    m = compute_metrics(make_result(closes(days), [START] * 30))
    assert m["total_return"] == 0.0 and m["annual_return"] == 0.0
    assert m["annual_volatility"] == 0.0 and m["sharpe"] is None and m["sortino"] is None
    assert m["max_drawdown"] == 0.0 and m["max_drawdown_duration"] == 0 and m["calmar"] is None
    assert (m["trades"], m["win_rate"], m["profit_factor"], m["avg_trade_return"]) == (0, None, None, None)
    assert (m["exposure"], m["turnover"], m["commissions"]) == (0.0, 0.0, 0.0)
    assert_json_ready(m)


def test_one_day():
    m = compute_metrics(make_result(closes([date(2024, 1, 2)]), [99_000.0]))
    assert m["total_return"] == pytest.approx(-0.01) and m["max_drawdown"] == pytest.approx(-0.01)
    for name in ("annual_return", "annual_volatility", "sharpe", "sortino", "calmar"):
        assert m[name] is None, name
    assert_json_ready(m)


def test_no_bars_at_all():
    m = compute_metrics(make_result([], []))
    assert m["final_equity"] == START and m["total_return"] == 0.0 and m["trades"] == 0
    assert all(m[name] is None for name in RETURN_METRICS if name != "total_return")
    assert m["exposure"] is None and m["turnover"] is None
    assert_json_ready(m)


def test_only_up_days_leave_sortino_undefined():
    days = business_days(date(2024, 1, 2), 5)
    m = compute_metrics(make_result(closes(days), [101.0, 102.0, 104.0, 105.0, 108.0], start=100.0))
    assert m["sortino"] is None and m["sharpe"] > 0 and m["max_drawdown"] == 0.0 and m["calmar"] is None


def test_a_wipe_out_and_an_overflowing_cagr_give_no_nan():
    days = business_days(date(2024, 1, 2), 3)
    wiped = compute_metrics(make_result(closes(days), [50.0, 0.0, 0.0], start=100.0))
    assert wiped["total_return"] == -1.0 and wiped["annual_return"] == -1.0 and wiped["max_drawdown"] == -1.0
    assert wiped["sharpe"] is None and wiped["annual_volatility"] is None  # no return after a zero equity
    assert wiped["max_drawdown_duration"] == 2 and wiped["calmar"] == -1.0
    assert_json_ready(wiped)
    rocket = compute_metrics(make_result(closes(days[:2]), [1e3, 1e6], start=1.0))
    assert rocket["annual_return"] is None and rocket["calmar"] is None
    assert_json_ready(rocket)
