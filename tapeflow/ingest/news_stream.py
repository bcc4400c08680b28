"""Storing a news stream as it arrives: each batch checked, stored as an ingest run of its
own (good items upserted, the rest quarantined) and read at once (tagged, scored)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import cast

import polars as pl

from tapeflow.config import Settings
from tapeflow.ingest.news import check_news
from tapeflow.ingest.store import NEWS, IngestCounts, store_batch
from tapeflow.news.enrich import NewsReader
from warehouse import open_warehouse


class StreamStore:
    """The `on_batch` of a news stream; `totals` adds up what every batch did."""

    def __init__(self, settings: Settings, *, run_id: str, source: str, feed: str, params: dict[str, object],
                 on_busy: Callable[[str], None] | None = None) -> None:
        self.settings, self.run_id, self.source, self.feed, self.params = settings, run_id, source, feed, params
        self.on_busy = on_busy
        self.totals: Counter[str] = Counter()
        # Loaded once: a strategy waits on every batch.
        self.reader = NewsReader(settings, open_warehouse(settings))

    def __call__(self, raw: pl.DataFrame) -> IngestCounts:
        # One ingest run per batch; the warehouse is held only while the batch is written.
        self.totals["batches"] += 1
        checked = check_news(raw)
        counts = store_batch(
            open_warehouse(self.settings, on_busy=self.on_busy), NEWS, checked.good, checked.rejected,
            run_id=f"{self.run_id}:{self.totals['batches']}", source=self.source, feed=self.feed,
            params=self.params, started_at=cast("datetime | None", raw["fetched_at"].min()) or datetime.now(UTC),
        )
        read = self.reader.read_new()
        self.totals.update({**counts.as_dict(), "tagged": read["tagged"], "scored": read["scored"]})
        return counts
