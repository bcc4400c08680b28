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
        range_minutes, exit_minutes = int(self.p["range_minutes"]), int(self.p["exit_minutes_before_close"])
        range_end = pl.col("_open") + pl.duration(minutes=range_minutes)
        exit_at = pl.col("_close") - pl.duration(minutes=exit_minutes)
        in_range = pl.col("end_ts") <= range_end
        range_high = pl.col("high").filter(in_range).max()
        breaks = (pl.col("end_ts") > range_end) & (pl.col("end_ts") <= exit_at) & (pl.col("close") > range_high)
        # One row per symbol and session, in one pass (a live session runs this every minute).
        sessions = regular_session_bars(bars).group_by("symbol", "_open").agg(
            range_high.alias("_range_high"),
            (pl.col("end_ts").filter(in_range).max() == range_end.first()).alias("_complete"),
            pl.col("end_ts").filter(breaks).min().alias("at"),
            # The exit is decided at the end of the bar that ends at exit_at: it must exist.
            pl.col("end_ts").filter(pl.col("end_ts") == exit_at).first().alias("exit_at"),
        ).filter(pl.col("_complete") & pl.col("at").is_not_null())
        rows = []
        for r in sessions.iter_rows(named=True):
            rows.append({"symbol": r["symbol"], "at": r["at"], "action": Action.ENTER,
                         "reason": f"closed above the {range_minutes}-minute opening range high {r['_range_high']:g}"})
            if r["exit_at"] is not None:
                rows.append({"symbol": r["symbol"], "at": r["exit_at"], "action": Action.EXIT, "reason": "session end"})
        return signal_frame(rows)
