"""Regular-session bars: each bar with its session's open and close (`_open`, `_close`),
extended-hours bars left out. Shared by the intraday strategies."""

from __future__ import annotations

import polars as pl

from tapeflow.calendar.exchange import get_calendar


def regular_session_bars(bars: pl.DataFrame) -> pl.DataFrame:
    """Bars lying wholly inside a regular session (half days included), with `_open` and `_close`."""
    calendar = get_calendar()
    days = bars["ts"].dt.convert_time_zone("America/New_York").dt.date().unique().to_list()
    sessions = [calendar.session(d) for d in days if calendar.is_session(d)]
    bounds = pl.DataFrame(
        {"_open": [s.open for s in sessions], "_close": [s.close for s in sessions]},
        schema={"_open": pl.Datetime("us", "UTC"), "_close": pl.Datetime("us", "UTC")},
    )
    return (
        bars.sort("ts").join_asof(bounds.sort("_open"), left_on="ts", right_on="_open", strategy="backward")
        .filter((pl.col("ts") >= pl.col("_open")) & (pl.col("end_ts") <= pl.col("_close")))
    )
