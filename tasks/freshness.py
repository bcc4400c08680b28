"""The one task every ingest flow uses when a fetch fails for good."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from tapeflow.config import load_settings
from tapeflow.ingest.store import record_failure
from warehouse import open_warehouse


@task(cache_policy=NO_CACHE, tags=["duckdb-writer"])
def note_fetch_failure(source: str, feed: str, error: str) -> None:
    """Keep the failure in the feed's freshness record, where monitoring looks."""
    record_failure(open_warehouse(load_settings()), source=source, feed=feed, error=error)
