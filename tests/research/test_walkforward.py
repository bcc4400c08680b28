"""Walk-forward: fold windows, the warm-up, no test-window data in the choice (the poison
test), stitching, and known answers on a synthetic path; then the bundled S&P 500 panel."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from strategies.sma_cross import SmaCross
from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.metrics import compute_metrics
from tapeflow.calendar.exchange import NEW_YORK, get_calendar
from tapeflow.model import Timeframe
from tapeflow.progress import Step, listening
from tapeflow.research.walkforward import (
    default_grid,
    folds,
    run_window,
    sessions_of,
    walk_forward,
)
from tapeflow.strategy.base import Param, Strategy, signal_frame
from tapeflow.strategy.history import History
from tests.research_kit import ALL_IN, EveryN, path_bars, spike_steps


class Peeking(Strategy):
    """Test-only and leaky on purpose: buys when tomorrow's close is `edge` higher."""

    name = "peeking"
    timeframe = Timeframe.DAY
    params = (Param("edge", float, 0.0, 0.0, 1.0, "minimum peeked rise"),)

    def signals(self, history: History) -> pl.DataFrame:
        bars = history.bars.with_columns((pl.col("close").shift(-1).over("symbol") / pl.col("close") - 1).alias("_up"))
        enter = bars.filter(pl.col("_up") > self.p["edge"]).select("symbol", pl.col("end_ts").alias("at"), pl.lit("enter").alias("action"))
        exit_ = bars.filter(pl.col("_up") <= self.p["edge"]).select("symbol", pl.col("end_ts").alias("at"), pl.lit("exit").alias("action"))
        return signal_frame(pl.concat([enter, exit_]))


# ---------------------------------------------------------------------------------------------
# folds


def test_rolling_folds_tile_the_sessions():
    days = [s.date for s in get_calendar().sessions(date(2024, 1, 2), date(2024, 12, 31))]
    fs = folds(days, train=100, test=30)
    assert len(fs) == (len(days) - 100) // 30
    for k, f in enumerate(fs):
        assert f.index == k
        assert f.train_end == f.test_start
        assert f.train_start == _midnight(days[30 * k])
        assert f.test_start == _midnight(days[30 * k + 100])
        assert f.test_end == _midnight(days[30 * k + 130])
    for a, b in zip(fs, fs[1:]):
        assert a.test_end == b.test_start  # step defaults to test: the test windows tile


def test_anchored_folds_train_from_the_start_and_the_last_window_ends_after_its_session():
    days = [s.date for s in get_calendar().sessions(date(2024, 1, 2), date(2024, 3, 28))]
    fs = folds(days, train=20, test=10, anchored=True)
    assert {f.train_start for f in fs} == {_midnight(days[0])}
    assert [f.train_end for f in fs] == [_midnight(days[20 + 10 * k]) for k in range(len(fs))]
    whole = folds(days, train=len(days) - 10, test=10)
    assert whole[-1].test_end == _midnight(days[-1] + timedelta(days=1))


def test_folds_on_bar_instants_and_with_a_step():
    starts = [datetime(2024, 1, 2, 14, 30, tzinfo=UTC) + timedelta(minutes=i) for i in range(50)]
    fs = folds(starts, train=20, test=10, step=5)
    assert len(fs) == 5  # first points 0, 5, 10, 15, 20
    assert fs[1].train_start == starts[5] and fs[1].test_start == starts[25]
    assert fs[-1].test_end == starts[-1] + timedelta(minutes=1)  # last instant + the median spacing


def test_folds_refuse_nonsense():
    days = [date(2024, 1, 2) + timedelta(days=i) for i in range(10)]
    with pytest.raises(ValueError, match="cannot hold one fold"):
        folds(days, train=8, test=3)
    with pytest.raises(ValueError, match="train must be"):
        folds(days, train=0, test=3)
    with pytest.raises(ValueError, match="timezone-aware"):
        folds([datetime(2024, 1, 2)], train=1, test=1)
    with pytest.raises(ValueError, match="all dates"):
        folds([date(2024, 1, 2), datetime(2024, 1, 3, tzinfo=UTC)], train=1, test=1)


def test_each_bar_falls_in_exactly_one_window(panel):
    fs = folds(sessions_of(panel), train=120, test=40)
    ts = panel.bars["ts"]
    per_session = panel.bars["symbol"].n_unique()
    for f in fs:
        assert ((ts >= f.train_start) & (ts < f.train_end)).sum() == 120 * per_session
        assert ((ts >= f.test_start) & (ts < f.test_end)).sum() == 40 * per_session


# ---------------------------------------------------------------------------------------------
# grids and one window


