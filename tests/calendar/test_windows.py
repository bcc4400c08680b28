"""What scheduled runs cover: watchlist sessions, bars due, backfill instants, month chunks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tapeflow.calendar.windows import (
    Days,
    Skip,
    bars_due,
    month_chunks,
    pre_market_times,
    session_steps,
    watchlist_session,
)

NY = ZoneInfo("America/New_York")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=NY)


@pytest.mark.parametrize(
    ("moment", "session"),
    [("2026-11-27 04:00", "pre_market"), ("2026-11-27 09:29", "pre_market"), ("2026-11-27 09:30", "market"),
     ("2026-11-27 12:59", "market")],
)
def test_watchlist_session_on_the_half_day(moment, session):
    assert watchlist_session(at(moment)) == session


@pytest.mark.parametrize(
    ("moment", "why"),
    [
        ("2026-11-26 10:00", "2026-11-26 is not an XNYS session (weekend or holiday): no snapshot"),
        ("2026-11-28 10:00", "2026-11-28 is not an XNYS session (weekend or holiday): no snapshot"),
        ("2026-11-27 13:00", "2026-11-27 13:00 EST is after_hours: snapshots are taken in pre-market and regular hours"),
        ("2026-11-30 03:59", "2026-11-30 03:59 EST is closed: snapshots are taken in pre-market and regular hours"),
    ],
)
def test_no_snapshot_outside_the_sessions(moment, why):
    with pytest.raises(Skip) as skip:
        watchlist_session(at(moment))
    assert str(skip.value) == why


def test_bars_due():
    assert bars_due("1m", at("2026-11-27 15:00")) == Days(date(2026, 11, 27), date(2026, 11, 27))
    assert bars_due("1d", at("2026-11-27 15:00")) == Days(date(2026, 11, 27), date(2026, 11, 27))  # closed at 13:00
    assert bars_due("1d", at("2026-11-30 10:00")) == Days(date(2026, 11, 27), date(2026, 11, 27))
    with pytest.raises(Skip, match="outside every session"):
        bars_due("1m", at("2026-11-26 12:00"))


def test_pre_market_times_follow_dst():
    times = pre_market_times(date(2011, 3, 11), date(2011, 3, 14))
    assert times == [datetime(2011, 3, 11, 14, 0, tzinfo=UTC), datetime(2011, 3, 14, 13, 0, tzinfo=UTC)]


def test_session_steps_walk_each_session_from_pre_open_to_the_close_inclusive():
    steps = session_steps(date(2026, 11, 26), date(2026, 11, 27), timedelta(hours=3))  # a holiday, then a half day
    assert steps == [at("2026-11-27 04:00"), at("2026-11-27 07:00"), at("2026-11-27 10:00"), at("2026-11-27 13:00")]
    assert len(session_steps(date(2026, 11, 30), date(2026, 12, 1), timedelta(minutes=30))) == 2 * 25
    with pytest.raises(ValueError, match="positive interval"):
        session_steps(date(2026, 11, 30), date(2026, 11, 30), timedelta(0))


def test_month_chunks():
    assert month_chunks(date(2010, 1, 15), date(2010, 3, 2)) == [
        Days(date(2010, 1, 15), date(2010, 1, 31)),
        Days(date(2010, 2, 1), date(2010, 2, 28)),
        Days(date(2010, 3, 1), date(2010, 3, 2)),
    ]
    assert month_chunks(date(2010, 12, 31), date(2010, 12, 31)) == [Days(date(2010, 12, 31), date(2010, 12, 31))]
    with pytest.raises(ValueError, match="before first day"):
        month_chunks(date(2010, 2, 1), date(2010, 1, 1))
