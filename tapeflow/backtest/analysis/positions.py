"""How many positions the book held over time, from the fills (so intraday holdings count)."""

from __future__ import annotations

from datetime import date

import polars as pl

from tapeflow.calendar.exchange import NEW_YORK
from tapeflow.model import Side

_FLAT = 1e-9


def open_positions(fills: pl.DataFrame, dates: list[date]) -> pl.DataFrame:
    """date and `held`: the most symbols held at once during each New York date of `dates`
    (a position carried in from the day before counts)."""
    held: dict[str, float] = {}
    peak: dict[date, int] = {}
    ordered = fills.with_row_index("_row").sort("ts", "_row").select(
        "symbol", "side", "qty", pl.col("ts").dt.convert_time_zone(str(NEW_YORK)).dt.date().alias("day"))
    events = ordered.iter_rows()
    pending = next(events, None)
    for day in sorted(dates):
        most = sum(1 for q in held.values() if abs(q) > _FLAT)
        while pending is not None and pending[3] <= day:
            symbol, side, qty, _ = pending
            held[symbol] = held.get(symbol, 0.0) + (qty if side == Side.BUY.value else -qty)
            most = max(most, sum(1 for q in held.values() if abs(q) > _FLAT))
            pending = next(events, None)
        peak[day] = most
    return pl.DataFrame({"date": list(peak), "held": list(peak.values())}, schema={"date": pl.Date, "held": pl.Int64})
