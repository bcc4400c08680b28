"""The benchmark beside a strategy: buy and hold, run through the same engine, fills and costs.

SPY when the history holds it, else an equal-weight basket of every symbol in the history:
each name gets an equal share of the starting cash (fractional shares) at its last close
before the first decision (the first bar end in regular hours from the run's start), bought
at market then held to the end. Because the orders go
through `simulate` with the run's cost model, the benchmark pays the same slippage and
commissions a strategy would for the same trades.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import cast

import polars as pl

from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.engine import simulate
from tapeflow.calendar.exchange import get_calendar
from tapeflow.model import Action
from tapeflow.strategy.base import signal_frame

BENCHMARK_SYMBOL = "SPY"


@dataclass(frozen=True)
class Benchmark:
    """A buy-and-hold curve: what was held (`label`) and its `equity` frame (ts, equity)."""

    label: str
    symbols: tuple[str, ...]
    equity: pl.DataFrame


def benchmark_symbols(bars: pl.DataFrame) -> tuple[str, ...]:
    """SPY when `bars` hold it, else every symbol in them (sorted)."""
    symbols = sorted(bars["symbol"].unique().to_list())
    return (BENCHMARK_SYMBOL,) if BENCHMARK_SYMBOL in symbols else tuple(symbols)


def buy_and_hold(bars: pl.DataFrame, config: BacktestConfig, *, start: datetime | None = None,
                 steps: pl.DataFrame | None = None) -> Benchmark | None:
    """Buy the benchmark at the first regular-hours bar end from `start` on and hold it, marked
    at every bar end of its symbols; None without such a bar or a close by then."""
    if bars.is_empty():
        return None
    chosen = benchmark_symbols(bars)
    mine = bars.filter(pl.col("symbol").is_in(chosen))
    at = _first_regular_end(mine, start)
    if at is None:
        return None
    known = mine.filter(pl.col("end_ts") <= at).sort("end_ts").group_by("symbol", maintain_order=True).agg(
        pl.col("close").last()).filter(pl.col("close") > 0).sort("symbol")
    if known.is_empty():
        return None
    share = config.cash / known.height
    signals = signal_frame(known.select(
        "symbol", pl.lit(at).alias("at"), pl.lit(Action.ENTER.value).alias("action"),
        pl.lit("buy and hold").alias("reason"), (share / pl.col("close")).alias("qty")))
    # No rule of the strategy's policy applies to an index proxy: every name gets its slot, no
    # cap, stop, breaker or time exit (the sizes are given, so the policy sizes nothing).
    policy = config.policy
    holding = replace(config, buying_power_multiple=None, policy=replace(
        policy, sizing=replace(policy.sizing, max_positions=known.height), max_position_pct=None, stop_loss_pct=None,
        daily_loss_limit_pct=None, exit_before_close=None))
    result = simulate(mine, signals, holding, steps=steps)
    equity = result.equity.select("ts", "equity")  # flat cash before the buy: the caller trims as its run
    held = tuple(known["symbol"].to_list())
    label = (f"buy and hold {held[0]}" if len(held) == 1
             else f"equal-weight buy and hold of {len(held)} names")
    return Benchmark(label, held, equity)


def _first_regular_end(bars: pl.DataFrame, start: datetime | None) -> datetime | None:
    """The end of the first bar, at or after `start`, that began in regular hours: the buy then
    fills in the session's volume, not in a thin pre-market minute."""
    calendar = get_calendar()
    later = bars if start is None else bars.filter(pl.col("end_ts") >= start)
    for ts, end in later.select("ts", "end_ts").unique().sort("end_ts", "ts").iter_rows():
        if calendar.is_open(ts):
            return cast(datetime, end)
    return None
