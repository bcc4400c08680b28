"""What became of each decision in a backtest: the `outcome` column of `BacktestResult.decisions`.

The event loop and the market-order fast path both spell outcomes from here; the values are
the text reports show and tests compare against.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """A decision's outcome; the last two carry a figure after them (`with_detail`)."""

    PLACED = "placed"  # its order filled, in whole or in part
    NEVER_FILLED = "placed: never filled"  # its window passed, or an exit cancelled it first
    CANCELLED_ENTRY = "cancelled the working entry"  # an exit with nothing held: the entry still working goes
    NO_BARS = "ignored: no bars for the symbol"
    BUSY = "ignored: already in a position or an order is working"
    NOTHING_TO_EXIT = "ignored: nothing to exit"
    SIZED_TO_ZERO = "ignored: sized to zero shares"
    DAILY_LOSS = "ignored: daily loss limit hit"
    NO_BUYING_POWER = "ignored: insufficient buying power"

    def with_detail(self, detail: str) -> str:
        """The outcome followed by its figure in brackets, e.g. the buying power left."""
        return f"{self.value} ({detail})"
