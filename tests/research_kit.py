"""Synthetic daily paths with known answers for the research tests: a strategy that trades a
fixed rhythm, price paths that reward one rhythm, an all-in sizing, the bundled daily panel."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl

from tapeflow.backtest.config import BacktestConfig
from tapeflow.calendar.exchange import get_calendar
from tapeflow.config import PROJECT_DATA
from tapeflow.model import Timeframe
from tapeflow.risk.policy import ExecutionPolicy, Sizing
from tapeflow.sources import Window
from tapeflow.sources.replay import ReplaySource
from tapeflow.strategy.base import Param, Strategy, signal_frame
from tapeflow.strategy.history import History

ALL = Window(datetime(2009, 1, 1, tzinfo=UTC), datetime(2011, 1, 1, tzinfo=UTC))
ALL_IN = BacktestConfig(policy=ExecutionPolicy(sizing=Sizing(fraction=0.9, max_positions=1), max_position_pct=None))


class EveryN(Strategy):
    """Test-only: buys at the close of every `period`-th bar (counted from the first bar of
    the history) and sells at the close of the next one, so it holds from one open to the next."""

    name = "every_n"
    timeframe = Timeframe.DAY
    params = (Param("period", int, 10, 2, 100, "bars between entries"),)

    def signals(self, history: History) -> pl.DataFrame:
        n = int(self.p["period"])
        bars = history.bars.with_columns(pl.int_range(pl.len()).over("symbol").alias("_i"))
        pick = lambda k, action: bars.filter(pl.col("_i") % n == k).select(  # noqa: E731
            "symbol", pl.col("end_ts").alias("at"), pl.lit(action).alias("action"), pl.lit(f"every {n}").alias("reason"))
        return signal_frame(pl.concat([pick(0, "enter"), pick(1, "exit")]))


def path_bars(steps: list[float], start: date = date(2023, 1, 3), symbol: str = "X", price: float = 100.0) -> pl.DataFrame:
    """Flat daily bars (open = high = low = close) on XNYS sessions; bar j+1 = bar j x (1 + steps[j])."""
    sessions = get_calendar().sessions(start, start + timedelta(days=2 * len(steps) + 30))[: len(steps) + 1]
    closes = [price]
    for r in steps:
        closes.append(closes[-1] * (1 + r))
    return pl.DataFrame({
        "symbol": symbol, "ts": [s.open for s in sessions], "end_ts": [s.close for s in sessions],
        "open": closes, "high": closes, "low": closes, "close": closes, "volume": 1e6,
    })


def spike_steps(n: int, period: int = 10, jump: float = 0.03, drift: float = -0.01, switch: int | None = None,
                later: int | None = None) -> list[float]:
    """A jump on the step after every `period`-th bar (where EveryN(period) holds), a loss on
    every other step; from step `switch` on, the rhythm is `later` instead."""
    out = []
    for j in range(n):
        p = later if switch is not None and j >= switch else period
        out.append(jump if j % p == 1 else drift)
    return out


def full_panel() -> History:
    """~30 symbols of the bundled daily panel with every one of its 245 sessions."""
    raw = ReplaySource(PROJECT_DATA).bars(None, "1d", ALL).filter(pl.col("problem").is_null())
    full = raw.group_by("symbol").len().filter(pl.col("len") == raw["ts"].n_unique())["symbol"].sort().to_list()
    return History(bars=raw.filter(pl.col("symbol").is_in(full[:30])))
