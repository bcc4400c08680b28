"""The interface every market-data source implements, and the window it is asked for."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Protocol, runtime_checkable

import polars as pl

from tapeflow.calendar import NEW_YORK
from tapeflow.model import Timeframe, check_aware


@dataclass(frozen=True)
class Window:
    """Bars whose start lies in [start, end), both aware UTC instants."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", check_aware("start", self.start))
        object.__setattr__(self, "end", check_aware("end", self.end))
        if self.end <= self.start:
            raise ValueError(f"window end {self.end.isoformat()} is not after its start {self.start.isoformat()}")

    @classmethod
    def days(cls, first: date, last: date) -> Window:
        """New York calendar days first..last inclusive, pre-market and after-hours included."""
        if last < first:
            raise ValueError(f"last day {last} is before first day {first}")
        start = datetime.combine(first, time(0), NEW_YORK)
        end = datetime.combine(last + timedelta(days=1), time(0), NEW_YORK)
        return cls(start, end)


@runtime_checkable
class MarketData(Protocol):
    """Historical bars from one vendor, as a raw batch (see `tapeflow.bar_frames.RAW_COLUMNS`)."""

    name: str

    def bars(self, symbols: Sequence[str] | None, timeframe: Timeframe, window: Window) -> pl.DataFrame:
        """Bars for `symbols` (None: all the source has) whose start lies in `window`."""
        ...
