"""`tapeflow trade` refuses what cannot run, in one line and before Prefect starts: no session
now (saying why and when the next opens), options that do not go together, no promotion; and
`tapeflow sessions` and `tapeflow promotions` fit an 80-column terminal."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date, datetime, time

import pytest
from typer.testing import CliRunner

from tapeflow.calendar.exchange import NEW_YORK
from tapeflow.cli import trade
from tapeflow.cli.console import err, out
from tapeflow.cli.main import app
from tapeflow.config import load_settings
from tapeflow.live.identity import session_id
from tapeflow.live.launch import NoSession, check_session
from tapeflow.live.promotion import promote, resolve_params

runner = CliRunner()


def ny(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), NEW_YORK)


@pytest.fixture
def at(monkeypatch, tapeflow_home):
    """Set the wall clock `tapeflow trade` reads; starting Prefect fails the test."""

    @contextmanager
    def no_prefect(settings):
        raise AssertionError("Prefect was started")
        yield

    monkeypatch.setattr(trade, "running_flows", no_prefect)

    def set_clock(instant: datetime) -> None:
        monkeypatch.setattr(trade, "WallClock", lambda: type("Fixed", (), {"now": lambda self: instant})())

    return set_clock


@pytest.fixture
def columns_80(monkeypatch):
    """An 80-column terminal: the consoles were sized when the CLI was imported."""
    monkeypatch.setenv("COLUMNS", "80")
    for console in (out, err):
        monkeypatch.setattr(console, "width", 80)


def refused(argv: list[str]) -> str:
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.output
    return result.stderr.strip()


@pytest.mark.parametrize(("now", "why"), [
    (ny(date(2026, 12, 5), 10), "Saturday 2026-12-05 (weekend); next regular open Mon 2026-12-07 09:30 EST"),
    (ny(date(2026, 11, 26), 9, 45), "Thursday 2026-11-26 (Thanksgiving); next regular open Fri 2026-11-27 09:30 EST, "
                                    "early close 13:00"),
    (ny(date(2026, 11, 27), 13, 0), "Friday 2026-11-27 (the session closed at 13:00 EST); next regular open "
                                    "Mon 2026-11-30 09:30 EST"),
])
def test_no_session_now_says_why_and_when_the_next_opens(at, now, why):
    at(now)
    assert refused(["trade", "opening_range"]) == (f"no trading session now: {why}; --replay-day DAY replays a "
                                                   "stored day instead")


def test_a_session_left_unfinished_may_still_be_finished_after_the_close(warehouse):
    settings = load_settings()
    day = date(2026, 12, 4)
    promote(warehouse, "opening_range", {}, "paper")
    sid = session_id("opening_range", resolve_params("opening_range", {}), "sim", "paper", day)
    with pytest.raises(NoSession, match="Friday 2026-12-04 \\(the session closed at 16:00 EST\\)"):
        check_session(settings, warehouse, "opening_range", None, ny(day, 16, 5))
    for status, allowed in (("running", True), ("failed", True), ("finished", False)):
        with warehouse.write() as con:
            con.execute("INSERT OR REPLACE INTO trading_sessions (session_id, strategy, params, params_hash, broker, mode, "
                        "session_date, status, started_at) VALUES (?, 'opening_range', '{}', 'h', 'sim', 'paper', ?, ?, ?)",
                        [sid, day, status, ny(day, 9, 25)])
        if allowed:  # a restart after a crash reconciles and records the day
            check_session(settings, warehouse, "opening_range", None, ny(day, 16, 5))
        else:
            with pytest.raises(NoSession):
                check_session(settings, warehouse, "opening_range", None, ny(day, 16, 5))
    check_session(settings, warehouse, "opening_range", None, ny(day, 8, 0))  # before the open: it waits for it


@pytest.mark.parametrize(("argv", "message"), [
    (["trade", "opening_range", "--fresh"], "--fresh starts a replay over: it goes with --replay-day"),
    (["trade", "opening_range", "--stop-loss-pct", "1.5"], "--stop-loss-pct must be a fraction within (0, 1), got 1.5"),
    (["trade", "sma_cross"], "no warehouse at "),
])
def test_other_arguments_are_refused_before_prefect_starts(at, argv, message):
    at(ny(date(2026, 12, 7), 10))  # a Monday, in session
    assert message in refused(argv)


def test_a_strategy_not_promoted_is_refused_before_prefect_starts(at, warehouse):
    at(ny(date(2026, 12, 7), 10))
    promote(warehouse, "opening_range", {"range_minutes": 15}, "paper")
    assert refused(["trade", "opening_range", "-p", "range_minutes=20"]).startswith(
        "opening_range {'range_minutes': 20, 'exit_minutes_before_close': 5} is not promoted to paper")


@pytest.mark.usefixtures("columns_80")
def test_sessions_and_promotions_fit_80_columns(warehouse):
    empty = runner.invoke(app, ["sessions"])
    assert empty.exit_code == 0 and empty.stdout.splitlines() == [
        "no trading sessions recorded yet: `tapeflow trade STRATEGY --replay-day DAY`", "replays a stored day"]

    promote(warehouse, "watchlist_momentum", {}, "paper")
    reason = "watched every fill for a week at the smallest size the account allows, and the gaps were zero"
    promote(warehouse, "watchlist_momentum", {}, "live", override_reason=reason)
    listed = runner.invoke(app, ["promotions"])
    assert listed.exit_code == 0, listed.output
    assert "…" not in listed.stdout and max(map(len, listed.stdout.splitlines())) <= 80
    assert listed.stdout.splitlines()[1:3] == ["watchlist_momentum to paper, params 0b8169f4bf13",
                                              "  max_names=5, min_score=80.0"]
    assert reason in " ".join(text.strip() for text in listed.stdout.splitlines())
