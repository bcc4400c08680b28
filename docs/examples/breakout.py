"""Channel breakout, an example of a strategy kept outside tapeflow (docs/strategies.md).

Rules, per symbol, on each bar's close: enter when the close is above the highest close of
the `entry_bars` bars before it; exit when it is below the lowest close of the `exit_bars`
bars before it. Each decision is taken at the end of its bar, from closes known by then.

Use it without editing tapeflow:
    export TAPEFLOW_STRATEGY_PATH=docs/examples
    tapeflow strategies
    tapeflow backtest breakout -p entry_bars=20
"""

from __future__ import annotations

import polars as pl

from tapeflow.model import Action, Timeframe
from tapeflow.strategy.base import Param, Strategy, signal_frame
from tapeflow.strategy.history import History


class Breakout(Strategy):
    """Buy a new high of the channel, sell a new low."""

    name = "breakout"
    timeframe = Timeframe.DAY
    params = (
        Param("entry_bars", int, 20, 2, 250, "bars whose highest close a close must beat to enter"),
        Param("exit_bars", int, 10, 2, 250, "bars whose lowest close a close must fall below to exit"),
        Param("qty", int, 100, 0, 1_000_000, "shares per entry; 0: sized by the risk rules", tunable=False),
    )

    def warmup_bars(self) -> int:
        return int(max(self.p["entry_bars"], self.p["exit_bars"]))  # the channel before the bar decided on

    def signals(self, history: History) -> pl.DataFrame:
        bars = history.bars.sort("symbol", "ts")
        if bars.is_empty():
            return signal_frame([])
        before = pl.col("close").shift(1).over("symbol")  # closes strictly before this bar
        high = before.rolling_max(int(self.p["entry_bars"])).over("symbol")
        low = before.rolling_min(int(self.p["exit_bars"])).over("symbol")
        marked = bars.with_columns(high.alias("_high"), low.alias("_low"))
        entries = marked.filter(pl.col("close") > pl.col("_high")).select(
            "symbol", pl.col("end_ts").alias("at"), pl.lit(Action.ENTER.value).alias("action"),
            pl.lit("close above the channel").alias("reason"),
            pl.lit(float(self.p["qty"]) if self.p["qty"] else None, dtype=pl.Float64).alias("qty"),
        )
        exits = marked.filter(pl.col("close") < pl.col("_low")).select(
            "symbol", pl.col("end_ts").alias("at"), pl.lit(Action.EXIT.value).alias("action"),
            pl.lit("close below the channel").alias("reason"),
        )
        return signal_frame(pl.concat([entries, exits], how="diagonal"))
