"""PolygonNews through the real requests client against FakePolygonNews on 127.0.0.1."""

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
from tapeflow.news.polygon import PolygonNews
from tapeflow.sources.base import Window
from tapeflow.sources.http import HttpPolicy, VendorAuthError, VendorError
from tests.fakes.polygon_news import FakePolygonNews, article

KEY = "SEKRET-polygon-news-5c1e77"
UTC = timezone.utc
FAST = HttpPolicy(timeout_s=2.0, attempts=3, backoff_s=0.01, jitter=0.0)
T0 = datetime(2026, 3, 9, 13, 30, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(hours=2))
NOW = datetime(2026, 3, 10, tzinfo=UTC)
PATH = "/v2/reference/news"


@pytest.fixture(scope="module")
def server() -> Iterator[FakePolygonNews]:
    # One server for the module: each stop costs up to 0.5 s.
    with FakePolygonNews(KEY) as running:
        yield running


@pytest.fixture
def fake(server: FakePolygonNews, tapeflow_home) -> FakePolygonNews:
    server.reset()
    return server


def source(fake: FakePolygonNews, sleeps: list[float] | None = None, page_size: int = 1000, **settings) -> PolygonNews:
    config = Settings(**{"polygon_api_key": KEY, "polygon_url": fake.url, **settings})
    sleep = sleeps.append if sleeps is not None else (lambda _: None)
    return PolygonNews(config, policy=FAST, sleep=sleep, now=lambda: NOW, page_size=page_size)


def items(count: int, tickers: tuple[str, ...] = ("AAPL",), start: datetime = T0, prefix: str = "n") -> list[dict]:
    return [article(f"{prefix}{i}", start + timedelta(minutes=10 * i), list(tickers)) for i in range(count)]


# -- shape and requests ------------------------------------------------------------------------


def test_it_is_a_news_source_with_the_raw_columns(fake):
    fake.add_items(items(1))
    polygon = source(fake)
    frame = polygon.news(["AAPL"], WINDOW)
    assert isinstance(polygon, NewsSource) and polygon.name == "polygon"
    assert frame.schema == empty_raw_news().schema
    assert frame["source"].to_list() == ["polygon"]


def test_first_request_is_exactly_the_documented_one(fake):
    source(fake).news(["AAPL"], WINDOW)
    (request,) = fake.requests
    assert request.path == PATH
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


def test_no_symbols_asks_once_for_all_news(fake):
    fake.add_items([article("a", T0, ["AAPL"]), article("t", T0 + timedelta(minutes=1), ["TSLA"])])
    frame = source(fake).news(None, WINDOW)
    assert "ticker" not in fake.requests[0].query
    assert frame["id"].to_list() == ["a", "t"]


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


# -- faults ------------------------------------------------------------------------------------


def test_a_429_is_retried_after_what_retry_after_says(fake):
    fake.add_items(items(2))
    fake.fail_next(429, retry_after="2")
    sleeps: list[float] = []
    frame = source(fake, sleeps).news(["AAPL"], WINDOW)
    assert sleeps == [2.0] and frame.height == 2 and len(fake.requests) == 2


def test_5xx_every_time_is_a_vendor_error(fake):
    fake.fail_next(503, times=3)
    with pytest.raises(VendorError) as caught:
        source(fake).news(["AAPL"], WINDOW)
    assert str(caught.value) == f"polygon {PATH}: gave up after 3 attempts (HTTP 503)"
    assert caught.value.status == 503 and len(fake.requests) == 3