def test_default_grid_is_default_and_plus_minus_20pct_within_the_cap():
    grid, notes = default_grid(SmaCross)
    # qty is a sizing knob (not tunable): a search would only ever scale it up.
    assert grid == {"fast": [10, 8, 12], "slow": [30, 24, 36]}
    assert notes == []
    small, held = default_grid(SmaCross, max_combinations=3)
    assert small == {"fast": [10, 8, 12], "slow": [30]}
    assert held and "slow held at its default" in held[0]


def test_a_window_uses_the_warm_up_but_trades_only_inside(panel):
    fs = folds(sessions_of(panel), train=120, test=40)
    f = fs[1]
    run = run_window(SmaCross(), panel, f.test_start, f.test_end, BacktestConfig())
    # The warm-up: the decisions are exactly the full-history ones inside the window, so an
    # SMA(30) signals from the window's first days on, on closes from before the window.
    full = SmaCross().signals(panel).filter((pl.col("at") >= f.test_start) & (pl.col("at") < f.test_end))
    assert run.decisions.drop("outcome").equals(full)
    first_day = panel.bars.filter(pl.col("ts") >= f.test_start)["end_ts"].min()
    assert run.decisions["at"].min() < first_day + timedelta(days=10)
    assert run.fills["ts"].min() >= f.test_start and run.fills["ts"].max() < f.test_end
    assert run.equity["ts"].min() == first_day and run.equity["equity"][0] == BacktestConfig().cash
    assert run.equity.height == 40
    last_day = run.equity["ts"].max()
    assert set(run.decisions.filter(pl.col("at") == last_day)["outcome"]) <= {"placed: never filled", "ignored: nothing to exit",
                                                                             "ignored: already in a position or an order is working"}


# ---------------------------------------------------------------------------------------------
# no test-window data reaches the choice


@pytest.mark.parametrize("strategy_cls,grid", [(SmaCross, None), (Peeking, {"edge": [0.0, 0.01, 0.02, 0.05]})])
def test_poisoning_everything_after_train_end_leaves_the_choice_unchanged(panel, strategy_cls, grid):
    fold = folds(sessions_of(panel), train=120, test=40)[1]
    after = pl.col("ts") >= fold.train_end
    poisoned = History(bars=panel.bars.with_columns(
        pl.when(after).then(pl.col(c) * 3).otherwise(pl.col(c)).alias(c) for c in ("open", "high", "low", "close")))
    assert poisoned.bars.filter(after).height > 0
    clean_wf = walk_forward(strategy_cls, panel, grid, folds=[fold])
    dirty_wf = walk_forward(strategy_cls, poisoned, grid, folds=[fold])
    (clean,), (dirty,) = clean_wf.folds, dirty_wf.folds
    assert dirty.params == clean.params
    assert dirty.in_sample.equals(clean.in_sample)  # every candidate's in-sample score, exactly
    assert dirty.in_sample_objective == clean.in_sample_objective
    # The poison did reach the test window...
    assert dirty.out_of_sample != clean.out_of_sample
    if strategy_cls is Peeking:
        # ... and would have reached a choice made on the whole history: a peeking strategy
        # scored on the uncut history sees the x3 jump at the train window's end.
        def naive_entries(history):
            signals = Peeking(edge=0.5).signals(history).filter((pl.col("at") >= fold.train_start) & (pl.col("at") < fold.train_end))
            return signals.filter(pl.col("action") == "enter").height
        assert naive_entries(panel) == 0 and naive_entries(poisoned) == panel.bars["symbol"].n_unique()


# ---------------------------------------------------------------------------------------------
# known answers on a synthetic path


def test_the_rhythm_is_found_and_holds_out_of_sample():
    history = History(bars=path_bars(spike_steps(200)))
    fs = folds(sessions_of(history), train=60, test=30)
    wf = walk_forward(EveryN, history, {"period": [8, 9, 10, 11, 12]}, folds=fs, config=ALL_IN)
    assert [f.params for f in wf.folds] == [{"period": 10}] * len(fs)
    for f in wf.folds:
        assert f.out_of_sample["total_return"] > 0 and f.out_of_sample["sharpe"] > 2
    assert wf.metrics["total_return"] > 0.2


def test_a_regime_change_is_followed_fold_by_fold_and_ties_keep_grid_order():
    # Period 10 until step 120, period 12 after: folds whose train window lies after the
    # switch pick 12.
    history = History(bars=path_bars(spike_steps(240, switch=120, later=12)))
    fs = folds(sessions_of(history), train=60, test=30)
    wf = walk_forward(EveryN, history, {"period": [10, 12]}, folds=fs, config=ALL_IN)
    chosen = [f.params["period"] for f in wf.folds]
    assert chosen[0] == 10 and chosen[-1] == 12
    # A strategy that never trades scores None everywhere: the first combination wins.
    flat = History(bars=path_bars([0.0] * 100))
    tie = walk_forward(EveryN, flat, {"period": [7, 5, 9]}, folds=folds(sessions_of(flat), 50, 20), config=ALL_IN)
    assert [f.params for f in tie.folds] == [{"period": 7}] * len(tie.folds)
    assert tie.folds[0].in_sample["in_sample_sharpe"].null_count() == 3


