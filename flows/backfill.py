"""Backfill a window: bars month by month, or watchlist snapshots as they would have been."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.hooks import alert_on_failure
from flows.ingest import ingest_bars
from flows.parameters import UNSET, MarketDataName, OptionalName, Symbols, WatchlistName
from tapeflow.calendar.windows import month_chunks, pre_market_times, session_steps
from tapeflow.model import Timeframe
from tapeflow.progress import tracked
from tapeflow.sources import require_watchlist_source
from tasks.watchlist import check, replay_snapshots, store


@flow(name="backfill-bars", on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def backfill_bars(
    source: MarketDataName = "replay",
    start: date = date(2009, 8, 21),
    end: date = date(2010, 8, 20),
    timeframe: Timeframe = Timeframe.DAY,
    symbols: Symbols = UNSET,
) -> dict[str, int]:
    """Ingest start..end one month at a time (each month its own ingest-bars run).

    Args:
        source: Market data vendor (replay: the bundled files).
        start: First New York day.
        end: Last New York day.
        timeframe: Bar length: 1d (daily) or 1m (one minute).
        symbols: Symbols to fetch; empty means the source's whole list.
    """
    totals: dict[str, int] = {}
    months = month_chunks(start, end)
    with tracked(f"backfill {timeframe} bars from {source}", total=len(months)) as progress:
        for month in months:
            counts = ingest_bars(source=source, symbols=symbols, timeframe=timeframe, start=month.first, end=month.last)
            for name, n in counts.items():
                totals[name] = totals.get(name, 0) + n
            progress.advance(detail=f"{month.first:%Y-%m}: {totals.get('stored', 0):,} stored so far")
    get_run_logger().info("backfilled %s %s bars %s..%s: %s", source, timeframe, start, end, totals)
    return totals


@flow(name="backfill-watchlist", on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def backfill_watchlist(
    source: WatchlistName = "scanner",
    start: date = date(2009, 9, 21),
    end: date = date(2010, 8, 20),
    limit: int = 20,
    every_minutes: int = 30,
    universe: OptionalName = UNSET,
) -> dict[str, int]:
    """Pre-market snapshots for every session start..end: the scanner over stored bars (only
    `universe`'s members of each morning, when named; None: every symbol), or BullAlert's own
    history through `as_of` (every `every_minutes` through each day).

    Args:
        source: Watchlist source: the scanner (over stored daily bars) or BullAlert's history.
        start: First New York session.
        end: Last New York session.
        limit: Most names kept per snapshot, best first.
        every_minutes: BullAlert only: minutes between snapshots through each day.
        universe: Scanner only: rank only this universe's members of each morning; blank: every symbol.
    """
    source = require_watchlist_source(source)
    started_at = datetime.now(UTC)
    params = {"source": source, "start": start, "end": end, "limit": limit, "universe": universe}
    if source == "scanner":  # one list a day from daily bars: 09:00, before the open
        moments = [(at, "pre_market") for at in pre_market_times(start, end)]
    else:  # a vendor's own lists, as they changed through each day
        moments = [(at, "all") for at in session_steps(start, end, timedelta(minutes=every_minutes))]
    raw = replay_snapshots(source, moments, limit, universe)
    counts = store(check(raw), flow_run.id or str(uuid4()), source, params, started_at)
    get_run_logger().info("backfilled %s snapshots %s..%s: %s", source, start, end, counts.as_dict())
    return counts.as_dict()
