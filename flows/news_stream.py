"""Listen to Alpaca's real-time news for a while, storing headlines as they arrive."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from uuid import uuid4

import polars as pl
from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.hooks import alert_on_failure
from tapeflow.config import load_settings
from tapeflow.ingest import NEWS, record_failure, store_batch
from tapeflow.news.alpaca_stream import AlpacaNewsStream
from tapeflow.news.enrich import NewsReader
from tapeflow.news.frames import check_news
from tapeflow.sources.http import VendorError
from warehouse import open_warehouse

SOURCE = "alpaca"
FEED = "news:stream"


@flow(name="stream-news", on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def stream_news(symbols: list[str] | None = None, minutes: float = 390) -> dict[str, object]:
    """Stream news about `symbols` (None: all) for `minutes` (390: a regular session); each
    batch is checked and stored at once (good items upserted, the rest quarantined)."""
    settings = load_settings()
    logger = get_run_logger()
    run_id = flow_run.id or str(uuid4())
    params = {"symbols": symbols, "minutes": minutes}
    totals: Counter[str] = Counter()
    reader = NewsReader(settings, open_warehouse(settings))  # loaded once: a strategy waits on every batch
    if reader.missing:
        logger.warning("headlines not scored: %s", reader.missing)

    def store(raw: pl.DataFrame) -> None:
        # One ingest run per batch; the warehouse is held only while the batch is written.
        totals["batches"] += 1
        checked = check_news(raw)
        counts = store_batch(
            open_warehouse(settings, on_busy=logger.warning), NEWS, checked.good, checked.rejected,
            run_id=f"{run_id}:{totals['batches']}", source=SOURCE, feed=FEED, params=params,
            started_at=raw["fetched_at"].min() or datetime.now(timezone.utc),
        )
        totals.update(counts.as_dict())
        read = reader.read_new()
        totals.update({"tagged": read["tagged"], "scored": read["scored"]})
        logger.info("news batch %d: %s", totals["batches"], counts.as_dict())

    try:
        report = AlpacaNewsStream(settings).run(symbols, store, seconds=minutes * 60)
    except VendorError as exc:
        record_failure(open_warehouse(settings), source=SOURCE, feed=FEED, error=str(exc))
        raise
    logger.info("news stream ended by %s (%d connections): %s", report.stopped_by, report.connections, dict(totals))
    return {**dict(totals), "connections": report.connections, "stopped_by": report.stopped_by}
