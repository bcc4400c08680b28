"""Tasks for corporate actions: fetch from a source, check, store, and the price-jump check
that runs after bars or actions change."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

import polars as pl
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tapeflow.config import load_settings
from tapeflow.ingest.actions import CheckedActions, check_actions
from tapeflow.ingest.price_jumps import record_jumps
from tapeflow.ingest.store import ACTIONS, IngestCounts, store_batch
from tapeflow.venues.configured import action_source
from tasks.retries import transient_only
from warehouse import open_warehouse


@task(
    retries=3, retry_delay_seconds=[2, 10, 30], retry_jitter_factor=0.5,
    retry_condition_fn=transient_only, cache_policy=NO_CACHE,
)
def fetch_actions(source: str, symbols: Sequence[str] | None, first: date, last: date) -> pl.DataFrame:
    """Ask the source for actions with an ex-date in first..last; transient failures are retried."""
    raw = action_source(source, load_settings()).actions(symbols, first, last)
    get_run_logger().info("fetched %d corporate actions from %s", raw.height, source)
    return raw


@task(cache_policy=NO_CACHE)
def check(raw: pl.DataFrame) -> CheckedActions:
    """Split the batch into actions to store and rows to quarantine."""
    checked = check_actions(raw)
    for reason, n in checked.rejected.group_by("reason").len().sort("len", descending=True).iter_rows():
        get_run_logger().warning("quarantining %d actions: %s", n, reason)
    return checked


@task(retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE, tags=["duckdb-writer"])
def store(checked: CheckedActions, run_id: str, source: str, params: dict, started_at: datetime) -> IngestCounts:
    """Upsert actions, quarantine rejects and record the run and freshness in one transaction."""
    warehouse = open_warehouse(load_settings(), on_busy=get_run_logger().warning)
    return store_batch(warehouse, ACTIONS, checked.good, checked.rejected, run_id=run_id, source=source,
                       feed="corporate_actions", params=params, started_at=started_at)


@task(retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE, tags=["duckdb-writer"])
def check_price_jumps(timeframe: str, first: date, last: date, symbols: list[str] | None = None) -> int:
    """Record the moves no corporate action explains over first..last; returns how many."""
    found = record_jumps(open_warehouse(load_settings(), on_busy=get_run_logger().warning), timeframe, first, last, symbols)
    for symbol, ts, detail in found.select("symbol", "ts", "detail").iter_rows():
        get_run_logger().warning("data finding %s %s: %s", symbol, ts, detail)
    return found.height
