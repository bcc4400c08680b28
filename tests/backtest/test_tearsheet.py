"""The tearsheet's numbers, checked against a real run stored in a real DuckDB warehouse and
against hand computations: per-symbol P&L, exit reasons, drawdowns, years, the benchmark,
exposure from intraday holdings and signal groups."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from strategies.opening_range import OpeningRangeBreakout
from strategies.sma_cross import SmaCross
from strategies.watchlist_momentum import WatchlistMomentum
from tapeflow.backtest.analysis.periods import drawdowns, rolling_stats, yearly_returns
from tapeflow.backtest.analysis.positions import open_positions
from tapeflow.backtest.analysis.signals import signal_groups
from tapeflow.backtest.analysis.trades import (
    ExitReason,
    annotated_trades,
    durations,
    exit_breakdown,
    exit_reason,
    per_symbol_pnl,
    streaks,
)
from tapeflow.backtest.benchmark import buy_and_hold
from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.costs import Commission, Costs, Slippage, cost_preset
from tapeflow.backtest.exposure import held_periods, time_in_market
from tapeflow.backtest.metrics import daily_equity
from tapeflow.backtest.report import TRADES_CSV, render_report
from tapeflow.backtest.run import Backtest, run_backtest
from tapeflow.backtest.runs import store_run
from tapeflow.calendar.exchange import get_calendar
from tapeflow.config import PROJECT_DATA
from tapeflow.schemas import FILLS_SCHEMA
from tapeflow.sources.base import Window
from tapeflow.sources.replay import ReplaySource
from tapeflow.strategy.history import BAR_COLUMNS, History
from tests.research_kit import path_bars
from tests.strategy.test_builtins import daily, with_watchlist  # noqa: F401 (fixtures: scanner snapshots over the panel)
from warehouse.connection import Warehouse

START = datetime(2009, 8, 21, 4, tzinfo=UTC)  # the demo's window: New York days 2009-08-21..2010-08-20
END = datetime(2010, 8, 21, 4, tzinfo=UTC)
CONFIG = BacktestConfig(costs=cost_preset("retail-default"))


def _history(timeframe: str, symbols: list[str] | None, first: datetime, last: datetime) -> History:
    source = ReplaySource(PROJECT_DATA)
    raw = source.bars(symbols or source.symbols(timeframe), timeframe, Window(first, last))
    return History(bars=raw.filter(pl.col("problem").is_null()).select(*BAR_COLUMNS))


@pytest.fixture(scope="module")
def panel() -> History:
    return _history("1d", None, datetime(2009, 1, 1, tzinfo=UTC), END)


@pytest.fixture(scope="module")
def sma(panel: History) -> Backtest:
    """The demo's run: SMA cross on the whole bundled daily panel, retail costs."""
    return run_backtest(SmaCross(), panel, CONFIG, start=START)


