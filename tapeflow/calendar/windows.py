"""What a scheduled run covers at a given moment, decided by the exchange calendar.

Cron cannot tell a holiday from a trading day or 09:29 from 09:31, so every scheduled flow
asks here first: which watchlist session is open now, which days of bars are due, which
instants a backfill replays. A run with nothing to do gets `Skip` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from tapeflow.calendar.exchange import NEW_YORK, ExchangeCalendar, Phase, get_calendar
from tapeflow.model import Timeframe, WatchlistSession, check_aware

PRE_MARKET_SNAPSHOT = time(9, 0)
"""When a backfilled pre-market watchlist is taken (New York): half an hour before the open."""


class Skip(Exception):
    """Nothing to do at this moment; the message says why."""


@dataclass(frozen=True)
class Days:
    """New York days first..last, inclusive."""

    first: date
    last: date


def watchlist_session(at: datetime, calendar: ExchangeCalendar | None = None) -> WatchlistSession:
    """The watchlist session open at `at` (pre-market or regular), else Skip."""
    calendar = calendar or get_calendar()
    at = check_aware("at", at)
    day = calendar.session_date(at)
    if not calendar.is_session(day):
        raise Skip(f"{day} is not an {calendar.name} session (weekend or holiday): no snapshot")
    phase = calendar.phase_at(at)
    if phase is Phase.PRE_MARKET:
        return WatchlistSession.PRE_MARKET
    if phase is Phase.REGULAR:
        return WatchlistSession.REGULAR
    local = at.astimezone(NEW_YORK)
    raise Skip(f"{local:%Y-%m-%d %H:%M %Z} is {phase.value}: snapshots are taken in pre-market and regular hours")


def bars_due(timeframe: Timeframe, at: datetime, calendar: ExchangeCalendar | None = None) -> Days:
    """Days a scheduled ingest fetches: today's session for minute bars (from 04:00 New York
    on), the last closed session for daily bars."""
    calendar = calendar or get_calendar()
    at = check_aware("at", at)
    if Timeframe(timeframe) is Timeframe.MINUTE:
        session = calendar.session_at(at)
        if session is None:
            raise Skip(f"{at.astimezone(NEW_YORK):%Y-%m-%d %H:%M %Z} is outside every session: no minute bars to fetch")
        return Days(session.date, session.date)
    closed = calendar.session_date(calendar.previous_close(at))
    return Days(closed, closed)


def pre_market_times(first: date, last: date, calendar: ExchangeCalendar | None = None) -> list[datetime]:
    """09:00 New York of every session first..last: the moments a backfill takes snapshots."""
    calendar = calendar or get_calendar()
    return [
        datetime.combine(s.date, PRE_MARKET_SNAPSHOT, NEW_YORK).astimezone(s.open.tzinfo)
        for s in calendar.sessions(first, last)
    ]


def session_steps(first: date, last: date, every: timedelta, calendar: ExchangeCalendar | None = None) -> list[datetime]:
    """Every `every` from the pre-open through the close (inclusive) of each session first..last:
    the moments a vendor's watchlist history is replayed at."""
    if every <= timedelta(0):
        raise ValueError(f"every must be a positive interval, got {every}")
    calendar = calendar or get_calendar()
    steps = []
    for session in calendar.sessions(first, last):
        at = session.pre_open
        while at <= session.close:
            steps.append(at)
            at += every
    return steps


def month_chunks(first: date, last: date) -> list[Days]:
    """first..last split at month ends, so a long backfill stores (and fails) a month at a time."""
    if last < first:
        raise ValueError(f"last day {last} is before first day {first}")
    chunks, start = [], first
    while start <= last:
        next_month = (start.replace(day=1) + timedelta(days=32)).replace(day=1)
        end = min(last, next_month - timedelta(days=1))
        chunks.append(Days(start, end))
        start = end + timedelta(days=1)
    return chunks
