"""Raw news batches: the check that splits them into items to store and rows to quarantine,
and the replay source that reads captured headlines."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from tapeflow.config import PROJECT_DATA
from tapeflow.ingest.news import check_news
from tapeflow.news.frames import news_row, raw_news
from tapeflow.news.replay import ReplayNews
from tapeflow.schemas import NEWS_SCHEMA
from tapeflow.sources.base import Window

UTC = UTC
T = datetime(2024, 3, 5, 14, 0, tzinfo=UTC)


def row(**fields) -> dict:
    base = {"id": "1", "published_at": T, "fetched_at": T + timedelta(seconds=20), "headline": "Acme wins contract",
            "tickers": ["ACME"], "payload": {"id": 1}}
    return news_row("vendor", **{**base, **fields})


def test_good_items_keep_every_field_and_get_a_payload_hash():
    checked = check_news(raw_news([row(summary="s", url="u", category="contracts", author="a", tickers=["B", "A", "A"])]))
    assert checked.rejected.is_empty()
    good = checked.good.row(0, named=True)
    assert list(checked.good.schema) == list(NEWS_SCHEMA)
    assert good["tickers"] == ["A", "B"]  # a vendor's repeated tag is one ticker
    assert good["payload_hash"] and json.loads(good["payload"]) == {"id": 1}


@pytest.mark.parametrize("fields, reason", [
    ({"headline": "   "}, "headline must be non-empty"),
    ({"headline": None}, "headline is missing"),
    ({"id": None}, "id is missing"),
    ({"published_at": None}, "published_at is missing"),
    ({"tickers": ["acme"]}, "ticker must be 1-21 upper-case"),
    ({"published_at": T + timedelta(minutes=10)}, "an item cannot be seen before it exists"),
    ({"problem": "vendor stamp unreadable"}, "vendor stamp unreadable"),
])
def test_bad_items_go_to_the_quarantine_with_their_reason_and_payload(fields, reason):
    checked = check_news(raw_news([row(**fields), row(id="2")]))
    assert checked.good["id"].to_list() == ["2"]
    assert checked.rejected.height == 1
    assert reason in checked.rejected["reason"][0]
    assert checked.rejected["payload"][0] == '{"id": 1}'


def test_a_vendor_clock_a_little_ahead_is_accepted():
    checked = check_news(raw_news([row(published_at=T + timedelta(seconds=60))]))
    assert checked.good.height == 1


def test_an_item_repeated_in_one_batch_is_one_item_unless_the_copies_differ():
    checked = check_news(raw_news([row(), row()]))
    assert checked.good.height == 1 and checked.rejected.is_empty()
    checked = check_news(raw_news([row(), row(payload={"id": 1, "title": "edited"})]))
    assert checked.good.height == 1
    assert "duplicate of item '1' in the same batch, with a different payload" in checked.rejected["reason"][0]


def test_a_batch_without_the_raw_columns_is_refused():
    with pytest.raises(ValueError, match="lacks columns"):
        check_news(pl.DataFrame({"id": ["1"]}))


def test_the_bundled_replay_headlines_are_read_as_captured():
    raw = ReplayNews(PROJECT_DATA / "news").news(None, Window(datetime(2010, 8, 16, tzinfo=UTC), datetime(2010, 8, 21, tzinfo=UTC)))
    checked = check_news(raw)
    assert checked.good.height == 13
    # The sample holds one bad record on purpose: fetched before it was published.
    assert checked.rejected["reason"].to_list() == [
        "published_at 2010-08-20T18:00:00+00:00 is more than 0:05:00 after the item was fetched: "
        "an item cannot be seen before it exists"
    ]
    assert (checked.good["fetched_at"] >= checked.good["published_at"]).all()


def test_replay_filters_by_window_and_symbols(tmp_path):
    folder = tmp_path / "replay"
    folder.mkdir()
    items = [{"id": "a", "published_at": "2024-03-05T14:00:00Z", "fetched_at": "2024-03-05T14:00:10Z", "headline": "x", "tickers": ["AAA"]},
             {"id": "b", "published_at": "2024-03-06T14:00:00Z", "fetched_at": "2024-03-06T14:00:10Z", "headline": "y", "tickers": ["BBB"]}]
    (folder / "n.jsonl").write_text("\n".join(json.dumps(i) for i in items) + "\nnot json\n")
    source = ReplayNews(tmp_path)
    window = Window(datetime(2024, 3, 5, tzinfo=UTC), datetime(2024, 3, 7, tzinfo=UTC))
    assert source.news(["BBB"], window)["id"].to_list() == ["b"]
    raw = source.news(None, Window(datetime(2024, 3, 5, tzinfo=UTC), datetime(2024, 3, 6, tzinfo=UTC)))
    assert raw["id"].to_list() == ["a", None]  # the broken line has no date: kept for the quarantine
    assert "n.jsonl:3 is not JSON" in raw["problem"][1]
