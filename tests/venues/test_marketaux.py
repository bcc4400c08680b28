"""MarketauxNews through the real requests client against FakeMarketaux on 127.0.0.1: what only
Marketaux does. What every news vendor must do is in tests/news/test_contract.py."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tapeflow.ingest.news import check_news
from tests.fakes.marketaux import FakeMarketaux, article
from tests.news_venues import NEWS_VENUES, NOW, T0, WINDOW, NewsServers

VENUE = NEWS_VENUES["marketaux"]
KEY = VENUE.key
source = VENUE.source
articles = VENUE.items


@pytest.fixture
def fake(news_servers: NewsServers, tapeflow_home) -> FakeMarketaux:
    return news_servers.fresh(VENUE)


# -- requests and fields -----------------------------------------------------------------------


def test_first_request_is_exactly_the_documented_one(fake):
    source(fake).news(["AAPL", "MSFT"], WINDOW)
    (request,) = fake.requests
    assert request.path == "/v1/news/all"
    # A second before the start: Marketaux does not say whether published_after is inclusive.
    assert request.query == {
        "api_token": KEY,
        "symbols": "AAPL,MSFT",
        "filter_entities": "true",
        "language": "en",
        "published_after": "2026-03-09T13:29:59",
        "published_before": "2026-03-09T15:30:00",
        "limit": "100",
        "page": "1",
    }


def test_every_page_comes_back_with_every_field_read(fake):
    fake.add_items(articles(7))
    frame = source(fake, page_size=3).news(["AAPL"], WINDOW)
    assert [r.query["page"] for r in fake.requests] == ["1", "2", "3"]
    assert sorted(frame["id"].to_list()) == [f"u{i}" for i in range(7)]
    first = frame.filter(frame["id"] == "u0").row(0, named=True)
    assert first == {
        "source": "marketaux",
        "id": "u0",
        "published_at": T0,
        "fetched_at": NOW,
        "headline": "Article u0",
        "summary": "Description of u0.",
        "url": "https://www.example-news.com/u0",
        "tickers": ["AAPL"],
        "category": None,
        "author": None,
        "payload": json.dumps(article("u0", T0, ["AAPL"]), sort_keys=True),
        "problem": None,
    }
    assert check_news(frame).good.height == 7


def test_a_plan_granting_fewer_items_than_asked_is_still_paged_to_the_end(fake):
    fake.add_items(articles(7))
    fake.plan_limit = 2
    frame = source(fake).news(["AAPL"], WINDOW)
    assert [r.query["page"] for r in fake.requests] == ["1", "2", "3", "4"]
    assert frame.height == 7


def test_paging_stops_when_found_is_reached_even_on_a_full_page(fake):
    fake.add_items(articles(6))
    frame = source(fake, page_size=3).news(["AAPL"], WINDOW)
    assert [r.query["page"] for r in fake.requests] == ["1", "2"]
    assert frame.height == 6


def test_symbols_filter_items_and_their_entities(fake):
    fake.add_items([article("a", T0, ["AAPL", "GOOG"]), article("m", T0, ["MSFT"]), article("t", T0, ["TSLA"])])
    frame = source(fake).news(["AAPL", "MSFT"], WINDOW)
    assert sorted(frame.select("id", "tickers").rows()) == [("a", ["AAPL"]), ("m", ["MSFT"])]


def test_only_items_published_inside_the_window_come_back(fake):
    end = WINDOW.end
    stamps = [T0 - timedelta(seconds=1), T0, T0 + timedelta(microseconds=1), end - timedelta(seconds=1), end]
    fake.add_items([article(f"s{i}", t, ["AAPL"]) for i, t in enumerate(stamps)])
    frame = source(fake).news(["AAPL"], WINDOW)
    assert sorted(frame["published_at"].to_list()) == [T0, T0 + timedelta(microseconds=1), end - timedelta(seconds=1)]


def test_a_page_without_usable_meta_keeps_its_items_and_stops_paging(fake):
    page = {"data": [article("a", T0, ["AAPL"])]}
    fake.malformed_next(json.dumps(page))
    frame = source(fake).news(["AAPL"], WINDOW)
    assert frame["id"].to_list() == ["a", None]
    assert frame["problem"].to_list() == [
        None, "malformed page from marketaux: meta None cannot say whether more pages follow; paging stopped"
    ]
    assert len(fake.requests) == 1
