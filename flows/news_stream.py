"""Listen to Alpaca's real-time news for a while, storing headlines as they arrive."""

from __future__ import annotations

from uuid import uuid4

import polars as pl
from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.hooks import alert_on_failure
from flows.parameters import UNSET, Symbols
from flows.secrets import vendor_settings
from tapeflow.ingest.news_stream import StreamStore
from tapeflow.ingest.store import record_failure
from tapeflow.sources.http import VendorError
from tapeflow.venues.alpaca.news_stream import AlpacaNewsStream
from warehouse import open_warehouse

SOURCE = "alpaca"
FEED = "news:stream"


@flow(name="stream-news", on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def stream_news(symbols: Symbols = UNSET, minutes: float = 390) -> dict[str, object]:
    """Stream news about `symbols` (None: all) for `minutes` (390: a regular session); each
    batch is checked and stored at once (good items upserted, the rest quarantined).

    Args:
        symbols: Only news about these symbols; empty means all.
        minutes: How long to stream (390: a regular session).
    """
    settings = vendor_settings()  # keys may live in Secret blocks
    logger = get_run_logger()
    store = StreamStore(settings, run_id=flow_run.id or str(uuid4()), source=SOURCE, feed=FEED,
                        params={"symbols": symbols, "minutes": minutes}, on_busy=logger.warning)
    if store.reader.missing:
        logger.warning("headlines not scored: %s", store.reader.missing)

    def store_and_log(raw: pl.DataFrame) -> None:
        logger.info("news batch %d: %s", store.totals["batches"] + 1, store(raw).as_dict())

    try:
        report = AlpacaNewsStream(settings).run(symbols, store_and_log, seconds=minutes * 60)
    except VendorError as exc:
        record_failure(open_warehouse(settings), source=SOURCE, feed=FEED, error=str(exc))
        raise
    totals = dict(store.totals)
    logger.info("news stream ended by %s (%d connections): %s", report.stopped_by, report.connections, totals)
    return {**totals, "connections": report.connections, "stopped_by": report.stopped_by}
