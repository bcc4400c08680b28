"""A day's hours in words, from the exchange calendar: the open and the close (early on half
days), the closure's name from the calendar library, whether a session can still start; and
`tapeflow clock`, which shows them."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest
from typer.testing import CliRunner

from tapeflow.calendar.exchange import NEW_YORK, get_calendar
from tapeflow.calendar.hours import day_hours, next_open_words, no_session_now
from tapeflow.cli.main import app

runner = CliRunner()


def ny(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), NEW_YORK)


@pytest.mark.parametrize(("day", "hours"), [
    (date(2026, 11, 27), "open 09:30, early close 13:00 EST"),  # the day after Thanksgiving
    (date(2026, 12, 24), "open 09:30, early close 13:00 EST"),
    (date(2026, 3, 9), "open 09:30, close 16:00 EDT"),  # the first Monday of daylight saving
    (date(2026, 11, 26), "closed (Thanksgiving)"),
    (date(2026, 7, 3), "closed (July 4th)"),  # observed: the 4th is a Saturday
    (date(2026, 7, 4), "closed (weekend)"),
    (date(2025, 1, 9), "closed (unscheduled closure)"),  # a day of mourning: the library names no rule
])
def test_day_hours(day, hours):
    assert day_hours(day) == hours
    assert (get_calendar().closure(day) is None) == hours.startswith("open")


@pytest.mark.parametrize(("now", "words"), [
    (ny(date(2026, 12, 7), 3, 0), None),  # before the pre-market: today's session is still to come
    (ny(date(2026, 12, 7), 15, 59), None),
    (ny(date(2026, 12, 7), 16, 0), "Monday 2026-12-07 (the session closed at 16:00 EST); next regular open "
                                   "Tue 2026-12-08 09:30 EST"),
    (ny(date(2026, 12, 5), 10), "Saturday 2026-12-05 (weekend); next regular open Mon 2026-12-07 09:30 EST"),
    (ny(date(2026, 11, 26), 23, 59), "Thursday 2026-11-26 (Thanksgiving); next regular open Fri 2026-11-27 "
                                     "09:30 EST, early close 13:00"),
])
def test_no_session_now(now, words):
    assert no_session_now(now) == (None if words is None else f"no trading session now: {words}")


def test_next_open_words_in_utc_too():
    assert next_open_words(ny(date(2026, 3, 6), 17), utc=True) == "Mon 2026-03-09 09:30 EDT (13:30 UTC)"


@pytest.mark.parametrize(("at", "lines"), [
    ("2026-11-27T12:00:00-05:00", ["2026-11-27 12:00 EST: regular", "Fri 2026-11-27: open 09:30, early close 13:00 EST",
                                   "next regular open: Mon 2026-11-30 09:30 EST (14:30 UTC)"]),
    ("2026-11-26T10:00:00-05:00", ["2026-11-26 10:00 EST: closed", "Thu 2026-11-26: closed (Thanksgiving)",
                                   "next regular open: Fri 2026-11-27 09:30 EST (14:30 UTC), early close 13:00"]),
])
def test_clock_shows_the_days_open_and_close(at, lines):
    result = runner.invoke(app, ["clock", "--at", at])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == lines


def test_clock_refuses_an_instant_the_calendar_does_not_cover():
    result = runner.invoke(app, ["clock", "--at", "1990-01-02T12:00:00-05:00"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("--at must be within 2000-01-01..")
