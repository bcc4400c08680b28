"""Parity, strategy by strategy, on the bundled data: a run of days replayed session by session
against the simulated broker gives the backtest's orders, fills, prices, commissions and
equity to the cent, under the default execution policy; paper-vs-backtest finds no gap in any
of those sessions, and attributes an injected slippage to slippage."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from typer.testing import CliRunner

from tapeflow.backtest.costs import Costs, Slippage, cost_preset
from tapeflow.calendar.exchange import NEW_YORK
from tapeflow.cli.main import app
from tapeflow.config import PROJECT_DATA, load_settings
from tapeflow.live.feed import NotEnoughHistory
from tapeflow.live.launch import replay_session
from tapeflow.live.paper_gap import measure_gap
from tapeflow.model import Outcome, Timeframe
from tapeflow.risk.policy import DEFAULT_POLICY, Sizing
from tapeflow.sources.replay import ReplaySource
from tests.history_kit import store_scored_headline
from tests.parity_kit import backtest, gaps, replay, store_bundled_bars, store_scanner_watchlist

pytestmark = pytest.mark.slow

runner = CliRunner()
PANEL = ["AAPL", "MSFT", "XOM", "GE", "JPM", "INTC", "CSCO", "PFE"]


def assert_parity(replayed, expected) -> None:
    assert {r.status for r in replayed.reports} <= {"finished", "killed"}
    assert all(r.reconciled for r in replayed.reports)
    assert replayed.ledger.orders == expected.orders
    assert replayed.ledger.equity == pytest.approx(expected.equity, abs=0.005)  # to the cent


def test_opening_range_on_spy_minutes_a_stop_day_and_a_time_exit_day(settings, warehouse):
    store_bundled_bars(warehouse, Timeframe.MINUTE, ["SPY"], date(2011, 3, 1), date(2011, 3, 4))
    policy = replace(DEFAULT_POLICY, stop_loss_pct=0.005)
    first, last = date(2011, 3, 2), date(2011, 3, 3)
    replayed = replay(settings, warehouse, "opening_range", {}, first, last, policy)
    expected = backtest(settings, warehouse, "opening_range", {}, first, last, policy)
    assert_parity(replayed, expected)
    sides = [(o[1], o[2][0][0].strftime("%m-%d %H:%M")) for o in expected.orders]
    # 03-02: in at 09:53, stopped out at 11:43; 03-03: in at 09:46, out at the time exit (15:55).
    assert sorted(sides) == [("buy", "03-02 09:53"), ("buy", "03-03 09:46"), ("sell", "03-02 11:43"),
                             ("sell", "03-03 15:55")]
    assert gaps(replayed, settings) == [pytest.approx(0.0, abs=0.005)] * 2
    with replayed.warehouse.read() as con:  # each session states the rules it ran with
        rules = [json.loads(r[0]) for r in con.execute("SELECT rules FROM trading_sessions").fetchall()]
    assert [(r["stop_loss_pct"], r["max_position_pct"], r["daily_loss_limit_pct"], r["exit_before_close_minutes"])
            for r in rules] == [(0.005, 0.25, 0.02, 5.0)] * 2

    # The same paper fills against a backtest with 10 bps of slippage: the gap is slippage's.
    worse = Costs(commission=cost_preset(settings.sim_costs).commission, slippage=Slippage(bps=10))
    report = measure_gap(replayed.warehouse, replayed.reports[0].session_id, worse)
    assert report.gap > 0 and report.totals["slippage"] == pytest.approx(report.gap)
    assert report.totals["missed_fill"] == report.totals["timing"] == 0.0
    # ... and against twice the commission: the gap is commission's.
    dearer = Costs(commission=replace(cost_preset(settings.sim_costs).commission, per_share=0.01, minimum=2.0))
    report = measure_gap(replayed.warehouse, replayed.reports[0].session_id, dearer)
    assert report.gap > 0 and report.totals["commission"] == pytest.approx(report.gap)


def test_opening_range_on_spy_under_the_liquidity_model(settings, warehouse):
    """retail-default on both sides: the simulated broker measures SPY's liquidity in the replay's
    warehouse, the backtest in the main one; the same fills and P&L, a few bps a side."""
    store_bundled_bars(warehouse, Timeframe.MINUTE, ["SPY"], date(2011, 1, 3), date(2011, 3, 4))  # January: history
    priced = settings.model_copy(update={"sim_costs": "retail-default"})
    day = date(2011, 3, 3)
    replayed = replay(priced, warehouse, "opening_range", {}, day, day, DEFAULT_POLICY)
    expected = backtest(priced, warehouse, "opening_range", {}, day, day, DEFAULT_POLICY)
    assert_parity(replayed, expected)
    assert [o[1] for o in expected.orders] == ["buy", "sell"]
    assert gaps(replayed, priced) == [pytest.approx(0.0, abs=0.005)]
    with warehouse.read() as con:  # each side paid 1 bp and the tick rounding, not a thin name's percent
        for _, side, fills, _ in expected.orders:
            for at, _, price in fills:
                (opened,) = con.execute("SELECT open FROM bars WHERE symbol = 'SPY' AND timeframe = '1m' AND ts = ?",
                                        [at]).fetchone()
                assert 1.0 <= (price - opened) * (1 if side == "buy" else -1) / opened * 1e4 <= 5.0


def test_sma_cross_on_the_panel_competing_for_slots_through_stops_and_a_kill_switch(settings, warehouse):
    store_bundled_bars(warehouse, Timeframe.DAY, PANEL, date(2009, 8, 21), date(2010, 8, 20))
    params = {"fast": 3, "slow": 8, "qty": 0}  # sized by the policy: eight names for three slots
    policy = replace(DEFAULT_POLICY, sizing=Sizing(fraction=0.3, max_positions=3), stop_loss_pct=0.03)
    first, last = date(2010, 5, 3), date(2010, 5, 20)  # the May 2010 sell-off
    kill = datetime(2010, 5, 13, 9, 45, tzinfo=NEW_YORK)
    replayed = replay(settings, warehouse, "sma_cross", params, first, last, policy, cycle_s=900, kill_at=kill)
    expected = backtest(settings, warehouse, "sma_cross", params, first, last, policy, symbols=PANEL, kill_at=kill)
    assert_parity(replayed, expected)
    with replayed.warehouse.read() as con:
        outcomes = [r[0] for r in con.execute("SELECT outcome FROM session_decisions").fetchall()]
        stops = con.execute("SELECT count(*) FROM orders WHERE order_type = 'stop' AND filled_qty > 0").fetchone()[0]
    assert any(o.startswith(Outcome.SIZED_TO_ZERO) for o in outcomes)  # the three slots were full
    assert any(o.startswith(Outcome.ENTRIES_STOPPED) for o in outcomes)  # the kill switch, from 05-13 on
    assert stops >= 2
    assert gaps(replayed, settings) == [pytest.approx(0.0, abs=0.005)] * len(replayed.reports)


def test_watchlist_momentum_on_scanner_snapshots(settings, warehouse):
    universe = ReplaySource(PROJECT_DATA).symbols(Timeframe.DAY)[::12]  # 44 names: the simulator marks each every day
    store_bundled_bars(warehouse, Timeframe.DAY, universe, date(2010, 4, 1), date(2010, 6, 30))
    store_scanner_watchlist(warehouse, date(2010, 6, 1), date(2010, 6, 4))
    params = {"min_score": 0.0, "max_names": 3}
    first, last = date(2010, 6, 1), date(2010, 6, 4)
    replayed = replay(settings, warehouse, "watchlist_momentum", params, first, last, DEFAULT_POLICY, cycle_s=900)
    expected = backtest(settings, warehouse, "watchlist_momentum", params, first, last, DEFAULT_POLICY)
    assert_parity(replayed, expected)
    assert len(expected.orders) == 2 * 3 * 4  # three names in at the open, out at the close, four days
    assert gaps(replayed, settings) == [pytest.approx(0.0, abs=0.005)] * 4


def test_news_catalyst_on_spy_with_stored_headlines(warehouse, monkeypatch):
    monkeypatch.setenv("TAPEFLOW_SENTIMENT_MODEL", "test-model")
    settings = load_settings()
    store_bundled_bars(warehouse, Timeframe.MINUTE, ["SPY"], date(2011, 3, 1), date(2011, 3, 4))
    ten = datetime(2011, 3, 3, 15, 0, 10, tzinfo=UTC)  # 10:00:10 New York
    for n, (published, catalyst, score) in enumerate([(ten, "contract", 0.9), (ten + timedelta(hours=2), "fda", 0.95),
                                                       (ten + timedelta(hours=-2), "earnings", 0.8)]):
        store_scored_headline(warehouse, f"h{n}", published, published + timedelta(seconds=20), catalyst, "positive",
                              score, "test-model")
    first = last = date(2011, 3, 3)
    params = {"hold_minutes": 45}
    replayed = replay(settings, warehouse, "news_catalyst", params, first, last, DEFAULT_POLICY)
    expected = backtest(settings, warehouse, "news_catalyst", params, first, last, DEFAULT_POLICY)
    assert_parity(replayed, expected)
    # The contract headline only: the earnings one came before the open, the fda one after the
    # session's entry (one a symbol a session).
    assert [(o[1], o[2][0][0].strftime("%H:%M")) for o in expected.orders] == [("buy", "10:01"), ("sell", "10:46")]
    assert gaps(replayed, settings) == [pytest.approx(0.0, abs=0.005)]

    # `tapeflow paper-gap` finds a replayed session in its replay file and prints the zero gap.
    result = runner.invoke(app, ["paper-gap", replayed.reports[-1].session_id])
    assert result.exit_code == 0, result.output
    assert re.search(r"│ gap\s+│ 0\s+│", result.output), result.output


WARM = ["BIIB", "CNP", "TAP", "PCG", "PEP", "SIAL", "CL", "GNW", "UPS", "CBS", "COP", "PLL", "C", "CHRW", "TMO"]


def test_a_200_session_warm_up_replays_like_the_backtest_and_too_little_history_is_refused(settings, warehouse):
    store_bundled_bars(warehouse, Timeframe.DAY, WARM, date(2009, 8, 21), date(2010, 8, 20))
    params = {"fast": 20, "slow": 200, "qty": 0}  # each decision needs 200 closes before its own
    first, last = date(2010, 7, 26), date(2010, 7, 30)
    replayed = replay(settings, warehouse, "sma_cross", params, first, last, DEFAULT_POLICY, cycle_s=900)
    expected = backtest(settings, warehouse, "sma_cross", params, first, last, DEFAULT_POLICY, symbols=WARM)
    assert_parity(replayed, expected)
    assert len([o for o in expected.orders if o[1] == "buy"]) >= 5  # the late-July golden crosses
    with replayed.warehouse.read() as con:  # the replay holds the warm-up, not the whole panel
        held = dict(con.execute("SELECT symbol, count(*) FROM bars WHERE ts < ? GROUP BY symbol",
                                [datetime(2010, 7, 26, tzinfo=UTC)]).fetchall())
        (days,) = con.execute("SELECT count(DISTINCT ts) FROM bars WHERE ts < ?", [datetime(2010, 7, 26, tzinfo=UTC)]).fetchone()
    assert min(held.values()) >= 201 and days < 210  # each name's 201 bars (one with a quarantined bar reaches back further)

    # Before 2010-03-01 the panel holds 124 sessions: the replay and the command refuse.
    with pytest.raises(NotEnoughHistory, match=r"needs 201 1d bars of warm-up before it; the warehouse has 124: "
                                               r"ingest 1d bars from 2009-0\d-\d\d"):
        replay_session(settings, warehouse, "sma_cross", date(2010, 3, 1), params)
    result = runner.invoke(app, ["trade", "sma_cross", "-p", "slow=200", "-p", "fast=20", "--replay-day", "2010-03-01"])
    assert result.exit_code == 2 and "needs 201 1d bars of warm-up" in result.output and "Traceback" not in result.output
