"""Reading stored headlines: each is tagged once per tagger version, and a vendor's edit is
read again."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tapeflow.ingest.news import check_news
from tapeflow.ingest.store import NEWS, store_batch
from tapeflow.news.enrich import NewsReader
from tapeflow.news.frames import news_row, raw_news

UTC = UTC
T = datetime(2024, 3, 5, 14, 0, tzinfo=UTC)


def store(warehouse, headline: str, fetched: datetime, run: str) -> None:
    checked = check_news(raw_news([news_row("vendor", id="7", published_at=T, fetched_at=fetched, headline=headline,
                                            tickers=["INTC"], payload={"id": 7, "title": headline})]))
    store_batch(warehouse, NEWS, checked.good, checked.rejected, run_id=run, source="vendor", feed="news",
                params={}, started_at=fetched)


def tags(warehouse) -> list[tuple]:
    with warehouse.read() as con:
        return con.execute("SELECT tickers, catalyst, evidence FROM news_tags ORDER BY tagged_at").fetchall()


def test_an_item_is_read_once_and_an_edit_is_read_again(settings, warehouse):
    store(warehouse, "Intel to acquire McAfee for $7.7 billion", T + timedelta(seconds=10), "r1")
    reader = NewsReader(settings, warehouse)
    assert reader.models == [] and "no sentiment model" in reader.missing
    assert reader.read_new() == {"tagged": 1, "scored": 0, "model": None}
    [(tickers, catalyst, evidence)] = tags(warehouse)
    assert (tickers, catalyst) == (["INTC"], "m&a") and json.loads(evidence) == {"INTC": ["vendor", "name"]}
    assert reader.read_new()["tagged"] == 0

    store(warehouse, "Intel to acquire McAfee for $7.7 billion", T + timedelta(minutes=5), "r2")  # fetched again
    assert reader.read_new()["tagged"] == 0
    store(warehouse, "Intel prices $2 billion stock offering", T + timedelta(minutes=9), "r3")  # the vendor's edit
    assert reader.read_new()["tagged"] == 1
    # The edit is read as a new version; the first version's reading stays, for replays.
    assert [(t, c) for t, c, _ in tags(warehouse)] == [(["INTC"], "m&a"), (["INTC"], "dilution")]
    assert reader.read_new()["tagged"] == 0
    with warehouse.read() as con:
        assert con.execute("SELECT headline FROM news_revisions").fetchall() == [("Intel to acquire McAfee for $7.7 billion",)]


def test_a_replay_sees_each_version_of_an_edited_headline_while_it_was_current(settings, warehouse):
    import polars as pl

    from tapeflow.news.enrich import SCORE_SCHEMA
    from tapeflow.news.features import news_view
    from tapeflow.strategy.history import BAR_COLUMNS, History
    from warehouse.reads import scored_news_between
    from warehouse.upsert import upsert

    store(warehouse, "Intel to acquire McAfee for $7.7 billion", T + timedelta(seconds=10), "r1")
    NewsReader(settings, warehouse).read_new()
    store(warehouse, "Intel prices $2 billion stock offering", T + timedelta(minutes=9), "r3")
    NewsReader(settings, warehouse).read_new()
    with warehouse.write() as con:  # what a model would say of each version
        versions = con.execute("SELECT news_hash, catalyst FROM news_tags").fetchall()
        upsert(con, "news_scores", pl.DataFrame(
            [{"source": "vendor", "id": "7", "model": "m", "label": "positive" if c == "m&a" else "negative",
              "score": 0.9, "polarity": 0.8 if c == "m&a" else -0.8, "news_hash": h, "scored_at": T} for h, c in versions],
            schema=SCORE_SCHEMA), ("source", "id", "model", "news_hash"))
        rows = scored_news_between(con, T - timedelta(days=1), T + timedelta(days=1), "m", "rules-v1")
    history = History(bars=pl.DataFrame(schema=BAR_COLUMNS),
                      news=news_view(rows, timedelta(seconds=5)))
    assert history.until(T).news.is_empty()  # fetched 10 s after publication, scored 5 s later
    before_edit = history.until(T + timedelta(minutes=9) - timedelta(microseconds=1)).news
    after_edit = history.until(T + timedelta(minutes=9, seconds=5)).news  # the edit, fetched at 9 min, scored
    assert before_edit.select("catalyst", "sentiment", "superseded_at").rows() == [("m&a", "positive", None)]
    # After the edit both versions are known: the first with when it was replaced (a decision
    # taken on it stands), the edit as the current one.
    assert after_edit.sort("knowable_at").select("catalyst", "sentiment", "superseded_at").rows() == [
        ("m&a", "positive", T + timedelta(minutes=9)), ("dilution", "negative", None)]
