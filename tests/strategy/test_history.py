"""`History.until`: what was knowable at an instant, to the microsecond, whatever its zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from tapeflow.calendar.exchange import NEW_YORK
from tapeflow.strategy.history import History

END = datetime(2024, 3, 4, 14, 31, tzinfo=UTC)


def _history() -> History:
    ends = [END - timedelta(minutes=1), END, END + timedelta(minutes=1)]
    return History(pl.DataFrame({"symbol": "ACME", "ts": [e - timedelta(minutes=1) for e in ends], "end_ts": ends,
                                 "open": 1.0, "high": 1.0, "low": 1.0, "close": [1.0, 2.0, 3.0], "volume": 1.0}))


def test_a_bar_is_knowable_from_its_end_to_the_microsecond_in_any_zone():
    history = _history()
    for at in (END, END.astimezone(NEW_YORK)):
        assert history.until(at).bars["close"].to_list() == [1.0, 2.0]
        assert history.until(at - timedelta(microseconds=1)).bars["close"].to_list() == [1.0]
        assert history.until(at + timedelta(microseconds=1)).bars["close"].to_list() == [1.0, 2.0]
