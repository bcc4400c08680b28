"""Reading stored headlines: each is tagged once per tagger version, and a vendor's edit is
read again."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from tapeflow.ingest import NEWS, store_batch
from tapeflow.news.enrich import NewsReader
from tapeflow.news.frames import check_news, news_row, raw_news

UTC = timezone.utc
T = datetime(2024, 3, 5, 14, 0, tzinfo=UTC)


def store(warehouse, headline: str, fetched: datetime, run: str) -> None:
    checked = check_news(raw_news([news_row("vendor", id="7", published_at=T, fetched_at=fetched, headline=headline,
                                            tickers=["INTC"], payload={"id": 7, "title": headline})]))
    store_batch(warehouse, NEWS, checked.good, checked.rejected, run_id=run, source="vendor", feed="news",
                params={}, started_at=fetched)


def tags(warehouse) -> list[tuple]:
    with warehouse.read() as con:
        return con.execute("SELECT tickers, catalyst, evidence FROM news_tags").fetchall()


def test_an_item_is_read_once_and_an_edit_is_read_again(settings, warehouse):
    store(warehouse, "Intel to acquire McAfee for $7.7 billion", T + timedelta(seconds=10), "r1")
    reader = NewsReader(settings, warehouse)
    assert reader.model is None and "no sentiment model" in reader.missing
    assert reader.read_new() == {"tagged": 1, "scored": 0, "model": None}
    [(tickers, catalyst, evidence)] = tags(warehouse)
    assert (tickers, catalyst) == (["INTC"], "m&a") and json.loads(evidence) == {"INTC": ["vendor", "name"]}
    assert reader.read_new()["tagged"] == 0

    store(warehouse, "Intel to acquire McAfee for $7.7 billion", T + timedelta(minutes=5), "r2")  # fetched again
    assert reader.read_new()["tagged"] == 0
    store(warehouse, "Intel prices $2 billion stock offering", T + timedelta(minutes=9), "r3")  # the vendor's edit
    assert reader.read_new()["tagged"] == 1
    assert [(t, c) for t, c, _ in tags(warehouse)] == [(["INTC"], "dilution")]
    assert reader.read_new()["tagged"] == 0
    with warehouse.read() as con:
        assert con.execute("SELECT headline FROM news_revisions").fetchall() == [("Intel to acquire McAfee for $7.7 billion",)]
