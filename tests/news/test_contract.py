"""One contract, four REST news vendors: Benzinga, Marketaux, Polygon and Tiingo, each adapter
through the real requests client against its fake on 127.0.0.1 (see tests/news_venues.py).
Every test runs on each vendor with the same steps and the same expected outcome; what only
one vendor does (its requests, fields, paging and stamps) is in its file under tests/venues/."""

from __future__ import annotations

import json
import logging
import re
import traceback
from datetime import timedelta

import pytest

from tapeflow.config import Settings
from tapeflow.ingest.news import check_news
from tapeflow.news.base import NewsSource
from tapeflow.news.frames import empty_raw_news
from tapeflow.sources.http import VendorAuthError, VendorError
from tests.fakes.news_vendor import FakeNewsVendor
from tests.news_venues import NEWS_VENUES, NOW, T0, WINDOW, NewsServers, NewsVenue

HIDDEN = "**********"  # what stands where a key was


@pytest.fixture(params=sorted(NEWS_VENUES))
def venue(request) -> NewsVenue:
    return NEWS_VENUES[request.param]


@pytest.fixture
def fake(venue: NewsVenue, news_servers: NewsServers, tapeflow_home) -> FakeNewsVendor:
    return news_servers.fresh(venue)


def shown(error: BaseException, logged: str) -> str:
    """All that an error and the log can show a person."""
    return str(error) + repr(error) + "".join(traceback.format_exception(error)) + logged


# -- shape and requests ------------------------------------------------------------------------


def test_it_is_a_news_source_with_the_raw_columns(venue, fake):
    fake.add_items(venue.items(1))
    source = venue.source(fake)
    frame = source.news(["AAPL"], WINDOW)
    assert isinstance(source, NewsSource) and source.name == venue.name
    assert frame.schema == empty_raw_news().schema
    assert frame["source"].to_list() == [venue.name]


def test_no_symbols_asks_once_for_all_news_and_an_empty_list_asks_nothing(venue, fake):
    fake.add_items([venue.item(0, T0, ["AAPL"]), venue.item(1, T0 + timedelta(minutes=1), ["TSLA"])])
    source = venue.source(fake)
    tickers = source.news(None, WINDOW)["tickers"].to_list()
    assert tickers == ([["TSLA"], ["AAPL"]] if venue.newest_first else [["AAPL"], ["TSLA"]])
    assert venue.symbols_param not in fake.requests[0].query
    assert source.news([], WINDOW).height == 0 and len(fake.requests) == 1


# -- faults ------------------------------------------------------------------------------------


def test_a_429_is_retried_after_what_retry_after_says(venue, fake):
    fake.add_items(venue.items(2))
    fake.fail_next(429, retry_after="2")
    sleeps: list[float] = []
    frame = venue.source(fake, sleeps).news(["AAPL"], WINDOW)
    assert sleeps == [2.0] and frame.height == 2 and len(fake.requests) == 2


def test_5xx_every_time_is_a_vendor_error_without_the_key(venue, fake):
    fake.fail_next(503, times=3)
    with pytest.raises(VendorError) as caught:
        venue.source(fake).news(["AAPL"], WINDOW)
    assert str(caught.value) == f"{venue.name} {venue.path}: gave up after 3 attempts (HTTP 503)"
    assert caught.value.status == 503 and len(fake.requests) == 3
    assert venue.key not in shown(caught.value, "")


def test_a_400_is_not_retried_and_its_error_does_not_quote_the_key(venue, fake):
    fake.fail_next(400)
    with pytest.raises(VendorError) as caught:
        venue.source(fake).news(["AAPL"], WINDOW)
    assert str(caught.value) == f"{venue.name} {venue.path}: HTTP 400" and len(fake.requests) == 1
    assert venue.key not in shown(caught.value, "")


def test_a_wrong_key_is_an_auth_error_naming_the_setting_never_the_key(venue, fake, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = f"SEKRET-wrong-{venue.name}-77c1"
    sleeps: list[float] = []
    with pytest.raises(VendorAuthError) as caught:
        venue.source(fake, sleeps, key=wrong).news(["AAPL"], WINDOW)
    error = caught.value
    assert str(error) == f"{venue.name} refused the credentials (HTTP 401): check {venue.key_env}"
    assert error.status == 401 and sleeps == [] and len(fake.requests) == 1
    assert venue.sent_key(fake.requests[0]) == wrong  # the key did travel, where the vendor wants it
    assert wrong not in shown(error, caplog.text) and venue.key not in shown(error, caplog.text)


def test_a_missing_key_names_the_setting(venue):
    with pytest.raises(VendorAuthError, match=re.escape(f"{venue.name} needs {venue.key_env} to be set")):
        venue.adapter(Settings(**{venue.key_field: None}))


def test_malformed_json_is_one_quarantined_row(venue, fake):
    fake.malformed_next(venue.broken_json)
    frame = venue.source(fake).news(["AAPL"], WINDOW)
    (row,) = frame.rows(named=True)
    assert (row["payload"], row["fetched_at"], row["id"]) == (venue.broken_json, NOW, None)
    assert row["problem"].startswith(f"malformed JSON from {venue.name}: ")
    assert check_news(frame).rejected["payload"].to_list() == [venue.broken_json]


WRONG_SHAPES = [
    pytest.param(name, body, problem, id=f"{name}-{label}")
    for name, venue in sorted(NEWS_VENUES.items())
    for label, (body, problem) in venue.wrong_shapes.items()
]


@pytest.mark.parametrize(("venue", "body", "problem"), WRONG_SHAPES, indirect=["venue"])
def test_a_page_of_the_wrong_shape_is_one_quarantined_row(venue, fake, body, problem):
    fake.malformed_next(body)
    frame = venue.source(fake).news(["AAPL"], WINDOW)
    assert frame.select("payload", "problem", "fetched_at").rows() == [(body, problem, NOW)]
    assert check_news(frame).rejected["payload"].to_list() == [body]


def test_a_malformed_item_has_its_problem_and_the_others_are_good(venue, fake):
    expected = venue.malformed_items
    fake.malformed_next(json.dumps(expected.page))
    frame = venue.source(fake).news(["AAPL"], WINDOW)
    assert frame.select(*expected.columns).rows() == expected.rows
    result = check_news(frame)
    assert result.good["id"].to_list() == expected.good
    assert result.rejected["reason"].to_list() == expected.reasons


# -- secrets -----------------------------------------------------------------------------------


def test_the_key_travels_only_where_the_vendor_wants_it_and_reaches_no_log_row_or_repr(venue, fake, caplog):
    caplog.set_level(logging.DEBUG)
    fake.add_items(venue.items(3))
    source = venue.source(fake, page_size=2)
    frame = source.news(["AAPL"], WINDOW)
    assert frame.height == 3 and len(fake.requests) == 2
    assert all(venue.sent_key(r) == venue.key and venue.key not in venue.without_key(r) for r in fake.requests)
    assert "urllib3.connectionpool" in caplog.text  # the request lines were logged, without the key
    assert venue.key not in frame.write_json() + repr(source) + caplog.text


def test_a_page_quoting_the_key_is_stored_without_it(venue, fake):
    body = venue.quoting_key(venue.key)
    fake.malformed_next(body)
    (row,) = venue.source(fake).news(["AAPL"], WINDOW).rows(named=True)
    assert row["payload"] == body.replace(venue.key, HIDDEN)
    assert venue.key not in row["payload"] + row["problem"]
