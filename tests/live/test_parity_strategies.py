"""Parity, strategy by strategy, on the bundled data: a run of days replayed session by session
against the simulated broker gives the backtest's orders, fills, prices, commissions and
equity to the cent, under the default execution policy; paper-vs-backtest finds no gap in any
of those sessions, and attributes an injected slippage to slippage."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from typer.testing import CliRunner

from tapeflow.calendar.exchange import NEW_YORK
from tapeflow.cli.main import app
from tapeflow.config import PROJECT_DATA
from tapeflow.live.feed import NotEnoughHistory
from tapeflow.live.launch import replay_session
from tapeflow.model import Outcome, Timeframe
from tapeflow.risk.policy import DEFAULT_POLICY, Sizing
from tapeflow.sources.replay import ReplaySource
from tests.parity_kit import assert_parity, backtest, gaps, replay, store_bundled_bars, store_scanner_watchlist

pytestmark = pytest.mark.slow

runner = CliRunner()
PANEL = ["AAPL", "MSFT", "XOM", "GE", "JPM", "INTC", "CSCO", "PFE"]


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
