"""Round trips, looked at closely: why each ended, P&L per symbol, durations and streaks.

Why a trade ended is read from its closing fill's order id, which the engine builds from
what placed the order: `-exit` a strategy's exit signal, `-stop` the protective stop,
`-flat` the policy flattening the book (the time exit, or the daily-loss breaker when the
decision at that instant was refused by it), `-in-lieu` cash for a fractional share.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

import polars as pl

from tapeflow.backtest.engine import BacktestResult
from tapeflow.model import Outcome, Side

_KIND = re.compile(r"-(\d+)-(exit|stop|flat)(?:-\d+)?$|-(in-lieu)$")


class ExitReason(StrEnum):
    """What closed a round trip."""

    SIGNAL = "exit signal"
    STOP = "stop loss"
    TIME_EXIT = "time exit"
    BREAKER = "daily loss breaker"
    CASH_IN_LIEU = "cash in lieu"
    OTHER = "other"


@dataclass(frozen=True)
class Durations:
    """How long a group of trades was held."""

    trades: int
    mean: timedelta | None
    median: timedelta | None


@dataclass(frozen=True)
class Streaks:
    """Longest runs of consecutive winners and losers, in order of exit."""

    wins: int
    losses: int


def exit_reason(order_id: str, breaker_at: frozenset[int] = frozenset()) -> ExitReason:
    """The reason an order id says it was placed for (`breaker_at`: instants, in epoch
    microseconds, of decisions the daily-loss breaker refused)."""
    found = _KIND.search(order_id)
    if found is None:
        return ExitReason.OTHER
    if found.group(3):
        return ExitReason.CASH_IN_LIEU
    kind = found.group(2)
    if kind == "exit":
        return ExitReason.SIGNAL
    if kind == "stop":
        return ExitReason.STOP
    return ExitReason.BREAKER if int(found.group(1)) in breaker_at else ExitReason.TIME_EXIT


def annotated_trades(result: BacktestResult) -> pl.DataFrame:
    """The trades (by entry time) with `exit_reason`, `exit_order_id` and `duration` (exit - entry)."""
    decisions = result.decisions
    breaker = frozenset(
        decisions.filter(pl.col("outcome").str.starts_with(Outcome.DAILY_LOSS.value))["at"].dt.epoch("us").to_list()
    ) if decisions.height and "outcome" in decisions.columns else frozenset()
    closing = (
        result.fills.with_row_index("_row").filter(pl.col("side") == Side.SELL.value)
        .sort("_row").group_by("symbol", "ts", maintain_order=True).agg(pl.col("order_id").last().alias("exit_order_id"))
        .rename({"ts": "exit_ts"})
    )
    trades = result.trades.join(closing, on=["symbol", "exit_ts"], how="left").sort("entry_ts", "symbol", "exit_ts")
    reasons = [exit_reason(o, breaker).value if o is not None else ExitReason.OTHER.value
               for o in trades["exit_order_id"].to_list()]
    return trades.with_columns(
        pl.Series("exit_reason", reasons, dtype=pl.String),
        (pl.col("exit_ts") - pl.col("entry_ts")).alias("duration"),
    )


def per_symbol_pnl(trades: pl.DataFrame) -> pl.DataFrame:
    """symbol, trades, wins, pnl and costs (net of costs), best P&L first."""
    return trades.group_by("symbol").agg(
        pl.len().alias("trades"), (pl.col("pnl") > 0).sum().alias("wins"),
        pl.col("pnl").sum(), pl.col("costs").sum(),
    ).sort(["pnl", "symbol"], descending=[True, False])


def exit_breakdown(trades: pl.DataFrame) -> pl.DataFrame:
    """exit_reason, trades, wins and pnl per reason, most trades first (`annotated_trades` rows)."""
    return trades.group_by("exit_reason").agg(
        pl.len().alias("trades"), (pl.col("pnl") > 0).sum().alias("wins"), pl.col("pnl").sum(),
    ).sort(["trades", "exit_reason"], descending=[True, False])


def durations(trades: pl.DataFrame) -> dict[str, Durations]:
    """Holding time of winners (pnl > 0) and losers (pnl <= 0) of `annotated_trades` rows."""
    out = {}
    for name, rows in (("winners", trades.filter(pl.col("pnl") > 0)), ("losers", trades.filter(pl.col("pnl") <= 0))):
        held = rows["duration"]
        out[name] = Durations(rows.height, held.mean() if rows.height else None,  # type: ignore[arg-type]
                              held.median() if rows.height else None)  # type: ignore[arg-type]
    return out


def streaks(trades: pl.DataFrame) -> Streaks:
    """Longest winning and losing runs, trades taken in order of exit (then symbol)."""
    wins = losses = run_w = run_l = 0
    for pnl in trades.sort("exit_ts", "symbol")["pnl"].to_list():
        run_w, run_l = (run_w + 1, 0) if pnl > 0 else (0, run_l + 1)
        wins, losses = max(wins, run_w), max(losses, run_l)
    return Streaks(wins, losses)
