"""Tasks for bar ingestion: fetch from a source, check, store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import polars as pl
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tapeflow.config import load_settings
from tapeflow.ingest.bars import CheckedBars, check_bars
from tapeflow.ingest.store import BARS, IngestCounts, store_batch
from tapeflow.model import Timeframe
from tapeflow.progress import tracked
from tapeflow.sources import Window
from tapeflow.venues.configured import market_data
from tasks.retries import transient_only
from warehouse import open_warehouse

# Frames are large and change every run: hashing them for a cache key would cost time for nothing.


@task(
    retries=3, retry_delay_seconds=[2, 10, 30], retry_jitter_factor=0.5,
    retry_condition_fn=transient_only, cache_policy=NO_CACHE,
)
def fetch_bars(source: str, symbols: Sequence[str] | None, timeframe: Timeframe, window: Window) -> pl.DataFrame:
    """Ask the source for bars; transient vendor failures are retried with backoff."""
    with tracked(f"fetch {timeframe} bars from {source}") as progress:
        raw = market_data(source, load_settings()).bars(symbols, timeframe, window)
        progress.update(raw.height, detail=f"{raw.height:,} rows")
    get_run_logger().info("fetched %d %s bars from %s", raw.height, timeframe, source)
    return raw


@task(cache_policy=NO_CACHE)
def check(raw: pl.DataFrame) -> CheckedBars:
    """Split the batch into bars to store and rows to quarantine."""
    checked = check_bars(raw)
    if checked.rejected.height:
        reasons = checked.rejected.group_by("reason").len().sort("len", descending=True)
        for reason, n in reasons.iter_rows():
            get_run_logger().warning("quarantining %d rows: %s", n, reason)
    return checked


# The tag lets a Prefect concurrency limit (created by `tapeflow serve`) serialise writers.
@task(retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE, tags=["duckdb-writer"])
def store(
    checked: CheckedBars, run_id: str, source: str, timeframe: Timeframe, params: dict, started_at: datetime
) -> IngestCounts:
    """Upsert bars, quarantine rejects and record the run and freshness in one transaction."""
    logger = get_run_logger()
    warehouse = open_warehouse(load_settings(), on_busy=logger.warning)
    with tracked(f"store {checked.good.height:,} {timeframe} bars") as progress:
        counts = store_batch(
            warehouse, BARS, checked.good, checked.rejected,
            run_id=run_id, source=source, feed=f"bars:{timeframe}", params=params, started_at=started_at,
        )
        progress.update(counts.stored, detail=f"{counts.inserted:,} new, {counts.updated:,} changed, "
                                              f"{counts.quarantined:,} quarantined")
    logger.info("stored %s in %s", counts.as_dict(), warehouse.path)
    return counts
