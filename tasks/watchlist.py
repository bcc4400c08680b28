"""Tasks for watchlist snapshots: take them from the configured source, check, store."""

from __future__ import annotations

from contextlib import closing
from datetime import datetime

import polars as pl
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tapeflow.config import load_settings
from tapeflow.ingest.store import WATCHLIST, IngestCounts, store_batch
from tapeflow.ingest.watchlist import CheckedWatchlist, check_watchlist
from tapeflow.venues.configured import watchlist_source
from tasks.retries import transient_only
from warehouse import open_warehouse


@task(
    retries=3, retry_delay_seconds=[5, 15, 30], retry_jitter_factor=0.5,
    retry_condition_fn=transient_only, cache_policy=NO_CACHE,
)
def take_snapshot(source: str, session: str, as_of: datetime | None, limit: int) -> pl.DataFrame:
    """One snapshot from the watchlist source named (the live list when `as_of` is None)."""
    with closing(watchlist_source(source, load_settings())) as watchlist:
        return watchlist.snapshot(session, as_of, limit)


@task(
    retries=2, retry_delay_seconds=[30, 120], retry_condition_fn=transient_only, cache_policy=NO_CACHE,
)
def replay_snapshots(source: str, moments: list[tuple[datetime, str]], limit: int,
                     universe: str | None = None) -> pl.DataFrame:
    """The lists as they stood at each (as_of, session), from the watchlist source named (the
    scanner's among `universe`'s members of each moment, when named)."""
    with closing(watchlist_source(source, load_settings(), universe=universe)) as watchlist:
        return watchlist.snapshots(moments, limit)


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
