"""Backtests across corporate actions: positions keep their value through a split, a reverse
split pays its fraction in cash, the bundled GIS split is no loss, and an action changes no
decision taken before it was in effect and knowable."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest

from strategies.sma_cross import SmaCross
from tapeflow.backtest.adjust import adjusted_signals, price_actions, view, view_at
from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.costs import Commission, Costs
from tapeflow.backtest.run import run_backtest
from tapeflow.config import PROJECT_DATA
from tapeflow.model import AdjustMode, Timeframe
from tapeflow.research.lookahead import check_lookahead
from tapeflow.sources.replay import ReplaySource
from tapeflow.strategy.base import Param, Strategy, signal_frame
from tapeflow.strategy.history import History
from tests.actions_kit import Scripted, action, actions_frame, bundled_actions, plant_split
from tests.research_kit import ALL, path_bars

FREE = BacktestConfig(costs=Costs())


def _flat(price: float, n: int = 12) -> pl.DataFrame:
    return path_bars([0.0] * (n - 1), start=date(2023, 1, 3), price=price)


def _session(bars: pl.DataFrame, i: int) -> date:
    return bars["ts"].dt.convert_time_zone("America/New_York").dt.date()[i]


def test_a_position_held_across_a_two_for_one_split_keeps_its_value():
    raw = _flat(100.0)
    ex = _session(raw, 5)
    bars = plant_split(raw, "X", ex, 2.0)
    history = History(bars=bars, actions=actions_frame([action("X", "split", ex, ratio=2.0)]))
    run = run_backtest(Scripted(qty=10, enter=1, exit=9), history, FREE)
    fills = run.result.fills
    # Shares and price change together at the split; the fills say what was traded.
    assert fills.select("side", "qty", "price").rows() == [("buy", 10.0, 100.0), ("sell", 20.0, 50.0)]
    assert run.result.equity["equity"].unique().to_list() == [100_000.0]  # no step at the split
    assert run.result.trades.select("qty", "entry_price", "exit_price", "pnl").rows() == [(20.0, 50.0, 50.0, 0.0)]
    # Unadjusted, the same position "loses" half its value on the ex-date.
    raw_run = run_backtest(Scripted(qty=10, enter=1, exit=9), history, BacktestConfig(costs=Costs(), adjust=AdjustMode.RAW))
    assert raw_run.result.trades["pnl"].to_list() == [-500.0]


def test_a_reverse_split_pays_the_fraction_of_a_share_in_cash_and_commissions_count_traded_shares():
    raw = _flat(1.5)
    ex = _session(raw, 5)
    bars = plant_split(raw, "X", ex, 0.1)  # 1-for-10: 1.50 becomes 15.00
    history = History(bars=bars, actions=actions_frame([action("X", "reverse_split", ex, ratio=0.1)]))
    config = BacktestConfig(costs=Costs(commission=Commission(per_share=0.01)))
    run = run_backtest(Scripted(qty=15, enter=1, exit=9), history, config)
    fills = run.result.fills
    assert fills.select("order_id", "side", "qty", "price", "commission").rows() == [
        (fills["order_id"][0], "buy", 15.0, 1.5, pytest.approx(0.15)),
        (f"X-{ex:%Y%m%d}-in-lieu", "sell", pytest.approx(0.5), pytest.approx(15.0), 0.0),  # 1.5 shares: 0.5 in cash
        (fills["order_id"][2], "sell", pytest.approx(1.0), pytest.approx(15.0), pytest.approx(0.01)),  # 1 share, not 10 units
    ]
    assert run.result.final_equity == pytest.approx(100_000.0 - 0.15 - 0.01)


def test_a_distribution_is_reinvested_and_the_position_keeps_its_value():
    raw = _flat(40.0)
    ex = _session(raw, 4)
    after = pl.col("ts") >= datetime.combine(ex, datetime.min.time(), tzinfo=UTC)
    bars = raw.with_columns(*(pl.when(after).then(pl.col(c) * 0.25).otherwise(pl.col(c)).alias(c)
                              for c in ("open", "high", "low", "close")))  # $30 of $40 paid out
    history = History(bars=bars, actions=actions_frame([action("X", "special_distribution", ex, amount=30.0)]))
    run = run_backtest(Scripted(qty=100, enter=1, exit=9), history, FREE)
    assert run.result.fills.select("side", "qty").rows() == [("buy", 100.0), ("sell", pytest.approx(400.0))]
    assert run.result.final_equity == pytest.approx(100_000.0)
    # Left out of the mode, it is a fall: raw mode books the $3,000 "loss".
    raw_run = run_backtest(Scripted(qty=100, enter=1, exit=9), history, BacktestConfig(costs=Costs(), adjust=AdjustMode.RAW))
    assert raw_run.result.final_equity == pytest.approx(97_000.0)


@pytest.fixture(scope="module")
def gis() -> History:
    bars = ReplaySource(PROJECT_DATA).bars(["GIS"], "1d", ALL).filter(pl.col("problem").is_null())
    return History(bars=bars, actions=bundled_actions(["GIS"]))


def test_the_gis_trade_across_its_split_is_priced_on_adjusted_data(gis):
    strategy = SmaCross()
    raw = run_backtest(strategy, gis, BacktestConfig(costs=Costs(), adjust=AdjustMode.RAW)).result
    # The bug this guards against: unadjusted, the split reads as a ~48% loss.
    assert raw.trades["return_pct"].min() < -40
    run = run_backtest(strategy, gis, FREE)
    trades = run.result.trades
    assert trades["return_pct"].abs().max() < 20, trades
    split = datetime(2010, 6, 9, 4, tzinfo=UTC)
    across = trades.filter((pl.col("entry_ts") < split) & (pl.col("exit_ts") > split))
    assert across.height == 1
    entry_ts, exit_ts = across["entry_ts"][0], across["exit_ts"][0]
    bought = run.result.fills.filter(pl.col("ts") == entry_ts)
    sold = run.result.fills.filter(pl.col("ts") == exit_ts)
    # Bought before the split at the traded price, sold after it: twice the shares at half the price.
    assert bought["price"][0] > 60 and sold["price"][0] < 45
    assert sold["qty"][0] == 2 * bought["qty"][0]
    assert across["qty"][0] == sold["qty"][0] and across["entry_price"][0] == pytest.approx(bought["price"][0] / 2)
    assert any("GIS 2010-06-09 split 2-for-1" in line for line in run.assumptions["corporate actions in the window"])


def test_an_action_changes_no_decision_taken_before_it_was_knowable(gis):
    """Cut the data before the split was announced: every earlier decision is the same."""
    ex = date(2010, 6, 9)
    announced = datetime(2010, 6, 15, 20, tzinfo=UTC)  # recorded late: known a week after its ex-date
    late = History(bars=gis.bars, actions=actions_frame([action("GIS", "split", ex, ratio=2.0, knowable_at=announced)]))
    strategy = SmaCross(fast=3, slow=8)
    with_action = adjusted_signals(strategy, late, price_actions(late, AdjustMode.SPLITS))
    without = strategy.signals(History(bars=gis.bars))
    before = pl.col("at") < announced
    assert with_action.filter(before).equals(without.filter(before))
    # ...and the action does change what comes after (or this test would prove nothing).
    assert not with_action.filter(~before).equals(without.filter(~before))
    # The view at a moment before the announcement is the raw data cut there.
    seen = view_at(late, AdjustMode.SPLITS, datetime(2010, 6, 14, 21, tzinfo=UTC)).bars
    assert seen["close"].to_list() == gis.until(datetime(2010, 6, 14, 21, tzinfo=UTC)).bars["close"].to_list()
    after = view_at(late, AdjustMode.SPLITS, announced).bars
    assert after.filter(pl.col("ts") < datetime(2010, 6, 9, tzinfo=UTC))["close"][-1] == pytest.approx(75.14 / 2)


@pytest.mark.parametrize("mode", [AdjustMode.SPLITS, AdjustMode.TOTAL_RETURN])
def test_the_lookahead_check_covers_adjusted_runs(gis, mode):
    strategy = SmaCross(fast=3, slow=8)
    report = check_lookahead(strategy, gis, n=25, seed=11, adjust=mode)
    assert report.passed, report.summary()


class Below(Strategy):
    """Test-only: holds while the close is under a price level (a rule that is not scale-free)."""

    name = "below"
    timeframe = Timeframe.DAY
    params = (Param("level", float, 36.5, 1.0, 1000.0, "price"),)

    def prices(self, history: History) -> History:
        return history

    def signals(self, history: History) -> pl.DataFrame:
        bars = self.prices(history).bars.with_columns((pl.col("close") < self.p["level"]).alias("_in"))
        changed = bars.filter(pl.col("_in") != pl.col("_in").shift(1).over("symbol").fill_null(False))
        return signal_frame(changed.select("symbol", pl.col("end_ts").alias("at"),
                                           pl.when("_in").then(pl.lit("enter")).otherwise(pl.lit("exit")).alias("action"),
                                           pl.lit(10.0).alias("qty"), pl.lit("level").alias("reason")))


class Hindsight(Below):
    """Adjusts with every action its history holds, as if each had been in effect all along."""

    name = "hindsight"

    def prices(self, history: History) -> History:
        return view(history, price_actions(history, AdjustMode.SPLITS).applied)


def test_the_lookahead_check_catches_an_adjustment_made_with_hindsight(gis):
    # GIS traded at 55-75 before its split and 35-38 after: only adjusted prices cross 36.5.
    report = check_lookahead(Below(), gis, n=25, seed=11, adjust=AdjustMode.SPLITS)
    assert report.passed, report.summary()
    decided = adjusted_signals(Below(), gis, price_actions(gis, AdjustMode.SPLITS))
    assert decided["at"].min() >= datetime(2010, 6, 9, tzinfo=UTC)  # nothing before the split was known
    report = check_lookahead(Hindsight(), gis, n=25, seed=11)
    assert not report.passed, report.summary()
