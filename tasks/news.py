"""Tasks for headlines: fetch from a news source, check, store; tag and score what is new."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import polars as pl
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tapeflow.config import load_settings
from tapeflow.ingest.news import CheckedNews, check_news
from tapeflow.ingest.store import NEWS, IngestCounts, store_batch
from tapeflow.news.enrich import NewsReader
from tapeflow.sources import Window
from tapeflow.venues.configured import news_source
from tasks.retries import transient_only
from warehouse import open_warehouse


@task(
    retries=3, retry_delay_seconds=[2, 10, 30], retry_jitter_factor=0.5,
    retry_condition_fn=transient_only, cache_policy=NO_CACHE,
)
def fetch_news(source: str, symbols: Sequence[str] | None, window: Window) -> pl.DataFrame:
    """Ask the source for headlines; transient vendor failures are retried with backoff."""
    adapter = news_source(source, load_settings())
    try:
        raw = adapter.news(symbols, window)
    finally:
        adapter.close()
    get_run_logger().info("fetched %d headlines from %s", raw.height, source)
    return raw


@task(cache_policy=NO_CACHE)
def check(raw: pl.DataFrame) -> CheckedNews:
    """Split the batch into items to store and rows to quarantine."""
    checked = check_news(raw)
    for reason, n in checked.rejected.group_by("reason").len().sort("len", descending=True).iter_rows():
        get_run_logger().warning("quarantining %d headlines: %s", n, reason)
    return checked


@task(retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE, tags=["duckdb-writer"])
def store(checked: CheckedNews, run_id: str, source: str, feed: str, params: dict, started_at: datetime) -> IngestCounts:
    """Upsert headlines, quarantine rejects, record the run and the feed's freshness."""
    warehouse = open_warehouse(load_settings(), on_busy=get_run_logger().warning)
    return store_batch(warehouse, NEWS, checked.good, checked.rejected, run_id=run_id, source=source, feed=feed,
                       params=params, started_at=started_at)


@task(cache_policy=NO_CACHE, tags=["duckdb-writer"])
def read_new() -> dict[str, object]:
    """Tickers and catalyst class, then sentiment under the current model, for every headline
    not yet read by them."""
    settings = load_settings()
    reader = NewsReader(settings, open_warehouse(settings))
    if reader.missing:
        get_run_logger().warning("headlines not scored: %s", reader.missing)
    return reader.read_new()
