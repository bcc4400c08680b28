"""MarketauxNews through the real requests client against FakeMarketaux on 127.0.0.1."""

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
from tapeflow.news.marketaux import MarketauxNews
from tapeflow.sources.base import Window
from tapeflow.sources.http import HttpPolicy, VendorAuthError, VendorError
from tests.fakes.marketaux import FakeMarketaux, article

KEY = "SEKRET-marketaux-0e4b19"
UTC = timezone.utc
FAST = HttpPolicy(timeout_s=2.0, attempts=3, backoff_s=0.01, jitter=0.0)
T0 = datetime(2026, 3, 9, 13, 30, tzinfo=UTC)
WINDOW = Window(T0, T0 + timedelta(hours=2))
NOW = datetime(2026, 3, 10, tzinfo=UTC)
PATH = "/v1/news/all"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeMarketaux]:
    # One server for the module: each stop costs up to 0.5 s.
    with FakeMarketaux(KEY) as running:
        yield running


@pytest.fixture
def fake(server: FakeMarketaux, tapeflow_home) -> FakeMarketaux:
    server.reset()
    return server


def source(fake: FakeMarketaux, sleeps: list[float] | None = None, page_size: int = 100, **settings) -> MarketauxNews:
    config = Settings(**{"marketaux_api_key": KEY, "marketaux_url": fake.url, **settings})
    sleep = sleeps.append if sleeps is not None else (lambda _: None)
    return MarketauxNews(config, policy=FAST, sleep=sleep, now=lambda: NOW, page_size=page_size)


def articles(count: int, symbols: tuple[str, ...] = ("AAPL",), start: datetime = T0) -> list[dict]:
    return [article(f"u{i}", start + timedelta(minutes=10 * i), list(symbols)) for i in range(count)]


# -- shape and requests ------------------------------------------------------------------------


def test_it_is_a_news_source_with_the_raw_columns(fake):
    fake.add_items(articles(1))
    marketaux = source(fake)
    frame = marketaux.news(["AAPL"], WINDOW)
    assert isinstance(marketaux, NewsSource) and marketaux.name == "marketaux"
    assert frame.schema == empty_raw_news().schema
    assert frame["source"].to_list() == ["marketaux"]


def test_first_request_is_exactly_the_documented_one(fake):
    source(fake).news(["AAPL", "MSFT"], WINDOW)
    (request,) = fake.requests
    assert request.path == PATH
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


def test_no_symbols_asks_for_all_news_and_an_empty_list_asks_nothing(fake):
    fake.add_items([article("a", T0, ["AAPL"]), article("t", T0, ["TSLA"])])
    marketaux = source(fake)
    assert sorted(marketaux.news(None, WINDOW)["id"].to_list()) == ["a", "t"]
    assert "symbols" not in fake.requests[0].query
    assert marketaux.news([], WINDOW).height == 0 and len(fake.requests) == 1


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


# -- faults ------------------------------------------------------------------------------------


def test_a_429_is_retried_after_what_retry_after_says(fake):
    fake.add_items(articles(2))
    fake.fail_next(429, retry_after="1")
    sleeps: list[float] = []
    frame = source(fake, sleeps).news(["AAPL"], WINDOW)
    assert sleeps == [1.0] and frame.height == 2


def test_5xx_every_time_is_a_vendor_error_without_the_key(fake):
    fake.fail_next(500, times=3)
    with pytest.raises(VendorError) as caught:
        source(fake).news(["AAPL"], WINDOW)
    assert str(caught.value) == f"marketaux {PATH}: gave up after 3 attempts (HTTP 500)"
    assert KEY not in "".join(traceback.format_exception(caught.value))


def test_a_wrong_key_is_an_auth_error_naming_the_setting_never_the_key(fake, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "SEKRET-wrong-marketaux-5a"
    config = Settings(marketaux_api_key=wrong, marketaux_url=fake.url)
    with pytest.raises(VendorAuthError) as caught:
        MarketauxNews(config, policy=FAST, sleep=lambda _: None).news(["AAPL"], WINDOW)
    error = caught.value
    assert str(error) == "marketaux refused the credentials (HTTP 401): check TAPEFLOW_MARKETAUX_API_KEY"
    assert fake.requests[0].query["api_token"] == wrong
    shown = str(error) + repr(error) + "".join(traceback.format_exception(error)) + caplog.text
    assert wrong not in shown


def test_a_missing_key_names_the_setting():
    with pytest.raises(VendorAuthError, match="marketaux needs TAPEFLOW_MARKETAUX_API_KEY to be set"):
        MarketauxNews(Settings(marketaux_api_key=None))


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('{"meta": {"found": 3', "malformed JSON from marketaux: "),
        ("[]", "malformed page from marketaux: expected a JSON object, got list"),
        (
            '{"error": {"code": "malformed_parameters", "message": "Bad symbols."}}',
            "malformed page from marketaux: data is not a list: malformed_parameters: Bad symbols.",
        ),
    ],
)
def test_a_malformed_page_is_one_quarantined_row(fake, body, problem):
    fake.malformed_next(body)
    frame = source(fake).news(["AAPL"], WINDOW)
    (row,) = frame.rows(named=True)
    assert row["payload"] == body and row["problem"].startswith(problem) and row["fetched_at"] == NOW
    assert check_news(frame).rejected["payload"].to_list() == [body]


def test_a_malformed_item_has_its_problem_and_the_others_are_good(fake):
    good = article("good", T0, ["AAPL"])
    data = [
        good,
        {**good, "uuid": "offset", "published_at": "2026-03-09T15:00:00.000000+01:00"},
        {**good, "uuid": "no-zone", "published_at": "2026-03-09T14:00:00.000000"},
        {**good, "uuid": "bad-entity", "entities": [{"name": "Apple"}]},
        {**good, "uuid": None},
    ]
    page = {"meta": {"found": 5, "returned": 5, "limit": 100, "page": 1}, "data": data}
    fake.malformed_next(json.dumps(page))
    frame = source(fake).news(["AAPL"], WINDOW)
    assert frame.select("id", "problem").rows() == [
        ("good", None),
        ("offset", None),
        ("no-zone", "published_at has no time zone: '2026-03-09T14:00:00.000000'"),
        ("bad-entity", "entities entry's symbol is not text: {'name': 'Apple'}"),
        (None, None),
    ]
    assert frame["published_at"][1] == datetime(2026, 3, 9, 14, tzinfo=UTC)
    result = check_news(frame)
    assert result.good["id"].to_list() == ["good", "offset"]
    assert result.rejected["reason"].to_list()[-1] == "id is missing"


# -- secrets -----------------------------------------------------------------------------------


def test_the_query_key_reaches_no_log_row_or_repr(fake, caplog):
    caplog.set_level(logging.DEBUG)
    fake.add_items(articles(3))
    marketaux = source(fake, page_size=2)
    frame = marketaux.news(["AAPL"], WINDOW)
    assert frame.height == 3 and all(r.query["api_token"] == KEY for r in fake.requests)
    assert "urllib3.connectionpool" in caplog.text  # the request lines were logged, without their query
    assert KEY not in frame.write_json() + repr(marketaux) + caplog.text


def test_a_page_quoting_the_key_is_stored_without_it(fake):
    fake.malformed_next(f'{{"error": {{"code": "invalid_api_token", "message": "{KEY} is not valid"}}}}')
    (payload,) = source(fake).news(["AAPL"], WINDOW)["payload"].to_list()
    assert KEY not in payload and "********** is not valid" in payload