@pytest.fixture(scope="module")
def stored(sma: Backtest, tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    warehouse = Warehouse(tmp_path_factory.mktemp("wh") / "w.duckdb")
    store_run(warehouse, "sma", sma, kind="backtest", timeframe="1d", window=(START, END), data_snapshot={})
    return warehouse


@pytest.fixture(scope="module")
def orb() -> Backtest:
    """An intraday strategy on the bundled SPY minute bars of March 2011."""
    history = _history("1m", ["SPY"], datetime(2011, 3, 1, tzinfo=UTC), datetime(2011, 4, 1, tzinfo=UTC))
    return run_backtest(OpeningRangeBreakout(), history, CONFIG)


def test_per_symbol_pnl_sums_to_the_realised_pnl_in_the_warehouse(sma: Backtest, stored: Warehouse):
    table = per_symbol_pnl(annotated_trades(sma.result))
    with stored.read() as con:
        n, pnl, costs = con.execute("select count(*), sum(pnl), sum(costs) from backtest_trades where run_id = 'sma'").fetchone()
        by_symbol = dict(con.execute("select symbol, sum(pnl) from backtest_trades where run_id = 'sma' group by symbol").fetchall())
    assert n == sma.result.trades.height > 100 and table["trades"].sum() == n
    assert math.isclose(float(table["pnl"].sum()), pnl, rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(float(table["costs"].sum()), costs, rel_tol=1e-9)
    assert {s: pytest.approx(v, abs=1e-6) for s, v in by_symbol.items()} == dict(table.select("symbol", "pnl").iter_rows())
    assert table["pnl"].to_list() == sorted(table["pnl"].to_list(), reverse=True)


def test_exit_reasons_count_to_the_trades(sma: Backtest, orb: Backtest):
    for run in (sma, orb):
        breakdown = exit_breakdown(annotated_trades(run.result))
        assert breakdown["trades"].sum() == run.result.trades.height
        assert math.isclose(float(breakdown["pnl"].sum()), float(run.result.trades["pnl"].sum()), abs_tol=1e-6)
    assert dict(exit_breakdown(annotated_trades(sma.result)).select("exit_reason", "trades").iter_rows()) == {
        ExitReason.SIGNAL.value: sma.result.trades.height}
    # The opening-range strategy never exits on its own: the policy's time exit closes every trade.
    orb_trades = annotated_trades(orb.result)
    assert orb_trades.height > 5 and set(orb_trades["exit_reason"]) == {ExitReason.TIME_EXIT.value}
    assert (orb_trades["exit_ts"].dt.convert_time_zone("America/New_York").dt.strftime("%H:%M") == "15:55").all()


def test_stop_exits_are_found_and_fill_under_the_stop(panel: History):
    policy = replace(CONFIG.policy, stop_loss_pct=0.03)
    run = run_backtest(SmaCross(), panel, replace(CONFIG, policy=policy), start=START)
    trades = annotated_trades(run.result)
    stops = trades.filter(pl.col("exit_reason") == ExitReason.STOP.value)
    assert stops.height > 0 and stops.height + trades.filter(pl.col("exit_reason") == ExitReason.SIGNAL.value).height \
        == trades.height
    assert (stops["exit_price"] <= stops["entry_price"] * 0.97 + 1e-6).all()  # a stop never fills better than its price
    assert (stops["pnl"] < 0).all()


def test_exit_reason_from_order_ids():
    assert exit_reason("BRK-B-1254859200000000-exit-2") is ExitReason.SIGNAL
    assert exit_reason("X-1254859200000000-stop") is ExitReason.STOP
    assert exit_reason("X-1254859200000000-stop-3") is ExitReason.STOP
    assert exit_reason("X-99-flat") is ExitReason.TIME_EXIT
    assert exit_reason("X-99-flat", frozenset({99})) is ExitReason.BREAKER
    assert exit_reason("X-20100607-in-lieu") is ExitReason.CASH_IN_LIEU
    assert exit_reason("X-99-enter") is ExitReason.OTHER


def test_worst_drawdowns_match_the_equity_curve(sma: Backtest, stored: Warehouse):
    episodes = drawdowns(sma.result)
    with stored.read() as con:
        rows = con.execute("select ts, equity from backtest_equity where run_id = 'sma' order by ts").fetchall()
    curve = pl.DataFrame(rows, schema={"ts": pl.Datetime("us", "UTC"), "equity": pl.Float64}, orient="row")
    days = daily_equity(replace(sma.result, equity=curve))
    equity = dict(days.iter_rows())
    peak = dict(zip(days["date"], np.maximum.accumulate(np.concatenate([[sma.result.start_cash], days["equity"]]))[1:]))
    assert len(episodes) >= 5 and episodes[0].depth == pytest.approx(sma.metrics["max_drawdown"], abs=1e-12)
    assert max(d.days for d in episodes) == sma.metrics["max_drawdown_duration"]
    assert [d.depth for d in episodes] == sorted(d.depth for d in episodes)
    for d in episodes:
        assert equity[d.valley] / peak[d.valley] - 1 == pytest.approx(d.depth, abs=1e-12)
        assert d.start < d.valley and (d.recovery is None or (d.valley < d.recovery and equity[d.recovery] >= peak[d.valley]))
        assert d.days == ((d.recovery or days["date"][-1]) - d.start).days
        between = [equity[k] for k in equity if d.start < k < (d.recovery or date.max)]
        assert min(between) == equity[d.valley] and max(between) < peak[d.valley]  # under water all along


def test_yearly_returns_compound_to_the_total(sma: Backtest):
    years = yearly_returns(sma.result)
    assert years["year"].to_list() == [2009, 2010]
    assert math.prod(1 + r for r in years["ret"]) == pytest.approx(1 + sma.metrics["total_return"], rel=1e-12)


def test_rolling_stats_match_a_direct_computation(sma: Backtest):
    rolling = rolling_stats(sma.result, 63)
    equity = np.concatenate([[sma.result.start_cash], daily_equity(sma.result)["equity"].to_numpy()])
    returns = equity[1:] / equity[:-1] - 1
    last = returns[-63:]
    assert rolling.height == returns.size - 62
    assert rolling["volatility"][-1] == pytest.approx(last.std(ddof=1) * math.sqrt(252), rel=1e-9)
    assert rolling["sharpe"][-1] == pytest.approx(last.mean() / last.std(ddof=1) * math.sqrt(252), rel=1e-9)


def test_benchmark_buy_and_hold_by_hand():
    x = path_bars([0.01, 0.02, -0.01], symbol="X", price=100.0)
    y = path_bars([0.0, 0.05, 0.0], symbol="Y", price=50.0)
    config = BacktestConfig(cash=10_000.0, costs=Costs(commission=Commission(per_share=0.01, minimum=1.0),
                                                       slippage=Slippage(bps=10)))
    bench = buy_and_hold(pl.concat([x, y]), config)
    assert bench is not None and bench.symbols == ("X", "Y") and "2 names" in bench.label
    # Decided at the first close: 5,000 each -> 50 X at 100, 100 Y at 50; bought at the next
    # open plus 10 bps, $1 minimum commission each; marked at the last closes.
    bought = 50 * 101.0 * 1.001 + 100 * 50.0 * 1.001 + 2 * 1.0
    final = 10_000.0 - bought + 50 * 100 * 1.01 * 1.02 * 0.99 + 100 * 50 * 1.05
    assert bench.equity["equity"][-1] == pytest.approx(final, rel=1e-12)
    assert bench.equity["equity"][0] == pytest.approx(10_000.0)  # still cash at the first close
    spy = buy_and_hold(pl.concat([x, path_bars([0.1, 0.1, 0.1], symbol="SPY")]), config)
    assert spy is not None and spy.symbols == ("SPY",) and spy.label == "buy and hold SPY"


def test_alpha_and_beta_against_the_benchmark(sma: Backtest, orb: Backtest):
    assert sma.benchmark is not None and "equal-weight" in sma.benchmark.label
    assert orb.benchmark is not None and orb.benchmark.label == "buy and hold SPY"
    for run in (sma, orb):
        assert {"alpha", "beta", "benchmark_return"} <= set(run.metrics)
        assert run.metrics["benchmark_return"] == pytest.approx(
            run.benchmark.equity["equity"][-1] / run.result.start_cash - 1)
    assert 0.2 < sma.metrics["beta"] < 1.5  # a long-only book of the same stocks moves with them


def test_intraday_exposure_is_the_time_held(orb: Backtest):
    trades = orb.result.trades
    sessions = set(orb.result.equity["ts"].dt.convert_time_zone("America/New_York").dt.date().to_list())
    assert trades.height > 5 and 0 < orb.metrics["exposure"] < 1
    # Every trade opens and closes inside one regular session: the time held over the sessions' time.
    held = sum((t["exit_ts"] - t["entry_ts"]).total_seconds() for t in trades.iter_rows(named=True))
    total = sum((s.close - s.open).total_seconds() for s in get_calendar().sessions(min(sessions), max(sessions)))
    assert orb.metrics["exposure"] == pytest.approx(held / total, rel=1e-12)


def _fill(symbol: str, side: str, ts: datetime) -> dict:
    return {"order_id": f"{symbol}-{side}", "symbol": symbol, "side": side, "ts": ts, "qty": 10.0, "price": 1.0,
            "commission": 0.0, "fees": 0.0, "slippage": 0.0}


def test_exposure_by_hand():
    at = lambda day, hour, minute=0: datetime(2023, 1, day, hour, minute, tzinfo=UTC)  # noqa: E731
    # Sessions 2023-01-03 and -04: 14:30-21:00 UTC, 6.5 h each. X 15:00-16:00 and Y 15:30-17:00
    # overlap: 2 h held; Z is bought at 20:00 on the 4th and never sold: 1 h more to the close.
    fills = pl.DataFrame([_fill("X", "buy", at(3, 15)), _fill("Y", "buy", at(3, 15, 30)), _fill("X", "sell", at(3, 16)),
                          _fill("Y", "sell", at(3, 17)), _fill("Z", "buy", at(4, 20))], schema=FILLS_SCHEMA)
    end = at(4, 21, 30)
    assert held_periods(fills, end) == [(at(3, 15), at(3, 17)), (at(4, 20), end)]
    assert time_in_market(fills, at(3, 10), end) == pytest.approx(3 / 13)
    assert time_in_market(fills.head(0), at(3, 10), end) == 0.0
    assert time_in_market(fills, at(7, 12), at(8, 12)) is None  # a weekend: no session


def test_signal_groups_have_no_figures_in_their_keys(sma: Backtest, orb: Backtest):
    for run in (sma, orb):
        groups = signal_groups(run.result.decisions)
        keys = groups.select("action", "outcome", "reason").rows()
        assert all(not re.search(r"\d", "".join(key)) for key in keys)
        assert len(set(keys)) == len(keys) and groups["signals"].sum() == run.result.decisions.height
        assert groups.height <= 20
    groups = signal_groups(sma.result.decisions)
    poor = groups.filter(pl.col("outcome") == "ignored: insufficient buying power")
    assert poor.height == 1 and 0 <= poor["min"][0] <= poor["median"][0] <= poor["max"][0]


def test_trade_stats_add_up(sma: Backtest):
    trades = annotated_trades(sma.result)
    held = durations(trades)
    assert held["winners"].trades + held["losers"].trades == trades.height
    assert held["winners"].median == trades.filter(pl.col("pnl") > 0)["duration"].median()
    runs = streaks(trades)
    signs = [p > 0 for p in trades.sort("exit_ts", "symbol")["pnl"]]
    assert 0 < runs.wins <= signs.count(True) and 0 < runs.losses <= signs.count(False)
    assert any(all(signs[i:i + runs.losses]) is False and not any(signs[i:i + runs.losses])
               for i in range(len(signs) - runs.losses + 1))


def test_open_positions_count_intraday_holdings(orb: Backtest):
    days = daily_equity(orb.result)["date"].to_list()
    held = open_positions(orb.result.fills, days)
    traded = set(orb.result.trades["entry_ts"].dt.convert_time_zone("America/New_York").dt.date().to_list())
    assert dict(held.iter_rows()) == {d: int(d in traded) for d in days}


def test_the_demo_tearsheet(sma: Backtest, tmp_path: Path):
    path = render_report(sma.result, run_id="demo", title="sma_cross demo", metrics=sma.metrics,
                         assumptions=sma.assumptions, out_dir=tmp_path, bars=sma.bars, benchmark=sma.benchmark)
    page = path.read_text("utf-8")
    for section in ("Headline metrics", "Equity", "Monthly and yearly returns", "Worst drawdowns", "Exit reasons",
                    "Holding time and streaks", "Open positions", "P&amp;L per symbol", "Top symbols", "Signals",
                    "Trades", "Assumptions"):
        assert f"<h2>{section}</h2>" in page
    csv = pl.read_csv(path.parent / TRADES_CSV)
    assert csv.height == sma.result.trades.height and csv["pnl"].sum() == pytest.approx(float(sma.result.trades["pnl"].sum()))
    assert set(csv["exit_reason"]) == {ExitReason.SIGNAL.value}
    assert sma.benchmark is not None and sma.benchmark.label in page
    assert f'<td class="k">max_drawdown_duration</td><td class="v">{sma.metrics["max_drawdown_duration"]} days</td>' in page
    assert "(4.02)" not in page and "insufficient buying power (" not in page
    assert sum(1 for name in ("price-1.png", "price-2.png", "price-3.png") if (path.parent / name).is_file()) == 3
    assert timedelta(0) < annotated_trades(sma.result)["duration"].min()  # type: ignore[operator]


def test_watchlist_momentum_is_exposed_on_the_days_it_trades(with_watchlist: History):  # noqa: F811
    """Bought at the open and sold at the close: flat at every daily mark, in the market all
    day on each day it trades."""
    run = run_backtest(WatchlistMomentum(), with_watchlist, CONFIG)
    trades = run.result.trades
    assert trades.height > 0
    assert run.metrics["gross_exposure"] == 0  # the daily marks see no position
    traded = trades["entry_ts"].dt.convert_time_zone("America/New_York").dt.date().n_unique()
    sessions = run.result.equity["ts"].dt.convert_time_zone("America/New_York").dt.date().n_unique()
    assert 0.9 * traded / sessions <= run.metrics["exposure"] <= traded / sessions  # most of each such day
