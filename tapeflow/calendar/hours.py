"""A New York day's market hours in words, for people: the session's open and close (an early
close on a half day), or why there is none, and whether a session can still start now."""

from __future__ import annotations

from datetime import date, datetime

from tapeflow.calendar.exchange import NEW_YORK, ExchangeCalendar, get_calendar, ny_day


def _hhmm(instant: datetime) -> str:
    return f"{instant.astimezone(NEW_YORK):%H:%M}"


def day_hours(day: date, calendar: ExchangeCalendar | None = None) -> str:
    """The day's hours, e.g. `open 09:30, early close 13:00 EST` or `closed (Thanksgiving)`."""
    calendar = calendar or get_calendar()
    why = calendar.closure(day)
    if why is not None:
        return f"closed ({why})"
    session = calendar.session(day)
    close = "early close" if session.early_close else "close"
    return f"open {_hhmm(session.open)}, {close} {session.close.astimezone(NEW_YORK):%H:%M %Z}"


def next_open_words(now: datetime, calendar: ExchangeCalendar | None = None, *, utc: bool = False) -> str:
    """The next regular open after `now`, e.g. `Fri 2026-11-27 09:30 EST, early close 13:00`
    (with `utc`, `Fri 2026-11-27 09:30 EST (14:30 UTC), early close 13:00`)."""
    calendar = calendar or get_calendar()
    opens = calendar.next_open(now)
    session = calendar.session(ny_day(opens))
    also = f" ({opens:%H:%M} UTC)" if utc else ""
    early = f", early close {_hhmm(session.close)}" if session.early_close else ""
    return f"{opens.astimezone(NEW_YORK):%a %Y-%m-%d %H:%M %Z}{also}{early}"


def no_session_now(now: datetime, calendar: ExchangeCalendar | None = None) -> str | None:
    """Why no trading session can run at `now` (a day without one, or one already closed) and
    when the next opens; None while today's session has not closed."""
    calendar = calendar or get_calendar()
    day = ny_day(now)
    why = calendar.closure(day)
    if why is None:
        close = calendar.session(day).close
        if now < close:
            return None
        why = f"the session closed at {close.astimezone(NEW_YORK):%H:%M %Z}"
    return f"no trading session now: {day:%A %Y-%m-%d} ({why}); next regular open {next_open_words(now, calendar)}"
