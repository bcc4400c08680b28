"""Tests for tapeflow.calendar.exchange: exact UTC instants around DST, holidays and half days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tapeflow.calendar.exchange import (
    NEW_YORK,
    ExchangeCalendar,
    ExchangeSession,
    Phase,
    get_calendar,
    ny_day,
    ny_day_bounds,
)
from tapeflow.model import InvalidRecord

UTC = UTC


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def et(*args: int) -> datetime:
    return datetime(*args, tzinfo=NEW_YORK)


@pytest.fixture(scope="module")
def cal() -> ExchangeCalendar:
    return get_calendar()


# --- regular hours across DST -------------------------------------------------


@pytest.mark.parametrize(
    ("day", "open_", "close"),
    [
        # spring 2026: clocks go forward Sunday 2026-03-08
        (date(2026, 3, 6), utc(2026, 3, 6, 14, 30), utc(2026, 3, 6, 21, 0)),
        (date(2026, 3, 9), utc(2026, 3, 9, 13, 30), utc(2026, 3, 9, 20, 0)),
        # fall 2026: clocks go back Sunday 2026-11-01
        (date(2026, 10, 30), utc(2026, 10, 30, 13, 30), utc(2026, 10, 30, 20, 0)),
        (date(2026, 11, 2), utc(2026, 11, 2, 14, 30), utc(2026, 11, 2, 21, 0)),
        # sample-data era: clocks went forward Sunday 2011-03-13
        (date(2011, 3, 11), utc(2011, 3, 11, 14, 30), utc(2011, 3, 11, 21, 0)),
        (date(2011, 3, 14), utc(2011, 3, 14, 13, 30), utc(2011, 3, 14, 20, 0)),
    ],
)
def test_regular_open_close_in_utc_across_dst(
    cal: ExchangeCalendar, day: date, open_: datetime, close: datetime
) -> None:
    s = cal.session(day)
    assert (s.date, s.open, s.close) == (day, open_, close)
    assert not s.half_day


@pytest.mark.parametrize(
    ("day", "pre_open", "post_close"),
    [
        (date(2026, 3, 6), utc(2026, 3, 6, 9, 0), utc(2026, 3, 7, 1, 0)),
        (date(2026, 3, 9), utc(2026, 3, 9, 8, 0), utc(2026, 3, 10, 0, 0)),
        (date(2026, 10, 30), utc(2026, 10, 30, 8, 0), utc(2026, 10, 31, 0, 0)),
        (date(2026, 11, 2), utc(2026, 11, 2, 9, 0), utc(2026, 11, 3, 1, 0)),
    ],
)
def test_extended_hours_bounds_in_utc_across_dst(
    cal: ExchangeCalendar, day: date, pre_open: datetime, post_close: datetime
) -> None:
    s = cal.session(day)
    assert (s.pre_open, s.post_close) == (pre_open, post_close)
    assert s.pre_open == et(day.year, day.month, day.day, 4, 0)
    assert s.post_close == et(day.year, day.month, day.day, 20, 0)


def test_returned_datetimes_use_stdlib_utc(cal: ExchangeCalendar) -> None:
    s = cal.session(date(2026, 3, 9))
    for t in (s.pre_open, s.open, s.close, s.post_close):
        assert t.tzinfo is UTC
    assert cal.next_open(utc(2026, 3, 9, 0, 0)).tzinfo is UTC
    assert cal.previous_close(utc(2026, 3, 9, 23, 0)).tzinfo is UTC


# --- holidays and half days -----------------------------------------------------


def test_thanksgiving_is_not_a_session(cal: ExchangeCalendar) -> None:
    assert not cal.is_session(date(2026, 11, 26))
    assert cal.is_session(date(2026, 11, 25))
    with pytest.raises(ValueError, match="2026-11-26 is not an XNYS session"):
        cal.session(date(2026, 11, 26))


def test_weekend_is_not_a_session(cal: ExchangeCalendar) -> None:
    assert not cal.is_session(date(2026, 11, 28))
    with pytest.raises(ValueError, match="2026-11-28 is not an XNYS session"):
        cal.session("2026-11-28")


def test_day_after_thanksgiving_is_a_half_day(cal: ExchangeCalendar) -> None:
    s = cal.session(date(2026, 11, 27))
    assert s.half_day
    assert s.open == utc(2026, 11, 27, 14, 30)
    assert s.close == utc(2026, 11, 27, 18, 0) == et(2026, 11, 27, 13, 0)
    assert s.post_close == et(2026, 11, 27, 17, 0)
    assert s.pre_open == et(2026, 11, 27, 4, 0)


def test_sessions_is_inclusive_and_skips_closed_days(cal: ExchangeCalendar) -> None:
    days = [s.date for s in cal.sessions(date(2026, 11, 25), date(2026, 11, 30))]
    assert days == [date(2026, 11, 25), date(2026, 11, 27), date(2026, 11, 30)]
    assert cal.sessions(date(2026, 11, 26), date(2026, 11, 26)) == []


def test_sessions_of_a_year_match_session_lookup(cal: ExchangeCalendar) -> None:
    year = cal.sessions(date(2011, 1, 1), date(2011, 12, 31))
    assert len(year) == 252
    assert all(cal.session(s.date) is s for s in year)
    assert [s.date for s in year if s.half_day] == [date(2011, 11, 25)]


# --- phases -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "phase"),
    [
        (et(2026, 3, 9, 3, 59, 59), Phase.CLOSED),
        (et(2026, 3, 9, 4, 0), Phase.PRE_MARKET),
        (et(2026, 3, 9, 9, 29, 59), Phase.PRE_MARKET),
        (et(2026, 3, 9, 9, 30), Phase.REGULAR),
        (et(2026, 3, 9, 15, 59, 59), Phase.REGULAR),
        (et(2026, 3, 9, 16, 0), Phase.AFTER_HOURS),
        (et(2026, 3, 9, 19, 59, 59), Phase.AFTER_HOURS),
        (et(2026, 3, 9, 20, 0), Phase.CLOSED),
        # half day
        (et(2026, 11, 27, 12, 59, 59), Phase.REGULAR),
        (et(2026, 11, 27, 13, 0), Phase.AFTER_HOURS),
        (et(2026, 11, 27, 16, 59, 59), Phase.AFTER_HOURS),
        (et(2026, 11, 27, 17, 0), Phase.CLOSED),
        # holiday and weekend
        (et(2026, 11, 26, 10, 0), Phase.CLOSED),
        (et(2026, 11, 28, 10, 0), Phase.CLOSED),
        (et(2026, 11, 29, 12, 0), Phase.CLOSED),
    ],
)
def test_phase_at_boundaries(cal: ExchangeCalendar, t: datetime, phase: Phase) -> None:
    assert cal.phase_at(t) is phase


def test_phase_values_are_strings() -> None:
    assert Phase.PRE_MARKET == "pre_market"
    assert [str(p) for p in Phase] == ["pre_market", "regular", "after_hours", "closed"]


def test_phase_at_accepts_any_aware_timezone(cal: ExchangeCalendar) -> None:
    assert cal.phase_at(utc(2026, 3, 9, 13, 30)) is Phase.REGULAR
    assert cal.phase_at(utc(2026, 3, 9, 13, 29, 59)) is Phase.PRE_MARKET
    assert cal.phase_at(pd.Timestamp("2026-03-09 09:30", tz="America/New_York")) is Phase.REGULAR


def test_session_phase_at_outside_its_day_is_closed(cal: ExchangeCalendar) -> None:
    s = cal.session(date(2026, 3, 9))
    assert s.phase_at(et(2026, 3, 10, 10, 0)) is Phase.CLOSED
    assert s.phase_at(et(2026, 3, 9, 10, 0)) is Phase.REGULAR


def test_session_at(cal: ExchangeCalendar) -> None:
    day = cal.session(date(2026, 11, 27))
    assert cal.session_at(et(2026, 11, 27, 4, 0)) is day
    assert cal.session_at(et(2026, 11, 27, 16, 59)) is day
    assert cal.session_at(et(2026, 11, 27, 17, 0)) is None
    assert cal.session_at(et(2026, 11, 27, 3, 59)) is None
    assert cal.session_at(et(2026, 11, 26, 12, 0)) is None


def test_is_open_regular_vs_extended(cal: ExchangeCalendar) -> None:
    pre = et(2026, 3, 9, 8, 0)
    regular = et(2026, 3, 9, 10, 0)
    after = et(2026, 3, 9, 18, 0)
    night = et(2026, 3, 9, 21, 0)
    assert [cal.is_open(t) for t in (pre, regular, after, night)] == [False, True, False, False]
    assert [cal.is_open(t, extended=True) for t in (pre, regular, after, night)] == [
        True,
        True,
        True,
        False,
    ]
    assert not cal.is_open(et(2026, 11, 26, 10, 0), extended=True)


# --- next_open / previous_close -------------------------------------------------------


def test_next_open_skips_thanksgiving(cal: ExchangeCalendar) -> None:
    assert cal.next_open(et(2026, 11, 25, 17, 0)) == et(2026, 11, 27, 9, 30) == utc(2026, 11, 27, 14, 30)


def test_next_open_from_half_day_evening_is_monday(cal: ExchangeCalendar) -> None:
    assert cal.next_open(et(2026, 11, 27, 18, 0)) == et(2026, 11, 30, 9, 30)


def test_next_open_during_session_is_next_day(cal: ExchangeCalendar) -> None:
    assert cal.next_open(et(2026, 3, 9, 11, 0)) == utc(2026, 3, 10, 13, 30)
    # strictly after: exactly at the open gives the following day's open
    assert cal.next_open(et(2026, 3, 9, 9, 30)) == utc(2026, 3, 10, 13, 30)
    assert cal.next_open(et(2026, 3, 9, 9, 29, 59)) == utc(2026, 3, 9, 13, 30)


def test_next_open_extended_is_pre_market_start(cal: ExchangeCalendar) -> None:
    assert cal.next_open(et(2026, 11, 27, 18, 0), extended=True) == et(2026, 11, 30, 4, 0)
    assert cal.next_open(et(2026, 11, 30, 3, 0), extended=True) == utc(2026, 11, 30, 9, 0)
    # across the spring switch the 04:00 ET start moves from 09:00Z to 08:00Z
    assert cal.next_open(et(2026, 3, 6, 12, 0), extended=True) == utc(2026, 3, 9, 8, 0)


def test_previous_close(cal: ExchangeCalendar) -> None:
    assert cal.previous_close(et(2026, 11, 28, 12, 0)) == utc(2026, 11, 27, 18, 0)
    assert cal.previous_close(et(2026, 11, 26, 12, 0)) == et(2026, 11, 25, 16, 0)
    # at or before: exactly at the close returns that close
    assert cal.previous_close(et(2026, 3, 9, 16, 0)) == utc(2026, 3, 9, 20, 0)
    assert cal.previous_close(et(2026, 3, 9, 15, 59)) == utc(2026, 3, 6, 21, 0)


def test_session_date_is_new_york_date(cal: ExchangeCalendar) -> None:
    # 02:00Z on the 10th is still the evening of the 9th in New York
    assert cal.session_date(utc(2026, 3, 10, 2, 0)) == date(2026, 3, 9)
    assert cal.session_date(utc(2026, 3, 10, 5, 0)) == date(2026, 3, 10)


@pytest.mark.parametrize(
    ("day", "start", "end", "hours"),
    [
        (date(2024, 3, 8), utc(2024, 3, 8, 5), utc(2024, 3, 9, 5), 24),  # EST
        (date(2024, 3, 10), utc(2024, 3, 10, 5), utc(2024, 3, 11, 4), 23),  # clocks go forward at 02:00
        (date(2024, 7, 1), utc(2024, 7, 1, 4), utc(2024, 7, 2, 4), 24),  # EDT
        (date(2024, 11, 3), utc(2024, 11, 3, 4), utc(2024, 11, 4, 5), 25),  # clocks go back at 02:00
    ],
)
def test_ny_day_bounds_are_midnight_to_midnight_in_utc(day: date, start: datetime, end: datetime, hours: int) -> None:
    assert ny_day_bounds(day) == (start, end)
    assert end - start == timedelta(hours=hours)
    # Any instant of the day gives the same bounds, and falls on that day.
    for instant in (start, start + (end - start) / 2, end - timedelta(microseconds=1)):
        assert ny_day(instant) == day
        assert ny_day_bounds(instant) == (start, end)
    assert ny_day(end) == day + timedelta(days=1)


def test_ny_day_refuses_a_naive_instant() -> None:
    with pytest.raises(InvalidRecord, match="naive"):
        ny_day(datetime(2024, 3, 10, 12, 0))
    with pytest.raises(InvalidRecord, match="naive"):
        ny_day_bounds(datetime(2024, 3, 10, 12, 0))


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.phase_at(datetime(2026, 3, 9, 10, 0)),
        lambda c: c.is_open(datetime(2026, 3, 9, 10, 0)),
        lambda c: c.session_at(datetime(2026, 3, 9, 10, 0)),
        lambda c: c.next_open(datetime(2026, 3, 9, 10, 0)),
        lambda c: c.previous_close(datetime(2026, 3, 9, 10, 0)),
        lambda c: c.session_date(datetime(2026, 3, 9, 10, 0)),
        lambda c: c.session(date(2026, 3, 9)).phase_at(datetime(2026, 3, 9, 10, 0)),
        lambda c: c.phase_at(pd.Timestamp("2026-03-09 10:00")),
    ],
)
def test_naive_datetime_raises(cal: ExchangeCalendar, call) -> None:
    with pytest.raises(ValueError, match="instant is a naive timestamp .*: a time zone is required"):
        call(cal)


def test_datetime_where_date_expected_raises(cal: ExchangeCalendar) -> None:
    with pytest.raises(ValueError, match="expected a date"):
        cal.session(datetime(2026, 3, 9, tzinfo=UTC))


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.session(date(1999, 12, 31)),
        lambda c: c.is_session(date(2099, 1, 2)),
        lambda c: c.sessions(date(1999, 1, 1), date(2000, 2, 1)),
        lambda c: c.phase_at(utc(1999, 6, 1, 15, 0)),
        lambda c: c.next_open(utc(2099, 6, 1, 15, 0)),
    ],
)
def test_out_of_range_raises_naming_the_range(cal: ExchangeCalendar, call) -> None:
    with pytest.raises(ValueError, match=r"outside the XNYS calendar range 2000-01-01\.\.\d{4}-\d\d-\d\d"):
        call(cal)


def test_next_open_past_last_session_raises() -> None:
    short = ExchangeCalendar(start="2011-01-01", end="2011-12-31")
    assert short.next_open(et(2011, 12, 29, 12, 0)) == et(2011, 12, 30, 9, 30)
    with pytest.raises(ValueError, match="no XNYS session opens after"):
        short.next_open(et(2011, 12, 30, 12, 0))
    with pytest.raises(ValueError, match="no XNYS session closes before"):
        short.previous_close(et(2011, 1, 3, 12, 0))


def test_get_calendar_is_cached() -> None:
    assert get_calendar() is get_calendar("XNYS")
    assert get_calendar().name == "XNYS"


def test_session_is_frozen(cal: ExchangeCalendar) -> None:
    s: ExchangeSession = cal.session(date(2026, 3, 9))
    with pytest.raises(AttributeError):
        s.close = s.open  # type: ignore[misc]


# --- properties ---------------------------------------------------------------------------

instants = st.datetimes(
    min_value=datetime(2010, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
)


@st.composite
def near_boundaries(draw: st.DrawFn) -> datetime:
    """Instants within a minute of some session's phase boundary, where off-by-ones hide."""
    sessions = get_calendar().sessions(date(2010, 1, 1), date(2026, 12, 31))
    s = draw(st.sampled_from(sessions))
    edge = draw(st.sampled_from([s.pre_open, s.open, s.close, s.post_close]))
    return edge + timedelta(seconds=draw(st.integers(-60, 60)))


@settings(max_examples=300, deadline=None)
@given(st.one_of(instants, near_boundaries()))
def test_property_is_open_matches_phase_and_next_open_is_a_future_open(t: datetime) -> None:
    cal = get_calendar()
    phase = cal.phase_at(t)
    assert cal.is_open(t) == (phase is Phase.REGULAR)
    assert cal.is_open(t, extended=True) == (phase is not Phase.CLOSED)

    nxt = cal.next_open(t)
    assert nxt > t
    assert cal.session(cal.session_date(nxt)).open == nxt
    # the first such open: the session before it opened at or before t
    before = cal.sessions(cal.session_date(nxt) - timedelta(days=10), cal.session_date(nxt))[-2]
    assert before.open <= t

    nxt_ext = cal.next_open(t, extended=True)
    assert nxt_ext > t
    assert cal.session(cal.session_date(nxt_ext)).pre_open == nxt_ext
    assert cal.previous_close(t) <= t
