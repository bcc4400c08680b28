"""Ingest bars from a market-data source into the warehouse."""

from __future__ import annotations

from datetime import date, datetime, timezone
from uuid import uuid4

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.hooks import alert_on_failure
from tapeflow.model import Timeframe
from tapeflow.sources import Window, require_source
from tasks.bars import check, fetch_bars, note_fetch_failure, store


@flow(name="ingest-bars", on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def ingest_bars(
    source: str = "replay",
    symbols: list[str] | None = None,
    timeframe: Timeframe = Timeframe.DAY,
    start: date = date(2009, 8, 21),
    end: date = date(2010, 8, 20),
) -> dict[str, int]:
    """Fetch bars for New York days start..end, store the good ones, quarantine the rest."""
    require_source(source)
    started_at = datetime.now(timezone.utc)
    params = {"source": source, "symbols": symbols, "timeframe": timeframe, "start": start, "end": end}

    fetched = fetch_bars(source, symbols, timeframe, Window.days(start, end), return_state=True)
    if fetched.is_failed():
        note_fetch_failure(source, f"bars:{timeframe}", fetched.message or "fetch failed")
        return fetched
    checked = check(fetched.result())
    counts = store(checked, flow_run.id or str(uuid4()), source, timeframe, params, started_at)

    get_run_logger().info(
        "%s %s bars: fetched %d, stored %d (new %d, changed %d), unchanged %d, quarantined %d",
        source, timeframe, counts.fetched, counts.stored, counts.inserted, counts.updated,
        counts.unchanged, counts.quarantined,
    )
    return counts.as_dict()
