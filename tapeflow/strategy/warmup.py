"""How far back a strategy's history must reach: its declared warm-up, in its timeframe's
bars, found in the warehouse (the bars it holds, gaps and all), or estimated on the exchange
calendar for a message."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import duckdb

from tapeflow.calendar.exchange import get_calendar, ny_day_bounds
from tapeflow.model import Timeframe
from warehouse.reads import warmup_start

REGULAR_MINUTES = 390  # a full regular session's minute bars


def warmup_sessions(timeframe: Timeframe, bars: int) -> int:
    """Whole sessions before the first traded day that hold `bars` bars of `timeframe`
    (minute bars counted as regular-session minutes only, so never too few)."""
    if bars <= 0:
        return 0
    return bars if Timeframe(timeframe) is Timeframe.DAY else math.ceil(bars / REGULAR_MINUTES)


def history_start(timeframe: Timeframe, bars: int, first_day: date) -> datetime:
    """Where history must start for `bars` bars of warm-up before `first_day`: the pre-open of
    the session that many sessions before it (midnight of `first_day` without warm-up)."""
    sessions = warmup_sessions(timeframe, bars)
    if sessions == 0:
        return ny_day_bounds(first_day)[0]
    # Seven calendar days hold at least three sessions, whatever the holidays.
    earlier = get_calendar().sessions(first_day - timedelta(days=7 * (sessions // 3 + 1)), first_day - timedelta(days=1))
    return earlier[-sessions].pre_open


def session_warmup(timeframe: Timeframe, warmup_bars: int) -> int:
    """Bars a day's session needs before its pre-open: a daily strategy decides on the bar
    that closed before it, which needs its own warm-up behind it; an intraday one decides on
    the day's bars, the warm-up coming from earlier days."""
    if Timeframe(timeframe) is Timeframe.DAY and warmup_bars > 0:
        return warmup_bars + 1
    return warmup_bars


def history_from(con: duckdb.DuckDBPyConnection, timeframe: Timeframe, warmup: int, day: date,
                 symbols: list[str] | None = None) -> tuple[datetime, int]:
    """Where `day`'s session history starts (its last `warmup` stored bars before the pre-open,
    else the day's midnight) and how many warm-up bars are stored."""
    midnight = ny_day_bounds(day)[0]
    if warmup <= 0:
        return midnight, 0
    calendar = get_calendar()
    opens = calendar.session(day).pre_open if calendar.is_session(day) else midnight
    first, have = warmup_start(con, Timeframe(timeframe).value, warmup, opens, symbols)
    return (min(first, midnight) if first is not None else midnight), have
