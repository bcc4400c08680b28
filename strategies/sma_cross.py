"""SMA crossover: long when the fast average crosses above the slow one, flat when it crosses
back below.

Rules, per symbol, on each bar's close (bar t):
- fast = mean of the last `fast` closes, slow = mean of the last `slow` closes;
- enter (buy `qty` shares at the next bar's open; qty 0 lets the risk rules size it) when
  fast > slow now and fast <= slow on the bar before; exit (sell everything) when fast < slow now and fast >= slow before;
- the first bar that can signal is the one where both averages exist now and one bar ago;
- a tie (fast == slow) is neither above nor below; no pyramiding, no shorting.
Averages are compared exactly (on integer multiples of the price grid when there is one),
so a tie is a tie whatever the platform's float rounding.
"""

from __future__ import annotations

from typing import cast

import polars as pl

from tapeflow.model import Action, Timeframe
from tapeflow.strategy.base import Param, Strategy, signal_frame
from tapeflow.strategy.history import History

_GRIDS = (100, 128, 10_000, 2**16, 1_000_000)


def price_grid(closes: pl.Series) -> int | None:
    """A scale that makes every price an integer (cents, 1/128 ...), or None."""
    values = closes.drop_nulls()
    for scale in _GRIDS:
        scaled = values * scale
        # polars types a max as any scalar; this one is a float (or None for no prices)
        if ((scaled - scaled.round()).abs() < 1e-6).all() and (cast("float | None", scaled.abs().max()) or 0) * 10_000 < 2**62:
            return scale
    return None


class SmaCross(Strategy):
    name = "sma_cross"
    timeframe = Timeframe.DAY
    per_symbol = True
    params = (
        Param("fast", int, 10, 2, 200, "bars in the fast average"),
        Param("slow", int, 30, 3, 500, "bars in the slow average"),
        Param("qty", int, 100, 0, 1_000_000, "shares per entry; 0: sized by the risk rules", tunable=False),
    )

    def check_params(self) -> None:
        if self.p["fast"] >= self.p["slow"]:
            raise ValueError(f"fast ({self.p['fast']}) must be shorter than slow ({self.p['slow']})")

    def warmup_bars(self) -> int:
        return int(self.p["slow"])  # both averages now and one bar ago: slow + 1 bars with the one decided on

    def signals(self, history: History) -> pl.DataFrame:
        fast, slow = int(self.p["fast"]), int(self.p["slow"])
        bars = history.bars
        if bars.is_empty():
            return signal_frame([])
        scale = price_grid(bars["close"])
        price = (pl.col("close") * scale).round().cast(pl.Int64) if scale else pl.col("close")
        # fast > slow  <=>  slow * sum(fast closes) > fast * sum(slow closes): exact on a grid.
        diff = slow * price.rolling_sum(fast) - fast * price.rolling_sum(slow)
        if scale:
            # Integer sums are exact, so one pass over every symbol's bars (sorted by symbol)
            # does, once the windows reaching into the previous symbol are dropped.
            diff = pl.when(pl.col("symbol").shift(slow - 1) == pl.col("symbol")).then(diff)
        else:
            diff = diff.over("symbol")
        marked = bars.lazy().select("symbol", "end_ts", diff.alias("_d")).with_columns(pl.col("_d").shift(1).alias("_prev"))
        up = (pl.col("_d") > 0) & (pl.col("_prev") <= 0)
        down = (pl.col("_d") < 0) & (pl.col("_prev") >= 0)
        crossed = marked.filter(up | down).select(
            "symbol",
            pl.col("end_ts").alias("at"),
            pl.when(up).then(pl.lit(Action.ENTER.value)).otherwise(pl.lit(Action.EXIT.value)).alias("action"),
            pl.when(up)
            .then(pl.lit(f"SMA{fast} crossed above SMA{slow}"))
            .otherwise(pl.lit(f"SMA{fast} crossed below SMA{slow}"))
            .alias("reason"),
            pl.lit(float(self.p["qty"]) if self.p["qty"] else None, dtype=pl.Float64).alias("qty"),
        ).collect()
        return signal_frame(crossed)
