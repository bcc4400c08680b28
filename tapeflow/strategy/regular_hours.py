"""Regular-session bars: each bar with its session's open and close (`_open`, `_close`),
extended-hours bars left out. Shared by the intraday strategies."""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache

import polars as pl

from tapeflow.calendar.exchange import get_calendar, ny_day


def regular_session_bars(bars: pl.DataFrame) -> pl.DataFrame:
    """Bars lying wholly inside a regular session (half days included), with `_open` and `_close`."""
    first, last = bars["ts"].min(), bars["ts"].max()
    span = (ny_day(first), ny_day(last)) if isinstance(first, datetime) and isinstance(last, datetime) else None
    return (
        bars.sort("ts").join_asof(_bounds(span), left_on="ts", right_on="_open", strategy="backward")
        .filter((pl.col("ts") >= pl.col("_open")) & (pl.col("end_ts") <= pl.col("_close")))
    )


@lru_cache(maxsize=64)
def _bounds(span: tuple[date, date] | None) -> pl.DataFrame:
    """The opens and closes of the sessions from the first to the last New York day of `span`,
    sorted (a trading session asks for the same days every minute)."""
    sessions = [] if span is None else get_calendar().sessions(*span)
    return pl.DataFrame(
        {"_open": [s.open for s in sessions], "_close": [s.close for s in sessions]},
        schema={"_open": pl.Datetime("us", "UTC"), "_close": pl.Datetime("us", "UTC")},
    )