def test_each_fold_is_reported_as_it_is_done():
    history = History(bars=path_bars(spike_steps(120)))
    fs = folds(sessions_of(history), train=30, test=30)
    steps: list[Step] = []
    with listening(steps.append):
        wf = walk_forward(EveryN, history, {"period": [10]}, folds=fs, config=ALL_IN)
    told = [s for s in steps if s.work == "walk-forward every_n"]
    assert [(s.done, s.total, s.finished) for s in told] == (
        [(k, len(fs), False) for k in range(len(fs) + 1)] + [(len(fs), len(fs), True)])
    assert [s.detail for s in told[1:-1]] == [f.line("sharpe") for f in wf.folds]
    assert told[1].detail.startswith("fold 0: sharpe ") and told[1].detail.endswith(" out (period=10)")


def test_stitching_compounds_the_folds_returns():
    history = History(bars=path_bars(spike_steps(200)))
    wf = walk_forward(EveryN, history, {"period": [9, 10]}, folds=folds(sessions_of(history), 60, 30), config=ALL_IN)
    growth = math.prod(1 + f.out_of_sample["total_return"] for f in wf.folds)
    assert wf.metrics["total_return"] == pytest.approx(growth - 1, rel=1e-12)
    assert wf.equity["ts"].is_sorted() and wf.equity.height == sum(f.result.equity.height for f in wf.folds)
    assert wf.metrics["trades"] == sum(f.out_of_sample["trades"] for f in wf.folds)
    summary = wf.summary()
    assert summary.columns[:6] == ["fold", "train_start", "train_end", "test_start", "test_end", "params"]
    assert "in_sample_sharpe" in summary.columns and "oos_sharpe" in summary.columns


def test_walk_forward_refuses_overlapping_tests_big_grids_and_skips_refused_combinations(panel):
    fs = folds(sessions_of(panel), train=120, test=40, step=20)
    with pytest.raises(ValueError, match="overlap"):
        walk_forward(SmaCross, panel, folds=fs)
    fs = folds(sessions_of(panel), train=120, test=40)
    with pytest.raises(ValueError, match="more than max_combinations"):
        walk_forward(SmaCross, panel, {"fast": list(range(2, 12)), "slow": list(range(20, 30))}, folds=fs)
    with pytest.raises(ValueError, match="no parameter"):
        walk_forward(SmaCross, panel, {"speed": [1]}, folds=fs)
    wf = walk_forward(SmaCross, panel, {"fast": [10, 30], "slow": [20, 30]}, folds=fs[:1])
    assert wf.notes == ("fast=30, slow=20 refused by the strategy: fast (30) must be shorter than slow (20)",
                        "fast=30, slow=30 refused by the strategy: fast (30) must be shorter than slow (30)")
    assert wf.folds[0].in_sample.select("fast", "slow").rows() == [(10, 20), (10, 30)]
    with pytest.raises(ValueError, match="refused every combination"):
        walk_forward(SmaCross, panel, {"fast": [30], "slow": [20]}, folds=fs[:1])


# ---------------------------------------------------------------------------------------------
# the bundled data


def test_walk_forward_on_the_bundled_panel(panel):
    fs = folds(sessions_of(panel), train=120, test=40)
    wf = walk_forward(SmaCross, panel, folds=fs, config=BacktestConfig())
    assert len(wf.folds) == 3
    for f in wf.folds:
        assert f.in_sample.height == 9 and sorted(f.in_sample["rank"]) == list(range(1, 10))
        best = f.in_sample.filter(pl.col("rank") == 1)
        assert best.select("fast", "slow").row(0, named=True) == f.params
        assert best["in_sample_sharpe"][0] == f.in_sample_objective == f.in_sample["in_sample_sharpe"].max()
        assert f.out_of_sample == compute_metrics(f.result)
    assert wf.equity.head(40).equals(wf.folds[0].result.equity)  # the first fold is not rescaled
    assert wf.equity["ts"].min() > fs[0].test_start and wf.equity["ts"].max() < fs[-1].test_end
    assert wf.metrics["final_equity"] == pytest.approx(1e5 * (1 + wf.metrics["total_return"]))


def _midnight(d: date) -> datetime:
    return datetime.combine(d, datetime.min.time(), NEW_YORK).astimezone(UTC)
