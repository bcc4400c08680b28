"""Parity on the bundled SPY minutes: replayed opening_range and news_catalyst sessions give the
backtest's orders, fills and equity to the cent under the default policy and under the
liquidity model, and paper-vs-backtest attributes an injected cost to its cause. (The daily
strategies are in test_parity_strategies.py: the two files run side by side.)"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from typer.testing import CliRunner

from tapeflow.backtest.costs import Costs, Slippage, cost_preset
from tapeflow.cli.main import app
from tapeflow.config import load_settings
from tapeflow.live.paper_gap import measure_gap
from tapeflow.model import Timeframe
from tapeflow.risk.policy import DEFAULT_POLICY
from tests.history_kit import store_scored_headline
from tests.parity_kit import assert_parity, backtest, gaps, replay, store_bundled_bars

pytestmark = pytest.mark.slow

runner = CliRunner()


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
