"""PolygonNews through the real requests client against FakePolygonNews on 127.0.0.1: what only
Polygon does. What every news vendor must do is in tests/news/test_contract.py."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tapeflow.ingest.news import check_news
from tapeflow.sources.base import Window
from tests.fakes.polygon_news import FakePolygonNews, article
from tests.news_venues import NEWS_VENUES, NOW, T0, WINDOW, NewsServers

VENUE = NEWS_VENUES["polygon"]
KEY = VENUE.key
source = VENUE.source
items = VENUE.items


@pytest.fixture
def fake(news_servers: NewsServers, tapeflow_home) -> FakePolygonNews:
    return news_servers.fresh(VENUE)


# -- requests, fields and paging ---------------------------------------------------------------


def test_first_request_is_exactly_the_documented_one(fake):
    source(fake).news(["AAPL"], WINDOW)
    (request,) = fake.requests
    assert request.path == "/v2/reference/news"
    assert request.query == {
        "ticker": "AAPL",
        "published_utc.gte": "2026-03-09T13:30:00Z",
        "published_utc.lt": "2026-03-09T15:30:00Z",
        "order": "asc",
        "sort": "published_utc",
        "limit": "1000",
    }
    assert request.headers["authorization"] == f"Bearer {KEY}"


def test_every_page_comes_back_in_order_with_every_field_read(fake):
    fake.add_items(items(7))
    frame = source(fake, page_size=3).news(["AAPL"], WINDOW)
    assert frame["id"].to_list() == [f"n{i}" for i in range(7)]
    later = [r.query for r in fake.requests[1:]]
    assert len(fake.requests) == 3 and all(set(q) == {"cursor"} for q in later)
    first = frame.row(0, named=True)
    assert first == {
        "source": "polygon",
        "id": "n0",
        "published_at": T0,
        "fetched_at": NOW,
        "headline": "Headline n0",
        "summary": "What happened to AAPL.",
        "url": "https://www.fool.com/investing/n0/",
        "tickers": ["AAPL"],
        "category": "Technology, Earnings",
        "author": "A. Writer",
        "payload": json.dumps(article("n0", T0, ["AAPL"]), sort_keys=True),
        "problem": None,
    }
    result = check_news(frame)
    assert result.good.height == 7 and result.rejected.height == 0


def test_symbols_are_asked_one_after_another_and_a_shared_item_comes_twice(fake):
    fake.add_items([article("a", T0, ["AAPL"]), article("m", T0 + timedelta(minutes=1), ["MSFT"])])
    fake.add_items([article("both", T0 + timedelta(minutes=2), ["AAPL", "MSFT"])])
    fake.add_items([article("other", T0 + timedelta(minutes=3), ["TSLA"])])
    frame = source(fake).news(["AAPL", "MSFT"], WINDOW)
    assert [r.query["ticker"] for r in fake.requests] == ["AAPL", "MSFT"]
    assert frame["id"].to_list() == ["a", "both", "m", "both"]
    result = check_news(frame)
    assert result.good["id"].to_list() == ["a", "both", "m"]
    assert result.rejected.is_empty()  # the same item twice is one item, not a reject


def test_only_items_published_inside_the_window_come_back(fake):
    end = WINDOW.end
    stamps = [T0 - timedelta(seconds=1), T0, end - timedelta(seconds=1), end]
    fake.add_items([article(f"s{i}", t, ["AAPL"]) for i, t in enumerate(stamps)])
    assert source(fake).news(["AAPL"], WINDOW)["published_at"].to_list() == [T0, end - timedelta(seconds=1)]


def test_a_window_with_fractions_of_a_second_is_asked_in_whole_seconds_and_cut_exactly(fake):
    fake.add_items([article("at", T0, ["AAPL"]), article("after", T0 + timedelta(seconds=1), ["AAPL"])])
    window = Window(T0 + timedelta(milliseconds=500), T0 + timedelta(seconds=1, milliseconds=500))
    frame = source(fake).news(["AAPL"], window)
    query = fake.requests[0].query
    assert (query["published_utc.gte"], query["published_utc.lt"]) == ("2026-03-09T13:30:00Z", "2026-03-09T13:30:02Z")
    assert frame["id"].to_list() == ["after"]


def test_next_url_naming_another_host_is_sent_to_the_configured_one(fake):
    fake.add_items(items(5))
    fake.next_host = "https://api.polygon.io"
    frame = source(fake, page_size=2).news(["AAPL"], WINDOW)
    assert frame.height == 5 and len(fake.requests) == 3


def test_a_next_url_repeating_a_page_stops_paging_with_a_problem_row(fake):
    fake.add_items(items(5))
    fake.repeat_cursor = True
    frame = source(fake, page_size=2).news(["AAPL"], WINDOW)
    assert len(fake.requests) == 2
    assert frame["id"].to_list() == ["n0", "n1", "n2", "n3", None]
    assert frame["problem"].to_list()[-1] == (
        "malformed page from polygon: its next-page link repeats a page already read; paging stopped"
    )
    assert check_news(frame).rejected.height == 1


def test_malformed_json_is_one_quarantined_row_and_the_next_symbol_still_comes(fake):
    fake.add_items([article("m", T0, ["MSFT"])])
    body = '{"results": [ {"id": "x",'
    fake.malformed_next(body)
    frame = source(fake).news(["AAPL", "MSFT"], WINDOW)
    broken = frame.row(0, named=True)
    assert (broken["payload"], broken["fetched_at"], broken["id"]) == (body, NOW, None)
    assert broken["problem"].startswith("malformed JSON from polygon: ")
    result = check_news(frame)
    assert result.good["id"].to_list() == ["m"]
    assert result.rejected["payload"].to_list() == [body]


def test_rows_that_could_not_be_dated_stay_for_the_quarantine(fake):
    fake.malformed_next(json.dumps({"status": "OK", "results": [article("x", T0, ["AAPL"], published_utc="soon")]}))
    frame = source(fake).news(["AAPL"], Window(T0 + timedelta(days=30), T0 + timedelta(days=31)))
    assert frame.select("id", "problem").rows() == [("x", "published_utc is not an ISO 8601 time: 'soon'")]
