"""Ingest bars from a market-data source into the warehouse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.hooks import alert_on_failure
from flows.parameters import UNSET, OptionalDay, OptionalMarketData, Symbols
from flows.secrets import vendor_settings
from tapeflow.calendar.windows import Skip, bars_due
from tapeflow.model import Timeframe
from tapeflow.sources import Window, require_source
from tasks.actions import check_price_jumps
from tasks.bars import check, fetch_bars, store
from tasks.freshness import note_fetch_failure


@flow(name="ingest-bars", on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def ingest_bars(
    source: OptionalMarketData = UNSET,
    symbols: Symbols = UNSET,
    timeframe: Timeframe = Timeframe.DAY,
    start: OptionalDay = UNSET,
    end: OptionalDay = UNSET,
) -> dict[str, object]:
    """Fetch bars for New York days start..end, store the good ones, quarantine the rest.

    Without start and end (a scheduled run): today's session for minute bars, the last
    closed session for daily bars; outside any session there is nothing to do.

    Args:
        source: Market data vendor; blank means TAPEFLOW_MARKET_DATA (replay: the bundled files).
        symbols: Symbols to fetch; empty means the source's whole list.
        timeframe: Bar length: 1d (daily) or 1m (one minute).
        start: First New York day; blank (with end blank) means today's or the last closed session.
        end: Last New York day; blank means the same as start.
    """
    source = require_source(source or vendor_settings().market_data_source)  # keys may live in Secret blocks
    if start is None or end is None:
        try:
            due = bars_due(timeframe, datetime.now(UTC))
        except Skip as skip:
            get_run_logger().info("skipped: %s", skip)
            return {"skipped": str(skip)}
        start, end = start or due.first, end or due.last
    started_at = datetime.now(UTC)
    params = {"source": source, "symbols": symbols, "timeframe": timeframe, "start": start, "end": end}

    fetched = fetch_bars(source, symbols, timeframe, Window.days(start, end), return_state=True)
    if fetched.is_failed():
        note_fetch_failure(source, f"bars:{timeframe}", fetched.message or "fetch failed")
    checked = check(fetched.result())  # re-raises the fetch error: the run fails with its message
    counts = store(checked, flow_run.id or str(uuid4()), source, timeframe, params, started_at)
    # A week back, so the first new bar is compared with the last one stored before it.
    findings = check_price_jumps(Timeframe(timeframe).value, start - timedelta(days=7), end, symbols)

    get_run_logger().info(
        "%s %s bars: fetched %d, stored %d (new %d, changed %d), unchanged %d, quarantined %d; "
        "%d price jumps no corporate action explains",
        source, timeframe, counts.fetched, counts.stored, counts.inserted, counts.updated,
        counts.unchanged, counts.quarantined, findings,
    )
    return {**counts.as_dict(), "findings": findings}
