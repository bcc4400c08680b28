"""TiingoNews through the real requests client against FakeTiingo on 127.0.0.1: what only
Tiingo does. What every news vendor must do is in tests/news/test_contract.py."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tapeflow.ingest.news import check_news
from tests.fakes.tiingo import FakeTiingo, article
from tests.news_venues import NEWS_VENUES, NOW, T0, WINDOW, NewsServers

VENUE = NEWS_VENUES["tiingo"]
KEY = VENUE.key
source = VENUE.source
articles = VENUE.items


@pytest.fixture
def fake(news_servers: NewsServers, tapeflow_home) -> FakeTiingo:
    return news_servers.fresh(VENUE)


# -- requests and fields -----------------------------------------------------------------------


def test_first_request_is_exactly_the_documented_one(fake):
    source(fake).news(["AAPL", "BRK.B"], WINDOW)
    (request,) = fake.requests
    assert request.path == "/tiingo/news"
    # A day on each side of the window's UTC dates: Tiingo does not say which zone its dates are in.
    assert request.query == {
        "tickers": "aapl,brk.b",
        "startDate": "2026-03-08",
        "endDate": "2026-03-10",
        "sortBy": "publishedDate",
        "limit": "1000",
        "offset": "0",
    }
    assert request.headers["authorization"] == f"Token {KEY}"


def test_every_page_comes_back_with_every_field_read(fake):
    fake.add_items(articles(7, tickers=("AAPL", "MSFT")))
    frame = source(fake, page_size=3).news(["AAPL"], WINDOW)
    assert [r.query["offset"] for r in fake.requests] == ["0", "3", "6"]
    assert sorted(frame["id"].to_list()) == [str(100 + i) for i in range(7)]
    first = frame.filter(frame["id"] == "100").row(0, named=True)
    assert first == {
        "source": "tiingo",
        "id": "100",
        "published_at": T0,
        "fetched_at": NOW,
        "headline": "Article 100",
        "summary": "Description of article 100.",
        "url": "https://www.cnbc.com/100.html",
        "tickers": ["AAPL", "MSFT"],  # Tiingo sends them lower-case
        "category": "Earnings, Technology",
        "author": None,
        "payload": json.dumps(article(100, T0, ["AAPL", "MSFT"]), sort_keys=True),
        "problem": None,
    }
    assert json.loads(first["payload"])["tickers"] == ["aapl", "msft"]  # the payload is as sent
    assert check_news(frame).good.height == 7


def test_a_full_last_page_is_followed_by_one_empty_page(fake):
    fake.add_items(articles(6))
    frame = source(fake, page_size=3).news(["AAPL"], WINDOW)
    assert [r.query["offset"] for r in fake.requests] == ["0", "3", "6"]
    assert frame.height == 6


def test_symbols_filter_what_tiingo_sends(fake):
    fake.add_items([article(1, T0, ["AAPL"]), article(2, T0, ["MSFT"]), article(3, T0, ["TSLA"])])
    frame = source(fake).news(["AAPL", "MSFT"], WINDOW)
    assert sorted(frame["id"].to_list()) == ["1", "2"]


def test_items_tiingo_sends_from_outside_the_window_are_not_rows(fake):
    end = WINDOW.end
    stamps = [T0 - timedelta(seconds=1), T0, end - timedelta(seconds=1), end, T0 - timedelta(days=1)]
    fake.add_items([article(i, t, ["AAPL"]) for i, t in enumerate(stamps)])
    frame = source(fake).news(["AAPL"], WINDOW)
    assert len(fake.requests) == 1  # Tiingo sent all five (dates only): the cut is ours
    assert sorted(frame["published_at"].to_list()) == [T0, end - timedelta(seconds=1)]
