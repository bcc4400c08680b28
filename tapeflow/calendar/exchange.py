"""US equity exchange sessions (regular and extended hours) on exchange_calendars.

Holidays, half days and regular open/close times come from exchange_calendars;
daylight saving comes from zoneinfo. Every datetime returned is aware UTC.
"""

from __future__ import annotations

import os
import warnings
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import cache, cached_property
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import polars as pl

from tapeflow.model import check_aware

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "NEW_YORK",
    "Phase",
    "ExchangeSession",
    "ExchangeCalendar",
    "get_calendar",
    "ny_day",
    "ny_day_bounds",
]

NEW_YORK = ZoneInfo("America/New_York")
UTC = UTC

# Extended hours are a broker/ECN convention the library does not model.
PRE_MARKET_START = time(4, 0)
AFTER_HOURS_END = time(20, 0)
AFTER_HOURS_LENGTH = timedelta(hours=4)


class Phase(StrEnum):
    """Trading phase of an instant."""

    PRE_MARKET = "pre_market"
    REGULAR = "regular"
    AFTER_HOURS = "after_hours"
    CLOSED = "closed"


def _require_aware(t: datetime) -> datetime:
    return check_aware("instant", t)


def _as_date(d: date | str) -> date:
    """Accept a date or an ISO ``YYYY-MM-DD`` string."""
    # datetime subclasses date; silently truncating one would hide a timezone bug.
    if isinstance(d, datetime):
        raise ValueError(
            f"expected a date, got datetime {d.isoformat()}: use session_date(t) for an instant"
        )
    if isinstance(d, date):
        return d
    if isinstance(d, str):
        return date.fromisoformat(d)
    raise TypeError(f"expected a date or ISO string, got {type(d).__name__} {d!r}")


def _at_new_york(d: date, wall: time) -> datetime:
    """UTC instant of wall-clock time ``wall`` on ``d`` in New York."""
    return datetime.combine(d, wall, NEW_YORK).astimezone(UTC)


def ny_day(instant: datetime) -> date:
    """The New York calendar date ``instant`` falls on (a session, when there is one, has this date)."""
    return _require_aware(instant).astimezone(NEW_YORK).date()


def ny_day_bounds(day: date | datetime) -> tuple[datetime, datetime]:
    """New York midnight to the next midnight, as UTC instants [start, end), of ``day`` or of the
    day an instant falls on. Not always 24 hours: 23 on the spring-forward day, 25 on the fall-back one."""
    if isinstance(day, datetime):
        day = ny_day(day)
    return _at_new_york(day, time(0)), _at_new_york(day + timedelta(days=1), time(0))


def _utc_datetimes(times: pd.Series) -> list[datetime]:
    """Aware-UTC series to datetimes in ``datetime.timezone.utc``."""
    # Via epoch seconds: the library's own objects carry zoneinfo UTC, and building
    # ~7k datetimes from ints is several times faster than iterating Timestamps.
    seconds = times.dt.tz_convert(None).to_numpy().astype("datetime64[s]").astype("int64")
    return [datetime.fromtimestamp(s, UTC) for s in seconds.tolist()]


@dataclass(frozen=True)
class ExchangeSession:
    """One trading day: extended-hours bounds around the regular session, all UTC."""

    date: date
    pre_open: datetime
    open: datetime
    close: datetime
    post_close: datetime
    # From the library's early-close list; a stored flag, not a guess from the clock.
    early_close: bool = field(default=False, kw_only=True)

    @property
    def half_day(self) -> bool:
        """True when the regular session closes early (e.g. 13:00 ET)."""
        return self.early_close

    def phase_at(self, t: datetime) -> Phase:
        """Phase of ``t`` within this session; each phase is half-open [start, end)."""
        t = _require_aware(t)
        if self.pre_open <= t < self.open:
            return Phase.PRE_MARKET
        if self.open <= t < self.close:
            return Phase.REGULAR
        if self.close <= t < self.post_close:
            return Phase.AFTER_HOURS
        return Phase.CLOSED


