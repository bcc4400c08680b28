"""Opening-range breakout on minute bars: buy when price closes above the first minutes'
high, sell near the close.

Rules, per symbol and session:
- the opening range is the high and low of the first `range_minutes` regular-session bars;
- after the range is complete, the first bar that closes above the range high is an entry
  (market order, filled at the next bar's open), at most one per session;
- the position is sold with a market order decided at the end of the bar that ends
  `exit_minutes_before_close` minutes before the regular close (half days included);
- extended-hours bars are ignored; an optional stop loss is a risk rule of the backtest.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from tapeflow.model import Action, Timeframe
from tapeflow.strategy.base import Param, Strategy, signal_frame
from tapeflow.strategy.history import History
from tapeflow.strategy.regular_hours import regular_session_bars


class OpeningRangeBreakout(Strategy):
    name = "opening_range"
    timeframe = Timeframe.MINUTE
    per_symbol = True
    params = (
        Param("range_minutes", int, 15, 1, 120, "minutes of the regular session that make the range"),
        Param("exit_minutes_before_close", int, 5, 1, 60, "exit this long before the close"),
    )

    def signals(self, history: History) -> pl.DataFrame:
        bars = history.bars
        if bars.is_empty():
            return signal_frame([])
        regular = regular_session_bars(bars)
        range_end = pl.col("_open") + pl.duration(minutes=int(self.p["range_minutes"]))
        exit_at = pl.col("_close") - pl.duration(minutes=int(self.p["exit_minutes_before_close"]))
        marked = regular.with_columns(
            pl.col("high").filter(pl.col("end_ts") <= range_end).max().over("symbol", "_open").alias("_range_high"),
            (pl.col("end_ts").filter(pl.col("end_ts") <= range_end).max().over("symbol", "_open") == range_end).alias("_complete"),
        )
        breaks = marked.filter(
            pl.col("_complete") & (pl.col("end_ts") > range_end) & (pl.col("end_ts") <= exit_at)
            & (pl.col("close") > pl.col("_range_high"))
        )
        entries = breaks.group_by("symbol", "_open").agg(
            pl.col("end_ts").min().alias("at"), pl.col("_range_high").first(), pl.col("_close").first())
        exits_at = entries.with_columns((pl.col("_close") - timedelta(minutes=int(self.p["exit_minutes_before_close"]))).alias("exit_at"))
        # The exit is decided at the end of the bar that ends at exit_at: it must exist.
        ends = regular.select("symbol", "end_ts")
        exits = exits_at.join(ends, left_on=["symbol", "exit_at"], right_on=["symbol", "end_ts"], how="inner")
        rows = [
            {"symbol": r["symbol"], "at": r["at"], "action": Action.ENTER,
             "reason": f"closed above the {int(self.p['range_minutes'])}-minute opening range high {r['_range_high']:g}"}
            for r in entries.iter_rows(named=True)
        ] + [
            {"symbol": r["symbol"], "at": r["exit_at"], "action": Action.EXIT, "reason": "session end"}
            for r in exits.iter_rows(named=True)
        ]
        return signal_frame(rows)
