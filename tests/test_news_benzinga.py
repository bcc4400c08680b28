"""BenzingaNews through the real requests client against FakeBenzinga on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from tapeflow.config import Settings
from tapeflow.news.base import NewsSource
from tapeflow.news.benzinga import BenzingaNews
from tapeflow.news.frames import check_news, empty_raw_news
from tapeflow.sources.base import Window
from tapeflow.sources.http import HttpPolicy, VendorAuthError, VendorError
from tests.fakes.benzinga import FakeBenzinga, story

KEY = "SEKRET-benzinga-93d0f2"
UTC = timezone.utc
FAST = HttpPolicy(timeout_s=2.0, attempts=3, backoff_s=0.01, jitter=0.0)
T0 = datetime(2026, 3, 9, 13, 30, tzinfo=UTC)  # 09:30 New York (EDT)
WINDOW = Window(T0, T0 + timedelta(hours=2))
NOW = datetime(2026, 3, 10, tzinfo=UTC)
PATH = "/api/v2/news"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeBenzinga]:
    # One server for the module: each stop costs up to 0.5 s.
    with FakeBenzinga(KEY) as running:
        yield running


@pytest.fixture
def fake(server: FakeBenzinga, tapeflow_home) -> FakeBenzinga:
    server.reset()
    return server


def source(fake: FakeBenzinga, sleeps: list[float] | None = None, page_size: int = 100, **settings) -> BenzingaNews:
    config = Settings(**{"benzinga_api_key": KEY, "benzinga_url": fake.url, **settings})
    sleep = sleeps.append if sleeps is not None else (lambda _: None)
    return BenzingaNews(config, policy=FAST, sleep=sleep, now=lambda: NOW, page_size=page_size)


def stories(count: int, tickers: tuple[str, ...] = ("AAPL",), start: datetime = T0) -> list[dict]:
    return [story(100 + i, start + timedelta(minutes=10 * i), list(tickers)) for i in range(count)]


# -- shape and requests ------------------------------------------------------------------------


def test_it_is_a_news_source_with_the_raw_columns(fake):
    fake.add_items(stories(1))
    benzinga = source(fake)
    frame = benzinga.news(["AAPL"], WINDOW)
    assert isinstance(benzinga, NewsSource) and benzinga.name == "benzinga"
    assert frame.schema == empty_raw_news().schema
    assert frame["source"].to_list() == ["benzinga"]


def test_first_request_is_exactly_the_documented_one(fake):
    source(fake).news(None, WINDOW)
    (request,) = fake.requests
    assert request.path == PATH
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


# -- faults ------------------------------------------------------------------------------------


def test_a_429_is_retried_after_what_retry_after_says(fake):
    fake.add_items(stories(2))
    fake.fail_next(429, retry_after="3")
    sleeps: list[float] = []
    frame = source(fake, sleeps).news(["AAPL"], WINDOW)
    assert sleeps == [3.0] and frame.height == 2


def test_5xx_every_time_is_a_vendor_error_without_the_key(fake):
    fake.fail_next(502, times=3)
    with pytest.raises(VendorError) as caught:
        source(fake).news(["AAPL"], WINDOW)
    assert str(caught.value) == f"benzinga {PATH}: gave up after 3 attempts (HTTP 502)"
    assert KEY not in "".join(traceback.format_exception(caught.value))


def test_a_400_is_not_retried_and_its_error_does_not_quote_the_query(fake):
    fake.fail_next(400)
    with pytest.raises(VendorError) as caught:
        source(fake).news(["AAPL"], WINDOW)
    assert str(caught.value) == f"benzinga {PATH}: HTTP 400" and len(fake.requests) == 1
    assert KEY not in "".join(traceback.format_exception(caught.value))


def test_a_wrong_key_is_an_auth_error_naming_the_setting_never_the_key(fake, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "SEKRET-wrong-benzinga-77c1"
    config = Settings(benzinga_api_key=wrong, benzinga_url=fake.url)
    with pytest.raises(VendorAuthError) as caught:
        BenzingaNews(config, policy=FAST, sleep=lambda _: None).news(["AAPL"], WINDOW)
    error = caught.value
    assert str(error) == "benzinga refused the credentials (HTTP 401): check TAPEFLOW_BENZINGA_API_KEY"
    assert fake.requests[0].query["token"] == wrong  # the key did travel, in the query
    shown = str(error) + repr(error) + "".join(traceback.format_exception(error)) + caplog.text
    assert wrong not in shown


def test_a_missing_key_names_the_setting():
    with pytest.raises(VendorAuthError, match="benzinga needs TAPEFLOW_BENZINGA_API_KEY to be set"):
        BenzingaNews(Settings(benzinga_api_key=None))


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('[{"id": 1,', "malformed JSON from benzinga: "),
        ('{"message": "oops"}', "malformed page from benzinga: expected a JSON list, got dict"),
    ],
)
def test_a_malformed_page_is_one_quarantined_row(fake, body, problem):
    fake.malformed_next(body)
    frame = source(fake).news(["AAPL"], WINDOW)
    (row,) = frame.rows(named=True)
    assert row["payload"] == body and row["problem"].startswith(problem) and row["fetched_at"] == NOW
    assert check_news(frame).rejected["payload"].to_list() == [body]


def test_a_malformed_item_has_its_problem_and_the_others_are_good(fake):
    good = story(1, T0, ["AAPL"])
    page = [
        good,
        {**good, "id": 2, "stocks": [{"name": 5}]},
        {**good, "id": 3, "channels": "News"},
        {**good, "id": 4.5},
        "a story",
    ]
    fake.malformed_next(json.dumps(page))
    frame = source(fake).news(["AAPL"], WINDOW)
    assert frame.select("id", "problem").rows() == [
        ("1", None),
        ("2", "stocks entry's name is not text: {'name': 5}"),
        ("3", "channels is not a list: 'News'"),
        (None, "id is not an id: 4.5"),
        (None, "benzinga item is not a JSON object"),
    ]
    result = check_news(frame)
    assert result.good["id"].to_list() == ["1"] and result.rejected.height == 4


# -- secrets -----------------------------------------------------------------------------------


def test_the_query_key_reaches_no_log_row_or_repr(fake, caplog):
    caplog.set_level(logging.DEBUG)
    fake.add_items(stories(3))
    benzinga = source(fake, page_size=2)
    frame = benzinga.news(["AAPL"], WINDOW)
    assert frame.height == 3 and all(r.query["token"] == KEY for r in fake.requests)
    assert "urllib3.connectionpool" in caplog.text  # the request lines were logged, without their query
    assert KEY not in frame.write_json() + repr(benzinga) + caplog.text


def test_a_page_quoting_the_key_is_stored_without_it(fake):
    fake.malformed_next(f'{{"error": "token {KEY} expired"')
    (payload,) = source(fake).news(["AAPL"], WINDOW)["payload"].to_list()
    assert payload == '{"error": "token ********** expired"'