class ExchangeCalendar:
    """Sessions of one exchange_calendars calendar (XNYS by default), with extended hours."""

    def __init__(
        self,
        name: str = "XNYS",
        start: date | str = "2000-01-01",
        end: date | str | None = None,
    ) -> None:
        self.name = name
        start_d = _as_date(start)
        end_d = None if end is None else _as_date(end)
        sessions = [
            ExchangeSession(
                date=day,
                pre_open=_at_new_york(day, PRE_MARKET_START),
                open=open_,
                close=close,
                # After-hours runs 4 hours past the close but never beyond 20:00 ET.
                post_close=min(_at_new_york(day, AFTER_HOURS_END), close + AFTER_HOURS_LENGTH),
                early_close=early,
            )
            for day, open_, close, early in _session_table(name, start_d, end_d)
        ]
        self.start: date = start_d
        self.end: date = end_d if end_d is not None else sessions[-1].date
        self._sessions = sessions
        self._by_date = {s.date: s for s in sessions}
        # Sorted parallel lists so instant lookups are a bisect, not a pandas query.
        self._dates = [s.date for s in sessions]
        self._pre_opens = [s.pre_open for s in sessions]
        self._opens = [s.open for s in sessions]
        self._closes = [s.close for s in sessions]

    def __repr__(self) -> str:
        return f"ExchangeCalendar({self.name!r}, start={self.start}, end={self.end})"

    def _check_date(self, d: date | str) -> date:
        d = _as_date(d)
        if not self.start <= d <= self.end:
            raise ValueError(f"{d} is outside the {self.name} calendar range {self.start}..{self.end}")
        return d

    def _check_instant(self, t: datetime) -> datetime:
        t = _require_aware(t)
        self._check_date(self.session_date(t))
        return t

    def is_session(self, d: date | str) -> bool:
        """True if ``d`` is a trading day."""
        return self._check_date(d) in self._by_date

    def closure(self, d: date | str) -> str | None:
        """Why ``d`` has no session: "weekend", the library's holiday name (e.g. "Thanksgiving"),
        or "unscheduled closure" for a day it closed outside its rules; None on a trading day."""
        d = self._check_date(d)
        if d in self._by_date:
            return None
        if self._library.weekmask[d.weekday()] == "0":
            return "weekend"
        return self._holiday_names.get(d, "unscheduled closure")

    @cached_property
    def _library(self) -> Any:
        """The exchange_calendars calendar, for the names of closures only."""
        return _library_calendar(self.name, self.start, self.end)

    @cached_property
    def _holiday_names(self) -> dict[date, str]:
        # Built on first use: naming the holidays walks every rule over the calendar's years.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            named = self._library.regular_holidays.holidays(self.start, self.end, return_name=True)
        return {label.date(): str(name) for label, name in named.items()}

    def session(self, d: date | str) -> ExchangeSession:
        """The session on date ``d``; ValueError for weekends and holidays."""
        d = self._check_date(d)
        try:
            return self._by_date[d]
        except KeyError:
            raise ValueError(f"{d} is not an {self.name} session") from None

    def sessions(self, start: date | str, end: date | str) -> list[ExchangeSession]:
        """Sessions from ``start`` to ``end``, both inclusive."""
        lo = bisect_left(self._dates, self._check_date(start))
        hi = bisect_right(self._dates, self._check_date(end))
        return self._sessions[lo:hi]

    def session_at(self, t: datetime) -> ExchangeSession | None:
        """The session whose [pre_open, post_close) contains ``t``, else None."""
        t = self._check_instant(t)
        i = bisect_right(self._pre_opens, t) - 1
        if i >= 0 and t < self._sessions[i].post_close:
            return self._sessions[i]
        return None

    def phase_at(self, t: datetime) -> Phase:
        """Trading phase at instant ``t``."""
        session = self.session_at(t)
        return Phase.CLOSED if session is None else session.phase_at(t)

    def is_open(self, t: datetime, extended: bool = False) -> bool:
        """Regular session open at ``t``; with ``extended``, pre-market and after-hours count."""
        phase = self.phase_at(t)
        return phase is not Phase.CLOSED if extended else phase is Phase.REGULAR

    def next_open(self, t: datetime, extended: bool = False) -> datetime:
        """First regular open (pre-market start if ``extended``) strictly after ``t``."""
        t = self._check_instant(t)
        starts = self._pre_opens if extended else self._opens
        i = bisect_right(starts, t)
        if i == len(starts):
            raise ValueError(f"no {self.name} session opens after {t.isoformat()} (calendar ends {self.end})")
        return starts[i]

    def previous_close(self, t: datetime) -> datetime:
        """Last regular close at or before ``t``."""
        t = self._check_instant(t)
        i = bisect_right(self._closes, t) - 1
        if i < 0:
            raise ValueError(f"no {self.name} session closes before {t.isoformat()} (calendar starts {self.start})")
        return self._closes[i]

    def session_date(self, t: datetime) -> date:
        """New York calendar date of ``t``."""
        return ny_day(t)


