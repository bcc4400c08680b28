"""TiingoNews through the real requests client against FakeTiingo on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from tapeflow.config import Settings
from tapeflow.news.base import NewsSource
from tapeflow.news.frames import check_news, empty_raw_news
from tapeflow.news.tiingo import TiingoNews
from tapeflow.sources.base import Window
from tapeflow.sources.http import HttpPolicy, VendorAuthError, VendorError
from tests.fakes.tiingo import FakeTiingo, article

KEY = "SEKRET-tiingo-b62d0a"
UTC = timezone.utc
FAST = HttpPolicy(timeout_s=2.0, attempts=3, backoff_s=0.01, jitter=0.0)
T0 = datetime(2026, 3, 9, 13, 30, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(hours=2))
NOW = datetime(2026, 3, 10, tzinfo=UTC)
PATH = "/tiingo/news"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeTiingo]:
    # One server for the module: each stop costs up to 0.5 s.
    with FakeTiingo(KEY) as running:
        yield running


@pytest.fixture
def fake(server: FakeTiingo, tapeflow_home) -> FakeTiingo:
    server.reset()
    return server


def source(fake: FakeTiingo, sleeps: list[float] | None = None, page_size: int = 1000, **settings) -> TiingoNews:
    config = Settings(**{"tiingo_api_key": KEY, "tiingo_url": fake.url, **settings})
    sleep = sleeps.append if sleeps is not None else (lambda _: None)
    return TiingoNews(config, policy=FAST, sleep=sleep, now=lambda: NOW, page_size=page_size)


def articles(count: int, tickers: tuple[str, ...] = ("AAPL",), start: datetime = T0) -> list[dict]:
    return [article(100 + i, start + timedelta(minutes=10 * i), list(tickers)) for i in range(count)]


# -- shape and requests ------------------------------------------------------------------------


def test_it_is_a_news_source_with_the_raw_columns(fake):
    fake.add_items(articles(1))
    tiingo = source(fake)
    frame = tiingo.news(["AAPL"], WINDOW)
    assert isinstance(tiingo, NewsSource) and tiingo.name == "tiingo"
    assert frame.schema == empty_raw_news().schema
    assert frame["source"].to_list() == ["tiingo"]


def test_first_request_is_exactly_the_documented_one(fake):
    source(fake).news(["AAPL", "BRK.B"], WINDOW)
    (request,) = fake.requests
    assert request.path == PATH
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


def test_no_symbols_asks_for_all_news_and_an_empty_list_asks_nothing(fake):
    fake.add_items([article(1, T0, ["AAPL"]), article(3, T0, ["TSLA"])])
    tiingo = source(fake)
    assert sorted(tiingo.news(None, WINDOW)["id"].to_list()) == ["1", "3"]
    assert "tickers" not in fake.requests[0].query
    assert tiingo.news([], WINDOW).height == 0 and len(fake.requests) == 1


def test_items_tiingo_sends_from_outside_the_window_are_not_rows(fake):
    end = WINDOW.end
    stamps = [T0 - timedelta(seconds=1), T0, end - timedelta(seconds=1), end, T0 - timedelta(days=1)]
    fake.add_items([article(i, t, ["AAPL"]) for i, t in enumerate(stamps)])
    frame = source(fake).news(["AAPL"], WINDOW)
    assert len(fake.requests) == 1  # Tiingo sent all five (dates only): the cut is ours
    assert sorted(frame["published_at"].to_list()) == [T0, end - timedelta(seconds=1)]


# -- faults ------------------------------------------------------------------------------------


def test_a_429_is_retried_after_what_retry_after_says(fake):
    fake.add_items(articles(2))
    fake.fail_next(429, retry_after="4")
    sleeps: list[float] = []
    frame = source(fake, sleeps).news(["AAPL"], WINDOW)
    assert sleeps == [4.0] and frame.height == 2


def test_5xx_every_time_is_a_vendor_error(fake):
    fake.fail_next(503, times=3)
    with pytest.raises(VendorError) as caught:
        source(fake).news(["AAPL"], WINDOW)
    assert str(caught.value) == f"tiingo {PATH}: gave up after 3 attempts (HTTP 503)"
    assert caught.value.status == 503


def test_a_wrong_key_is_an_auth_error_naming_the_setting_never_the_key(fake, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "SEKRET-wrong-tiingo-3f"
    config = Settings(tiingo_api_key=wrong, tiingo_url=fake.url)
    with pytest.raises(VendorAuthError) as caught:
        TiingoNews(config, policy=FAST, sleep=lambda _: None).news(["AAPL"], WINDOW)
    error = caught.value
    assert str(error) == "tiingo refused the credentials (HTTP 401): check TAPEFLOW_TIINGO_API_KEY"
    shown = str(error) + repr(error) + "".join(traceback.format_exception(error)) + caplog.text
    assert wrong not in shown and KEY not in shown


def test_a_missing_key_names_the_setting():
    with pytest.raises(VendorAuthError, match="tiingo needs TAPEFLOW_TIINGO_API_KEY to be set"):
        TiingoNews(Settings(tiingo_api_key=None))


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('[{"id": 1,', "malformed JSON from tiingo: "),
        ('{"detail": "Not found."}', "malformed page from tiingo: expected a JSON list, got dict: Not found."),
    ],
)
def test_a_malformed_page_is_one_quarantined_row(fake, body, problem):
    fake.malformed_next(body)
    frame = source(fake).news(["AAPL"], WINDOW)
    (row,) = frame.rows(named=True)
    assert row["payload"] == body and row["problem"].startswith(problem) and row["fetched_at"] == NOW
    assert check_news(frame).rejected["payload"].to_list() == [body]


def test_a_malformed_item_has_its_problem_and_the_others_are_good(fake):
    good = article(1, T0, ["AAPL"])
    page = [
        good,
        {**good, "id": 2, "tickers": ["aapl", None]},
        {**good, "id": 3, "publishedDate": "yesterday"},
        {**good, "id": 4, "tags": None, "title": ""},
        {**good, "id": 5, "description": ["x"]},
    ]
    fake.malformed_next(json.dumps(page))
    frame = source(fake).news(["AAPL"], WINDOW)
    assert frame.select("id", "category", "problem").rows() == [
        ("1", "Earnings, Technology", None),
        ("2", "Earnings, Technology", "tickers entry is not text: None"),
        ("3", "Earnings, Technology", "publishedDate is not an ISO 8601 time: 'yesterday'"),
        ("4", None, None),
        ("5", "Earnings, Technology", "description is not text: ['x']"),
    ]
    result = check_news(frame)
    assert result.good["id"].to_list() == ["1"]
    assert result.rejected["reason"].to_list()[2] == "headline must be non-empty"


# -- secrets -----------------------------------------------------------------------------------


def test_the_key_is_only_in_the_header_and_nowhere_stored_or_logged(fake, caplog):
    caplog.set_level(logging.DEBUG)
    fake.add_items(articles(3))
    tiingo = source(fake, page_size=2)
    frame = tiingo.news(["AAPL"], WINDOW)
    assert frame.height == 3
    assert all(KEY not in r.path and KEY not in json.dumps(r.query) for r in fake.requests)
    assert KEY not in frame.write_json() + repr(tiingo) + caplog.text


def test_a_page_quoting_the_key_is_stored_without_it(fake):
    fake.malformed_next(f'{{"detail": "Token {KEY} is over its limit"}}')
    (row,) = source(fake).news(["AAPL"], WINDOW).rows(named=True)
    assert KEY not in row["payload"] + row["problem"]