def test_a_wrong_key_is_an_auth_error_naming_the_setting_never_the_key(fake, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "SEKRET-wrong-polygon-41aa"
    config = Settings(polygon_api_key=wrong, polygon_url=fake.url)
    sleeps: list[float] = []
    with pytest.raises(VendorAuthError) as caught:
        PolygonNews(config, policy=FAST, sleep=sleeps.append).news(["AAPL"], WINDOW)
    error = caught.value
    assert str(error) == "polygon refused the credentials (HTTP 401): check TAPEFLOW_POLYGON_API_KEY"
    assert error.status == 401 and sleeps == []
    shown = str(error) + repr(error) + "".join(traceback.format_exception(error)) + caplog.text
    assert wrong not in shown and KEY not in shown


def test_a_missing_key_names_the_setting():
    with pytest.raises(VendorAuthError, match="polygon needs TAPEFLOW_POLYGON_API_KEY to be set"):
        PolygonNews(Settings(polygon_api_key=None))


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


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("[]", "malformed page from polygon: expected a JSON object, got list"),
        ('{"status": "OK", "results": {"id": "x"}}', "malformed page from polygon: results is a dict, not a list"),
        ('{"status": "ERROR", "error": "boom"}', "polygon answered status 'ERROR': boom"),
        (
            '{"status": "OK", "results": [], "next_url": 5}',
            "malformed page from polygon: next_url 5 is not a URL; paging stopped",
        ),
    ],
)
def test_a_page_without_the_expected_structure_is_one_row(fake, body, problem):
    fake.malformed_next(body)
    frame = source(fake).news(["AAPL"], WINDOW)
    assert frame.select("payload", "problem").rows() == [(body, problem)]


def test_a_malformed_item_has_its_problem_and_the_others_are_good(fake):
    good = article("good", T0, ["aapl"])
    page = {
        "status": "OK",
        "results": [
            good,
            {**good, "id": "no-stamp", "published_utc": None},
            {**good, "id": "naive", "published_utc": "2026-03-09T13:40:00"},
            {**good, "id": "bad-tickers", "tickers": "AAPL"},
            {**good, "id": "bad-title", "title": 5},
            7,
        ],
    }
    fake.malformed_next(json.dumps(page))
    frame = source(fake).news(["AAPL"], WINDOW)
    assert frame["id"].to_list() == ["good", "no-stamp", "naive", "bad-tickers", "bad-title", None]
    assert frame["tickers"].to_list()[:4] == [["AAPL"], ["AAPL"], ["AAPL"], None]
    assert frame["problem"].to_list() == [
        None,
        "published_utc is missing or not text: None",
        "published_utc has no time zone: '2026-03-09T13:40:00'",
        "tickers is not a list: 'AAPL'",
        "title is not text: 5",
        "polygon item is not a JSON object",
    ]
    result = check_news(frame)
    assert result.good["id"].to_list() == ["good"]
    assert result.rejected["reason"].to_list() == frame["problem"].to_list()[1:]


# -- secrets -----------------------------------------------------------------------------------


def test_the_key_is_only_in_the_header_and_nowhere_stored_or_logged(fake, caplog):
    caplog.set_level(logging.DEBUG)
    fake.add_items(items(3))
    polygon = source(fake, page_size=2)
    frame = polygon.news(["AAPL"], WINDOW)
    assert frame.height == 3
    assert all(KEY not in r.path and KEY not in json.dumps(r.query) for r in fake.requests)
    assert KEY not in frame.write_json() + repr(polygon) + caplog.text


def test_an_answer_quoting_the_key_is_stored_without_it(fake):
    fake.malformed_next(f'{{"status": "ERROR", "error": "key {KEY} is not entitled"')
    (payload,) = source(fake).news(["AAPL"], WINDOW)["payload"].to_list()
    assert KEY not in payload and "key ********** is not entitled" in payload


def test_rows_that_could_not_be_dated_stay_for_the_quarantine(fake):
    fake.malformed_next(json.dumps({"status": "OK", "results": [article("x", T0, ["AAPL"], published_utc="soon")]}))
    frame = source(fake).news(["AAPL"], Window(T0 + timedelta(days=30), T0 + timedelta(days=31)))
    assert frame.select("id", "problem").rows() == [("x", "published_utc is not an ISO 8601 time: 'soon'")]