def _library_calendar(name: str, start: date, end: date | None) -> Any:
    # Imported here: exchange_calendars brings pandas (~0.4 s) and builds its tables (~1 s),
    # which a process that finds the session table on disk never pays for.
    import exchange_calendars as xc  # deferred: pandas and the calendar tables

    # exchange_calendars 4.13 trips pandas 3.1's Pandas4Warning (a DeprecationWarning)
    # inside its constructor; keep that noise out of callers running with -W error.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return xc.get_calendar(name, start=start, end=end)


def _session_table(name: str, start: date, end: date | None) -> list[tuple[date, datetime, datetime, bool]]:
    """(date, open, close, early close) of every session, from the library, kept on disk per
    library version and day (its default end moves with today) so later processes skip it."""
    path = _table_path(name, start, end)
    if path is not None and path.exists():
        try:
            table = pl.read_parquet(path)
            opens, closes = (table[c].dt.epoch("s").to_list() for c in ("open", "close"))
            return list(zip(table["date"].to_list(), [datetime.fromtimestamp(t, UTC) for t in opens],
                            [datetime.fromtimestamp(t, UTC) for t in closes], table["early"].to_list(), strict=True))
        except (OSError, pl.exceptions.PolarsError):  # a damaged file: built again below
            pass
    cal = _library_calendar(name, start, end)
    early = set(cal.early_closes)
    rows = [(label.date(), open_, close, label in early)
            for label, open_, close in zip(cal.sessions, _utc_datetimes(cal.opens), _utc_datetimes(cal.closes),
                                           strict=True)]
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            part = path.with_suffix(f".{os.getpid()}.tmp")
            pl.DataFrame(rows, schema={"date": pl.Date, "open": pl.Datetime("us", "UTC"),
                                       "close": pl.Datetime("us", "UTC"), "early": pl.Boolean},
                         orient="row").write_parquet(part)
            part.replace(path)  # whole or not at all, whichever process writes last
        except OSError:  # a read-only home: the table is simply built each time
            pass
    return rows


def _table_path(name: str, start: date, end: date | None) -> Path | None:
    """Where the session table is kept: TAPEFLOW_CALENDAR_CACHE (empty: nowhere), else the
    user's cache folder."""
    folder = os.environ.get("TAPEFLOW_CALENDAR_CACHE")
    if folder == "":
        return None
    root = Path(folder) if folder else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tapeflow"
    try:
        version = metadata.version("exchange_calendars")
    except metadata.PackageNotFoundError:
        return None
    today = datetime.now(UTC).date()
    return root / "calendars" / f"{name}-{start}-{end or 'default'}-xc{version}-{today}.parquet"


def get_calendar(name: str = "XNYS") -> ExchangeCalendar:
    """Shared calendar per exchange name; construction is slow enough to cache."""
    return _cached_calendar(name)


# Cached behind a wrapper because lru_cache keys on the call's spelling:
# get_calendar() and get_calendar("XNYS") would otherwise build two calendars.
@cache
def _cached_calendar(name: str) -> ExchangeCalendar:
    return ExchangeCalendar(name)
