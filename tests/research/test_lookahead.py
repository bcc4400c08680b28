"""The look-ahead check itself: it catches a strategy that reads the future, passes one that
does not, and never passes a strategy that decided nothing (there was nothing to compare)."""

from __future__ import annotations

import polars as pl

from tapeflow.model import Timeframe
from tapeflow.research.lookahead import check_lookahead
from tapeflow.strategy.base import Param, Strategy, signal_frame
from tapeflow.strategy.history import History
from tests.research_kit import EveryN, path_bars, spike_steps


class Leaky(Strategy):
    """Buys when tomorrow's close is higher: a look-ahead bug on purpose."""

    name = "leaky"
    timeframe = Timeframe.DAY
    params = (Param("qty", int, 1, 1, 10, "shares"),)

    def signals(self, history):
        up = history.bars.with_columns((pl.col("close").shift(-1).over("symbol") > pl.col("close")).alias("_up"))
        return signal_frame(up.filter(pl.col("_up")).select("symbol", pl.col("end_ts").alias("at"),
                                                             pl.lit("enter").alias("action"), pl.lit("peek").alias("reason")))


class Silent(Strategy):
    """Never decides anything: trivially free of look-ahead, and proof of nothing."""

    name = "silent"
    timeframe = Timeframe.DAY
    params = (Param("qty", int, 1, 1, 10, "shares"),)

    def signals(self, history):
        return signal_frame([])


def test_a_leaky_strategy_is_caught(panel):
    report = check_lookahead(Leaky(), panel, n=12, seed=7)
    assert not report.passed
    assert report.mismatches and report.decisions > 0
    assert "LOOK-AHEAD" in report.summary()


def test_a_strategy_that_never_decides_does_not_pass(panel):
    report = check_lookahead(Silent(), panel, n=12, seed=7)
    assert (report.decisions, report.mismatches) == (0, ())
    assert not report.passed
    assert report.summary().startswith("silent: NO DECISIONS on this history") and "proves nothing" in report.summary()


def test_a_clean_strategy_passes_with_its_decisions_counted():
    history = History(bars=path_bars(spike_steps(120)))
    strategy = EveryN(period=10)
    decided = strategy.signals(history).height
    report = check_lookahead(strategy, history, n=12, seed=7)
    assert decided == 25  # 121 bars: entries on bars 0, 10, ..., 120, exits on 1, 11, ..., 111
    assert report.passed and report.decisions == decided
    assert report.summary() == f"every_n: no look-ahead found at {len(report.cuts)} cut points (25 decisions)"
