"""Tasks of the monitor: look (warehouse and broker), then alert and leave a heartbeat."""

from __future__ import annotations

from datetime import datetime

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tapeflow.config import load_settings
from tapeflow.ops.alert_book import book_from_settings
from tapeflow.ops.checks import Finding
from tapeflow.ops.monitor import MonitorCounts, collect, raise_findings, record_pass
from warehouse import open_warehouse


@task(cache_policy=NO_CACHE)
def look(now: datetime, broker: bool) -> list[Finding]:
    """Every check at `now`; the warehouse and the broker are each held only while read."""
    settings = load_settings()
    findings = collect(settings, open_warehouse(settings, on_busy=get_run_logger().warning), now, broker=broker)
    for finding in findings:
        get_run_logger().warning("%s: %s", finding.key, finding.alert.text)
    return findings


@task(cache_policy=NO_CACHE, tags=["duckdb-writer"])
def alert(findings: list[Finding], now: datetime) -> MonitorCounts:
    """Raise the findings through the recorded, deduplicated alert book, summarise the repeats
    of closed windows; note this pass."""
    settings = load_settings()
    warehouse = open_warehouse(settings, on_busy=get_run_logger().warning)
    counts = raise_findings(book_from_settings(settings, warehouse), findings, now)
    record_pass(warehouse, now, counts)
    return counts
