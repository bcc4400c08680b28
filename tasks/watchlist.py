"""Tasks for watchlist snapshots: fetch from BullAlert or scan the warehouse, check, store."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tapeflow.calendar.exchange import get_calendar
from tapeflow.config import load_settings
from tapeflow.ingest.store import WATCHLIST, IngestCounts, store_batch
from tapeflow.ingest.watchlist import CheckedWatchlist, check_watchlist
from tapeflow.schemas import empty_raw_watchlist
from tapeflow.sources.scanner import ScannerParams, scan
from tapeflow.venues.bullalert import BullAlertSource
from tasks.retries import transient_only
from warehouse import open_warehouse
from warehouse.reads import daily_bars_until


@task(
    retries=3, retry_delay_seconds=[5, 15, 30], retry_jitter_factor=0.5,
    retry_condition_fn=transient_only, cache_policy=NO_CACHE,
)
def fetch_bullalert(session: str, as_of: datetime | None, limit: int) -> pl.DataFrame:
    """One BullAlert snapshot (live when `as_of` is None)."""
    return BullAlertSource(load_settings()).snapshot(session=session, as_of=as_of, limit=limit)


@task(
    retries=2, retry_delay_seconds=[30, 120], retry_condition_fn=transient_only, cache_policy=NO_CACHE,
)
def fetch_bullalert_history(first: date, last: date, every_minutes: int, limit: int) -> pl.DataFrame:
    """BullAlert's lists as of every `every_minutes` through the extended hours of each session."""
    source = BullAlertSource(load_settings())
    days = get_calendar().sessions(first, last)
    batches = [
        source.history("all", day.pre_open, day.close, timedelta(minutes=every_minutes), limit=limit) for day in days
    ]
    return pl.concat(batches, how="vertical_relaxed") if batches else empty_raw_watchlist()


@task(cache_policy=NO_CACHE)
def scan_warehouse(sessions: list[tuple[datetime, str]], params: ScannerParams) -> pl.DataFrame:
    """Scanner snapshots at each (as_of, session), from the daily bars knowable then."""
    if not sessions:
        return empty_raw_watchlist()
    with open_warehouse(load_settings()).read() as con:
        bars = daily_bars_until(con, max(as_of for as_of, _ in sessions))
    snapshots = [scan(bars, as_of, session, params) for as_of, session in sessions]
    return pl.concat(snapshots, how="vertical_relaxed") if snapshots else empty_raw_watchlist()


@task(cache_policy=NO_CACHE)
def check(raw: pl.DataFrame) -> CheckedWatchlist:
    """Split the snapshot rows into rows to store and rows to quarantine."""
    checked = check_watchlist(raw)
    for reason, n in checked.rejected.group_by("reason").len().iter_rows():
        get_run_logger().warning("quarantining %d watchlist rows: %s", n, reason)
    return checked


@task(retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE, tags=["duckdb-writer"])
def store(checked: CheckedWatchlist, run_id: str, source: str, params: dict, started_at: datetime) -> IngestCounts:
    """Upsert snapshot rows (a repeated snapshot changes nothing), quarantine the rest."""
    warehouse = open_warehouse(load_settings(), on_busy=get_run_logger().warning)
    return store_batch(
        warehouse, WATCHLIST, checked.good, checked.rejected,
        run_id=run_id, source=source, feed="watchlist", params=params, started_at=started_at,
    )
