"""A backtest in a universe: entries on symbols the universe did not hold at the decision are
refused before the engine sees them (exits never are: a position is always let go), and the
report states the universe and its survivorship from the `universes` table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.engine import BacktestResult, simulate
from tapeflow.model import Action, Outcome
from tapeflow.sources.universe import Membership, Universe


def simulate_in(bars: pl.DataFrame, signals: pl.DataFrame, config: BacktestConfig, members: Membership | None,
                **engine: Any) -> BacktestResult:
    """`simulate` (`engine`: its keyword options), after refusing entries on non-members; the refused
    decisions are in the result's `decisions` with the outcome NOT_IN_UNIVERSE, in the engine's order."""
    if members is None or signals.is_empty():
        return simulate(bars, signals, config, **engine)
    ordered = signals.sort("at", maintain_order=True).with_row_index("_order")
    entry = ordered["action"] == Action.ENTER.value
    admitted = ~entry | members.member_mask(ordered["symbol"], ordered["at"])
    kept, refused = ordered.filter(admitted), ordered.filter(~admitted)
    result = simulate(bars, kept.drop("_order"), config, **engine)
    if refused.is_empty():
        return result
    if result.decisions.height != kept.height:
        raise RuntimeError("the engine returned a decision count other than the signals it was given")
    decided = result.decisions.with_columns(kept["_order"])  # sorted by `at` already: the engine keeps that order
    refused = refused.with_columns(pl.lit(Outcome.NOT_IN_UNIVERSE.value).alias("outcome"))
    # diagonal: a column the engine adds to its decisions stays empty on the refused ones
    decisions = pl.concat([decided, refused], how="diagonal_relaxed").sort("_order").drop("_order")
    return BacktestResult(result.fills, result.trades, result.equity, decisions, result.config, result.start_cash)


def universe_line(universe: Universe, applied: bool, symbols: Sequence[str]) -> str:
    """The report's "universe" entry for a recorded universe, applied or only describing the data."""
    if applied:
        return f"{universe.sentence()}; entries only on symbols that were members at the decision instant"
    return (f"the {len(symbols)} symbols in the data, all of them members of {universe.sentence()} at some time; "
            "membership not applied (--universe applies it)")


def survivorship_line(universe: Universe) -> str:
    """The report's "survivorship" entry, from the universe's record."""
    return (f"{universe.survivorship.value} (the universes table, for {universe.name} from {universe.source}): "
            f"{universe.survivorship.meaning()}")
