"""BenzingaNews through the real requests client against FakeBenzinga on 127.0.0.1: what only
Benzinga does. What every news vendor must do is in tests/news/test_contract.py."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from tapeflow.ingest.news import check_news
from tests.fakes.benzinga import FakeBenzinga, story
from tests.news_venues import NEWS_VENUES, NOW, T0, UTC, WINDOW, NewsServers

VENUE = NEWS_VENUES["benzinga"]
KEY = VENUE.key
source = VENUE.source
stories = VENUE.items


@pytest.fixture
def fake(news_servers: NewsServers, tapeflow_home) -> FakeBenzinga:
    return news_servers.fresh(VENUE)


# -- requests and fields -----------------------------------------------------------------------


def test_first_request_is_exactly_the_documented_one(fake):
    source(fake).news(None, WINDOW)
    (request,) = fake.requests
    assert request.path == "/api/v2/news"
    # A day on each side of the window's UTC dates: Benzinga does not say which zone its dates are in.
    assert request.query == {
        "token": KEY,
        "dateFrom": "2026-03-08",
        "dateTo": "2026-03-10",
        "pageSize": "100",
        "page": "0",
        "displayOutput": "abstract",
    }
    assert request.headers["accept"] == "application/json"
    assert "authorization" not in request.headers


def test_every_page_comes_back_with_every_field_read(fake):
    fake.add_items(stories(7, tickers=("aapl",)))
    frame = source(fake, page_size=3).news(None, WINDOW)
    assert [r.query["page"] for r in fake.requests] == ["0", "1", "2"]
    assert sorted(frame["id"].to_list()) == [str(100 + i) for i in range(7)]
    first = frame.filter(frame["id"] == "100").row(0, named=True)
    sent = {**story(100, T0, ["aapl"]), "body": ""}  # abstract: no body
    assert first == {
        "source": "benzinga",
        "id": "100",
        "published_at": T0,
        "fetched_at": NOW,
        "headline": "Story 100",
        "summary": "Teaser of story 100.",
        "url": "https://www.benzinga.com/news/100",
        "tickers": ["AAPL"],
        "category": "News, Earnings",
        "author": "Benzinga Newsdesk",
        "payload": json.dumps(sent, sort_keys=True),
        "problem": None,
    }
    assert check_news(frame).good.height == 7


def test_a_full_last_page_is_followed_by_one_empty_page(fake):
    fake.add_items(stories(6))
    frame = source(fake, page_size=3).news(["AAPL"], WINDOW)
    assert [r.query["page"] for r in fake.requests] == ["0", "1", "2"]
    assert frame.height == 6


def test_symbols_filter_what_benzinga_sends(fake):
    fake.add_items([story(1, T0, ["AAPL"]), story(2, T0, ["MSFT"]), story(3, T0, ["TSLA"])])
    fake.add_items([story(4, T0, ["MSFT", "TSLA"])])
    frame = source(fake).news(["AAPL", "MSFT"], WINDOW)
    assert fake.requests[0].query["tickers"] == "AAPL,MSFT"
    assert sorted(frame["id"].to_list()) == ["1", "2", "4"]
    assert frame.filter(frame["id"] == "4")["tickers"].to_list() == [["MSFT", "TSLA"]]


def test_more_than_50_symbols_are_asked_in_chunks(fake):
    symbols = [f"S{i:02d}" for i in range(60)]
    fake.add_items([story(1, T0, ["S00"]), story(2, T0, ["S59"])])
    frame = source(fake).news(symbols, WINDOW)
    assert [len(r.query["tickers"].split(",")) for r in fake.requests] == [50, 10]
    assert frame["id"].to_list() == ["1", "2"]


def test_only_items_published_inside_the_window_are_rows(fake):
    end = WINDOW.end
    stamps = [T0 - timedelta(seconds=1), T0, end - timedelta(seconds=1), end, T0 - timedelta(hours=20)]
    fake.add_items([story(i, t, ["AAPL"]) for i, t in enumerate(stamps)])
    frame = source(fake).news(["AAPL"], WINDOW)
    assert len(fake.requests) == 1  # Benzinga sent all five: the cut is ours
    assert sorted(frame["published_at"].to_list()) == [T0, end - timedelta(seconds=1)]


def test_created_stamps_with_offsets_become_utc_and_unzoned_ones_are_problems(fake):
    base = story(1, T0, ["AAPL"])
    page = [
        base,
        {**base, "id": 2, "created": "Mon, 09 Mar 2026 15:00:00 +0100"},  # 14:00 UTC
        {**base, "id": 3, "created": "Mon, 09 Mar 2026 14:00:00 -0000"},  # RFC 2822: zone unknown
        {**base, "id": 4, "created": "2026-03-09T14:00:00Z"},
        {**base, "id": 5, "created": None},
    ]
    fake.malformed_next(json.dumps(page))
    frame = source(fake).news(["AAPL"], WINDOW)
    assert frame.select("id", "published_at", "problem").rows() == [
        ("1", T0, None),
        ("2", datetime(2026, 3, 9, 14, tzinfo=UTC), None),
        ("3", None, "created has no time zone: 'Mon, 09 Mar 2026 14:00:00 -0000'"),
        ("4", None, "created is not an RFC 2822 time: '2026-03-09T14:00:00Z'"),
        ("5", None, "created is missing or not text: None"),
    ]
    result = check_news(frame)
    assert result.good["id"].to_list() == ["1", "2"] and result.rejected.height == 3


def test_a_vendor_serving_the_same_page_again_stops_paging_with_a_problem_row(fake):
    fake.add_items(stories(5))
    fake.ignore_page = True
    frame = source(fake, page_size=2).news(["AAPL"], WINDOW)
    assert [r.query["page"] for r in fake.requests] == ["0", "1"]
    assert frame["id"].to_list() == ["104", "103", None]
    problem = "malformed page from benzinga: the same page came back twice; paging stopped"
    assert frame["problem"].to_list()[-1] == problem
