"""The opening-range breakout on hand-built minute bars: the range is exactly the first
`range_minutes` regular-session bars, a bar inside the range never triggers, and the first
close above the range high after it enters at that bar's end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from strategies.opening_range import OpeningRangeBreakout
from tapeflow.strategy.history import History

OPEN = datetime(2024, 3, 5, 14, 30, tzinfo=UTC)  # 09:30 New York, a Tuesday (EST); the close is 16:00


def minute(k: int) -> datetime:
    """The start of the session's k-th minute bar (0: the 09:30 bar)."""
    return OPEN + timedelta(minutes=k)


def session_bars(changes: dict[int, dict[str, float]]) -> History:
    """A full session of flat one-minute bars (close 100, high 100.2, low 99.8), with the
    fields of bar k replaced by `changes[k]`."""
    rows = [{"symbol": "ABCD", "ts": minute(k), "end_ts": minute(k + 1), "open": 100.0, "high": 100.2, "low": 99.8,
             "close": 100.0, "volume": 10_000.0, **changes.get(k, {})} for k in range(390)]
    return History(bars=pl.DataFrame(rows))


def decisions(history: History, **params) -> list[tuple[str, datetime, str]]:
    frame = OpeningRangeBreakout(**params).signals(history)
    return frame.select("action", "at", "reason").rows()


SESSION_END = ("exit", minute(385), "session end")  # decided at the end of the 15:54 bar, 5 minutes before the close


def test_the_15_minute_range_is_the_0930_to_0944_bars_and_the_0945_bar_breaks_it():
    # The 09:44 bar (the range's 15th) closes above every bar before it: inside the range, no
    # entry, but its high is the range high. The 09:45 bar closes above that: the entry, at 09:46.
    history = session_bars({14: {"high": 101.0, "close": 101.0}, 15: {"high": 101.5, "close": 101.5}})
    assert decisions(history, range_minutes=15) == [
        ("enter", minute(16), "closed above the 15-minute opening range high 101"), SESSION_END,
    ]


def test_the_first_bar_belongs_to_the_range():
    # The 09:30 bar's spike makes the range high: the 09:45 bar's 102 stays below it, 09:50's 103.5 breaks it.
    history = session_bars({0: {"high": 103.0}, 15: {"high": 102.0, "close": 102.0}, 20: {"high": 103.5, "close": 103.5}})
    assert decisions(history, range_minutes=15) == [
        ("enter", minute(21), "closed above the 15-minute opening range high 103"), SESSION_END,
    ]


def test_a_close_above_the_range_only_while_it_forms_never_enters():
    # Every high after the range is below the 09:40 bar's close: nothing to break.
    history = session_bars({10: {"high": 101.0, "close": 101.0}, 12: {"high": 100.9, "close": 100.9}})
    assert decisions(history, range_minutes=15) == []


def test_a_one_minute_range_is_the_first_bar_alone():
    history = session_bars({1: {"high": 100.5, "close": 100.5}})
    assert decisions(history, range_minutes=1) == [
        ("enter", minute(2), "closed above the 1-minute opening range high 100.2"), SESSION_END,
    ]


@pytest.mark.parametrize("range_minutes", [2, 5, 30, 60])
def test_the_ranges_last_bar_never_enters_and_the_next_one_may(range_minutes):
    last, after = range_minutes - 1, range_minutes
    history = session_bars({last: {"high": 101.0, "close": 101.0}, after: {"high": 101.5, "close": 101.5}})
    assert decisions(history, range_minutes=range_minutes) == [
        ("enter", minute(after + 1), f"closed above the {range_minutes}-minute opening range high 101"), SESSION_END,
    ]


def test_no_range_no_entry_when_the_range_is_missing_its_last_bar():
    history = History(bars=session_bars({15: {"high": 101.5, "close": 101.5}}).bars.filter(pl.col("ts") != minute(14)))
    assert decisions(history, range_minutes=15) == []
