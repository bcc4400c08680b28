"""The interfaces every market-data and watchlist source implements, and the window bars are asked for."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol, runtime_checkable

import polars as pl

from tapeflow.calendar.exchange import ExchangeCalendar, get_calendar, ny_day_bounds
from tapeflow.model import Timeframe, check_aware
from tapeflow.schemas import BAR_SCHEMA, RAW_COLUMNS, UTC_TS


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
        return cls(ny_day_bounds(first)[0], ny_day_bounds(last)[1])


@runtime_checkable
class MarketData(Protocol):
    """Historical bars from one vendor, as a raw batch (see `tapeflow.ingest.bars.RAW_COLUMNS`).

    Adapters never validate or drop rows: every row the vendor sent comes back, with its
    original text in `payload`, and anything the adapter could not parse (a malformed page,
    a missing field) is said in `problem`, so the quarantine receives it whole.
    """

    name: str

    def bars(self, symbols: Sequence[str] | None, timeframe: Timeframe, window: Window) -> pl.DataFrame:
        """Bars for `symbols` (None: all the source has) whose start lies in `window`."""
        ...


@runtime_checkable
class WatchlistSource(Protocol):
    """Ranked watchlist snapshots from one source, as a raw batch (see `tapeflow.schemas.WATCHLIST_RAW_COLUMNS`).

    As with market data, nothing is validated or dropped here: every row comes back with its
    `payload`, and what could not be read is said in `problem`, for `check_watchlist` to judge.
    A `session` is a stored session name (`tapeflow.schemas.SESSIONS`); a vendor may accept more.
    """

    name: str

    def snapshot(self, session: str, as_of: datetime | None, limit: int) -> pl.DataFrame:
        """The top `limit` names of `session` as the list stood at `as_of` (None: the live list)."""
        ...

    def snapshots(self, moments: Sequence[tuple[datetime, str]], limit: int) -> pl.DataFrame:
        """The lists as they stood at each (as_of, session), in one batch; a list already
        returned for an earlier moment is not repeated."""
        ...

    def close(self) -> None:
        ...


@runtime_checkable
class ActionSource(Protocol):
    """Corporate actions from one source, as a raw batch in `tapeflow.schemas.ACTION_SCHEMA`
    columns (payload_hash optional) plus `problem`; nothing validated or dropped here, as for bars."""

    name: str

    def actions(self, symbols: Sequence[str] | None, first: date, last: date) -> pl.DataFrame:
        """Actions of `symbols` (None: every symbol the source covers) whose ex-date lies in first..last."""
        ...


def latest_bars(
    source: MarketData, symbols: Sequence[str], timeframe: Timeframe, at: datetime, lookback: timedelta
) -> pl.DataFrame:
    """Each symbol's most recent bar that had ended by `at` (searched back `lookback`)."""
    at = check_aware("at", at)
    raw = source.bars(symbols, timeframe, Window(at - lookback, at))
    done = raw.filter(pl.col("end_ts") <= at)
    return done.sort("ts").group_by("symbol", maintain_order=True).last().select(raw.columns)


def daily_bounds(days: pl.Series, calendar: ExchangeCalendar | None = None) -> pl.DataFrame:
    """For New York session dates: the bar's start (regular open), end (close) and a problem
    text for dates that are not sessions. A daily bar is knowable at its session's close."""
    calendar = calendar or get_calendar()
    bounds, problems = {}, {}
    for day in days.drop_nulls().unique().to_list():
        try:
            if calendar.is_session(day):
                session = calendar.session(day)
                bounds[day] = (session.open, session.close)
            else:
                problems[day] = f"{day} is not an {calendar.name} session"
        except ValueError as exc:  # outside the calendar's range: a row problem, not a crash
            problems[day] = str(exc)
    values = days.to_list()
    return pl.DataFrame(
        {
            "ts": pl.Series([bounds.get(d, (None, None))[0] for d in values], dtype=UTC_TS),
            "end_ts": pl.Series([bounds.get(d, (None, None))[1] for d in values], dtype=UTC_TS),
            "problem": pl.Series(
                [problems.get(d) for d in values],
                dtype=pl.String,
            ),
        }
    )


def empty_raw_bars() -> pl.DataFrame:
    """A raw batch with no rows, for sources that found nothing."""
    return pl.DataFrame(schema={**BAR_SCHEMA, "payload": pl.String, "problem": pl.String}).select(*RAW_COLUMNS, "problem")
