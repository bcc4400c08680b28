"""Time in the market: the fraction of regular-session time the book held any position.

Computed from the fills, not the equity marks, so an intraday strategy marked once a day
still shows the hours it held. A position counts from the fill that opens it to the fill
that closes it (or the end of the run); only regular XNYS session hours count, in the
numerator and the denominator alike.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from tapeflow.calendar.exchange import get_calendar, ny_day
from tapeflow.model import Side

_FLAT = 1e-9  # shares: less than this is no position (float residue of partial fills)

Period = tuple[datetime, datetime]


def held_periods(fills: pl.DataFrame, end: datetime) -> list[Period]:
    """The periods the book held at least one position, merged across symbols, in order."""
    periods: list[Period] = []
    ordered = fills.with_row_index("_row").sort("symbol", "ts", "_row")
    for (_symbol,), rows in ordered.group_by("symbol", maintain_order=True):
        held, since = 0.0, None
        for ts, side, qty in rows.select("ts", "side", "qty").iter_rows():
            before = held
            held += qty if side == Side.BUY.value else -qty
            if abs(before) <= _FLAT < abs(held):
                since = ts
            elif abs(held) <= _FLAT < abs(before) and since is not None:
                periods.append((since, ts))
        if abs(held) > _FLAT and since is not None:
            periods.append((since, max(since, end)))
    return _union(periods)


def session_hours(start: datetime, end: datetime) -> list[Period]:
    """Regular-session (open, close) of every XNYS session from `start`'s New York day to `end`'s."""
    return [(s.open, s.close) for s in get_calendar().sessions(ny_day(start), ny_day(end))]


def time_in_market(fills: pl.DataFrame, start: datetime, end: datetime) -> float | None:
    """Held session time / session time over the sessions `start`..`end` span; None without one."""
    sessions = session_hours(start, end)
    total = sum((close - open_).total_seconds() for open_, close in sessions)
    if total <= 0:
        return None
    return overlap_seconds(held_periods(fills, end), sessions) / total


def overlap_seconds(a: list[Period], b: list[Period]) -> float:
    """Seconds two sorted lists of disjoint periods have in common."""
    i = j = 0
    seconds = 0.0
    while i < len(a) and j < len(b):
        low, high = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if high > low:
            seconds += (high - low).total_seconds()
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return seconds


def _union(periods: list[Period]) -> list[Period]:
    merged: list[Period] = []
    for start, end in sorted(periods):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
