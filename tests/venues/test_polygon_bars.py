"""PolygonSource through the real requests client against FakePolygon on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
import requests

from tapeflow.config import Settings
from tapeflow.ingest.bars import CheckedBars, check_bars
from tapeflow.model import Timeframe
from tapeflow.sources.base import MarketData, Window, empty_raw_bars
from tapeflow.sources.http import HttpPolicy, VendorAuthError, VendorError
from tapeflow.venues.polygon.bars import PolygonSource
from tests.fakes.polygon import FakePolygon, agg, day_agg, minute_agg, ms

KEY = "SEKRET-polygon-7f3a9c51"
UTC = UTC
FAST = HttpPolicy(timeout_s=2.0, attempts=3, backoff_s=0.01, jitter=0.0)
T0 = datetime(2026, 3, 9, 13, 30, tzinfo=UTC)  # 09:30 New York (EDT since 2026-03-08)
DAY_1M = Window(T0, T0 + timedelta(hours=2))
NOVEMBER = Window.days(date(2026, 11, 1), date(2026, 11, 30))


@pytest.fixture(scope="module")
def server() -> Iterator[FakePolygon]:
    # One server for the module: each stop costs up to 0.5 s (the stdlib server's poll interval).
    with FakePolygon(KEY) as running:
        yield running


@pytest.fixture
def fake(server: FakePolygon, tapeflow_home) -> FakePolygon:
    server.reset()
    return server


def checked(frame: pl.DataFrame) -> CheckedBars:
    """check_bars as of long after every bar in these tests has ended."""
    return check_bars(frame, received_at=datetime(2030, 1, 1, tzinfo=UTC))


def source(
    fake: FakePolygon, sleeps: list[float] | None = None, policy: HttpPolicy = FAST, **settings: object
) -> PolygonSource:
    config = Settings(**{"polygon_api_key": KEY, "polygon_url": fake.url, **settings})
    return PolygonSource(config, policy=policy, sleep=sleeps.append if sleeps is not None else (lambda _: None))


def minutes(count: int, start: datetime = T0, price: float = 100.0) -> list[dict]:
    return [minute_agg(start + timedelta(minutes=i), price + i) for i in range(count)]


def aggs_path(ticker: str, timespan: str, first: str, last: str) -> str:
    return f"/v2/aggs/ticker/{ticker}/range/1/{timespan}/{first}/{last}"


def everything(frame: pl.DataFrame) -> str:
    return frame.write_csv()


# -- shape and contract ------------------------------------------------------------------


def test_it_is_a_market_data_source_with_the_raw_columns(fake):
    fake.add_bars("AAPL", "minute", minutes(1))
    polygon = source(fake)
    assert isinstance(polygon, MarketData) and polygon.name == "polygon"
    frame = polygon.bars(["AAPL"], Timeframe.MINUTE, DAY_1M)
    assert frame.schema == empty_raw_bars().schema
    assert frame["source"].to_list() == ["polygon"]


def test_first_request_is_exactly_the_documented_one(fake):
    source(fake).bars(["BRK.B"], Timeframe.DAY, NOVEMBER)
    (request,) = fake.requests
    assert request.path == aggs_path("BRK.B", "day", "2026-11-01", "2026-11-30")
    assert request.query == {"adjusted": "true", "sort": "asc", "limit": "50000"}
    assert request.headers["authorization"] == f"Bearer {KEY}"


def test_symbols_none_is_refused(fake):
    with pytest.raises(ValueError, match=r"^polygon needs explicit symbols$"):
        source(fake).bars(None, Timeframe.DAY, NOVEMBER)


@pytest.mark.parametrize("key", [None, ""])
def test_a_missing_key_is_refused_at_construction(tapeflow_home, key):
    with pytest.raises(VendorAuthError) as caught:
        PolygonSource(Settings(polygon_api_key=key))
    assert str(caught.value) == "polygon needs TAPEFLOW_POLYGON_API_KEY to be set"


# -- paging ------------------------------------------------------------------------------


def test_paging_follows_next_url_and_returns_every_row_once_in_order(fake):
    fake.reset(page_cap=2)
    fake.add_bars("AAPL", "minute", minutes(5))
    frame = source(fake).bars(["AAPL"], Timeframe.MINUTE, DAY_1M)
    hits = fake.hits()
    assert frame["ts"].to_list() == [T0 + timedelta(minutes=i) for i in range(5)]
    assert frame["open"].to_list() == [100.0, 101.0, 102.0, 103.0, 104.0]
    assert len(hits) == 3
    assert hits[0].query == {"adjusted": "true", "sort": "asc", "limit": "50000"}
    # Later pages are next_url as Polygon writes it: ms bounds, and only the cursor in the query.
    first, last = ms(datetime(2026, 3, 9, 4, tzinfo=UTC)), ms(datetime(2026, 3, 10, 4, tzinfo=UTC)) - 1
    later = aggs_path("AAPL", "minute", str(first), str(last))
    assert [h.path for h in hits[1:]] == [later, later]
    assert [set(h.query) for h in hits[1:]] == [{"cursor"}, {"cursor"}]
    assert all(h.headers["authorization"] == f"Bearer {KEY}" for h in hits)


def test_an_empty_page_with_a_next_url_is_followed(fake):
    fake.reset(page_cap=3)
    fake.add_bars("AAPL", "minute", minutes(4))
    fake.empty_page_next()
    frame = source(fake).bars(["AAPL"], Timeframe.MINUTE, DAY_1M)
    assert len(fake.hits()) == 3  # empty, 3 rows, 1 row
    assert frame["open"].to_list() == [100.0, 101.0, 102.0, 103.0]


def test_next_url_on_another_host_is_sent_to_the_configured_base(tapeflow_home):
    # A proxy in front of Polygon: next_url names api.polygon.io, the key must not go there.
    class Proxied(FakePolygon):
        def _aggs(self, request, **groups):
            status, body = super()._aggs(request, **groups)
            if isinstance(body, dict) and "next_url" in body:
                body["next_url"] = body["next_url"].replace(self.url, "https://api.polygon.io")
            return status, body

    with Proxied(KEY, page_cap=2) as fake:
        fake.add_bars("AAPL", "minute", minutes(3))
        frame = source(fake).bars(["AAPL"], Timeframe.MINUTE, DAY_1M)
        assert len(fake.hits()) == 2
    assert frame.height == 3


def test_no_results_field_is_an_empty_batch(fake):
    frame = source(fake).bars(["AAPL"], Timeframe.MINUTE, DAY_1M)
    assert frame.height == 0 and frame.schema == empty_raw_bars().schema


def test_delayed_status_is_data(fake):
    fake.reset(delayed=True)
    fake.add_bars("AAPL", "minute", minutes(2))
    assert source(fake).bars(["AAPL"], Timeframe.MINUTE, DAY_1M).height == 2


# -- faults ------------------------------------------------------------------------------


def test_429_waits_exactly_retry_after_then_succeeds(fake):
    fake.add_bars("AAPL", "minute", minutes(2))
    fake.fail_next(429, retry_after="7")
    sleeps: list[float] = []
    frame = source(fake, sleeps).bars(["AAPL"], Timeframe.MINUTE, DAY_1M)
    assert sleeps == [7.0]
    assert frame.height == 2 and len(fake.hits()) == 2


def test_a_5xx_is_retried_after_backoff(fake):
    fake.add_bars("AAPL", "minute", minutes(2))
    fake.fail_next(503)
    sleeps: list[float] = []
    frame = source(fake, sleeps).bars(["AAPL"], Timeframe.MINUTE, DAY_1M)
    assert sleeps == [0.01] and frame.height == 2


def test_a_timeout_then_success(fake):
    fake.add_bars("AAPL", "minute", minutes(2))
    fake.delay_next(0.6)
    policy = HttpPolicy(timeout_s=0.2, attempts=2, backoff_s=0.0, jitter=0.0)
    assert source(fake, policy=policy).bars(["AAPL"], Timeframe.MINUTE, DAY_1M).height == 2
    assert len(fake.hits()) == 2


def test_a_timeout_every_time_is_a_vendor_error(fake):
    fake.delay_next(0.6, times=2)
    policy = HttpPolicy(timeout_s=0.2, attempts=2, backoff_s=0.0, jitter=0.0)
    with pytest.raises(VendorError) as caught:
        source(fake, policy=policy).bars(["AAPL"], Timeframe.MINUTE, DAY_1M)
    path = aggs_path("AAPL", "minute", "2026-03-09", "2026-03-09")
    assert str(caught.value) == f"polygon {path}: gave up after 2 attempts (timed out after 0.2 s)"
    assert caught.value.status is None


def test_malformed_json_becomes_one_row_and_the_next_symbol_still_comes(fake):
    fake.add_bars("AAPL", "minute", minutes(3))
    fake.add_bars("MSFT", "minute", minutes(2, price=300.0))
    body = '{"results": [ {"o": 1.0,'
    fake.malformed_next(body)
    frame = source(fake).bars(["AAPL", "MSFT"], Timeframe.MINUTE, DAY_1M)
    broken = frame.row(0, named=True)
    assert broken["symbol"] == "AAPL" and broken["payload"] == body and broken["ts"] is None
    assert broken["problem"].startswith("malformed JSON from polygon: ")
    assert frame["symbol"].to_list() == ["AAPL", "MSFT", "MSFT"]  # AAPL's paging stopped
    result = checked(frame)
    assert result.good["open"].to_list() == [300.0, 301.0]
    (reason,) = result.rejected["reason"].to_list()
    assert reason.startswith("malformed JSON from polygon: ")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("[]", "malformed page from polygon: expected a JSON object, got list"),
        ('{"status": "OK", "results": {"o": 1}}', "malformed page from polygon: results is a dict, not a list"),
        ('{"status": "ERROR", "error": "boom"}', "polygon answered status 'ERROR': boom"),
        ('{"status": "OK", "results": [], "next_url": 5}', "malformed page from polygon: next_url 5 is not a URL; paging stopped"),
    ],
)
def test_a_page_without_the_expected_structure_becomes_one_row(fake, body, problem):
    fake.malformed_next(body)
    frame = source(fake).bars(["AAPL"], Timeframe.MINUTE, DAY_1M)
    assert frame.select("symbol", "payload", "problem").rows() == [("AAPL", body, problem)]


def test_a_long_page_is_kept_to_20000_chars(fake):
    fake.malformed_next("x" * 30_000)
    (payload,) = source(fake).bars(["AAPL"], Timeframe.MINUTE, DAY_1M)["payload"].to_list()
    assert payload == "x" * 20_000


def test_bad_fields_are_null_and_every_bar_comes_back(fake):
    good = minute_agg(T0, 100.0)
    page = {
        "status": "OK",
        "results": [{**good, "o": "100.0"}, {**good, "t": None, "n": 2.5}, {**good, "vw": "x"}, 7],
    }
    fake.malformed_next(json.dumps(page))
    frame = source(fake).bars(["AAPL"], Timeframe.MINUTE, DAY_1M)
    assert frame.select("open", "high", "vwap", "trade_count").rows() == [
        (None, 100.5, 100.0625, 10),
        (100.0, 100.5, 100.0625, None),
        (100.0, 100.5, None, 10),
        (None, None, None, None),
    ]
    assert frame["problem"].to_list() == [
        None,
        "t (bar start, ms since the epoch) is missing or not an integer: None; n (trade count) is not a whole number: 2.5",
        "vw (vwap) is not a number: 'x'",
        "polygon bar is not a JSON object",
    ]
    assert frame["payload"][3] == "7"
    assert checked(frame).rejected["reason"].to_list()[:3] == [
        "open is missing or not a number",
        "t (bar start, ms since the epoch) is missing or not an integer: None; n (trade count) is not a whole number: 2.5",
        "vw (vwap) is not a number: 'x'",
    ]


# -- credentials and secrets -------------------------------------------------------------


def test_a_wrong_key_is_an_auth_error_naming_the_setting_never_the_key(fake, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "SEKRET-wrong-0b9e22"
    config = Settings(polygon_api_key=wrong, polygon_url=fake.url)
    sleeps: list[float] = []
    with pytest.raises(VendorAuthError) as caught:
        PolygonSource(config, policy=FAST, sleep=sleeps.append).bars(["AAPL"], Timeframe.DAY, NOVEMBER)
    error = caught.value
    assert str(error) == "polygon refused the credentials (HTTP 401): check TAPEFLOW_POLYGON_API_KEY"
    assert error.status == 401 and sleeps == []
    shown = str(error) + repr(error) + "".join(traceback.format_exception(error)) + caplog.text
    assert wrong not in shown and KEY not in shown


def test_the_key_is_in_no_url_log_frame_or_repr(fake, caplog):
    caplog.set_level(logging.DEBUG)
    fake.add_bars("AAPL", "minute", minutes(2))
    polygon = source(fake)
    frame = polygon.bars(["AAPL"], Timeframe.MINUTE, DAY_1M)
    assert frame.height == 2
    assert KEY not in everything(frame) + repr(polygon) + caplog.text
    assert all(KEY not in r.path and KEY not in json.dumps(r.query) for r in fake.requests)


def test_the_fake_checks_credentials_as_polygon_does(fake):
    path = fake.url + aggs_path("AAPL", "day", "2026-11-02", "2026-11-02")
    wrong = requests.get(path, headers={"Authorization": "Bearer nope"}, timeout=5)
    missing = requests.get(path, timeout=5)
    by_query = requests.get(path, params={"apiKey": KEY}, timeout=5)
    assert (wrong.status_code, wrong.json()["status"], wrong.json()["error"]) == (401, "ERROR", "Unknown API Key")
    assert (missing.status_code, missing.json()["error"]) == (401, "API Key was not provided")
    assert by_query.status_code == 200 and by_query.json()["status"] == "OK"
    assert set(wrong.json()) == {"status", "request_id", "error"}


# -- duplicates, instants, adjustment, window --------------------------------------------


def test_duplicate_rows_all_come_back_and_check_bars_keeps_one(fake):
    bar = minute_agg(T0, 100.0)
    fake.add_bars("AAPL", "minute", [bar, bar])
    frame = source(fake).bars(["AAPL"], Timeframe.MINUTE, DAY_1M)
    assert frame.height == 2
    result = checked(frame)
    assert result.good.height == 1
    assert result.rejected["reason"].to_list() == ["duplicate of an earlier row in the same batch"]


def test_daily_bars_span_the_new_york_session(fake):
    days = [date(2026, 7, 1), date(2026, 11, 25), date(2026, 11, 26), date(2026, 11, 27)]
    fake.add_bars("AAPL", "day", [day_agg(d, 100.0) for d in days])
    frame = source(fake).bars(["AAPL"], Timeframe.DAY, Window.days(date(2026, 6, 1), date(2026, 11, 30)))
    assert frame.select("ts", "end_ts").rows() == [
        (datetime(2026, 7, 1, 13, 30, tzinfo=UTC), datetime(2026, 7, 1, 20, 0, tzinfo=UTC)),  # 09:30-16:00 EDT
        (datetime(2026, 11, 25, 14, 30, tzinfo=UTC), datetime(2026, 11, 25, 21, 0, tzinfo=UTC)),  # 09:30-16:00 EST
        (None, None),  # Thanksgiving: no session
        (datetime(2026, 11, 27, 14, 30, tzinfo=UTC), datetime(2026, 11, 27, 18, 0, tzinfo=UTC)),  # closes 13:00
    ]
    assert frame["problem"].to_list() == [None, None, "2026-11-26 is not an XNYS session", None]
    result = checked(frame)
    assert result.good.height == 3
    assert result.rejected["reason"].to_list() == ["2026-11-26 is not an XNYS session"]


def test_minute_bars_start_at_t_and_last_one_minute(fake):
    winter = datetime(2026, 3, 6, 14, 30, tzinfo=UTC)  # 09:30 EST
    fake.add_bars("AAPL", "minute", [agg(ms(winter), 10.0, 11.0, 9.0, 10.5, 1234.0, 10.2, 17), minute_agg(T0, 20.0)])
    frame = source(fake).bars(["AAPL"], Timeframe.MINUTE, Window(winter, T0 + timedelta(minutes=1)))
    assert frame.select("ts", "end_ts").rows() == [
        (winter, winter + timedelta(minutes=1)),
        (T0, T0 + timedelta(minutes=1)),
    ]
    first = frame.row(0, named=True)
    assert (first["open"], first["high"], first["low"], first["close"]) == (10.0, 11.0, 9.0, 10.5)
    assert (first["volume"], first["vwap"], first["trade_count"], first["timeframe"]) == (1234.0, 10.2, 17, "1m")
    assert json.loads(first["payload"]) == {
        "v": 1234.0, "vw": 10.2, "o": 10.0, "c": 10.5, "h": 11.0, "l": 9.0, "t": ms(winter), "n": 17, "symbol": "AAPL"
    }


@pytest.mark.parametrize(
    ("adjusted", "query", "adjustment", "price"), [(True, "true", "split", 25.0), (False, "false", "raw", 100.0)]
)
def test_adjustment_follows_the_setting(fake, adjusted, query, adjustment, price):
    fake.add_bars("AAPL", "day", [day_agg(date(2026, 6, 1), 100.0)])
    fake.add_split("AAPL", date(2026, 6, 15), 4.0)
    june = Window.days(date(2026, 6, 1), date(2026, 6, 30))
    frame = source(fake, polygon_adjusted=adjusted).bars(["AAPL"], Timeframe.DAY, june)
    assert fake.requests[0].query["adjusted"] == query
    assert frame.select("adjustment", "open").rows() == [(adjustment, price)]


def test_only_bars_starting_inside_the_window_come_back(fake):
    fake.add_bars("AAPL", "minute", minutes(6, start=T0 - timedelta(minutes=2)))
    frame = source(fake).bars(["AAPL"], Timeframe.MINUTE, Window(T0, T0 + timedelta(minutes=2)))
    assert frame["ts"].to_list() == [T0, T0 + timedelta(minutes=1)]


def test_daily_window_keeps_sessions_whose_open_is_inside(fake):
    fake.add_bars("AAPL", "day", [day_agg(date(2026, 11, d), 100.0 + d) for d in (23, 24, 25)])
    # From the 23rd's close to the 25th's open: only the 24th's open lies inside.
    window = Window(datetime(2026, 11, 23, 21, tzinfo=UTC), datetime(2026, 11, 25, 14, 30, tzinfo=UTC))
    frame = source(fake).bars(["AAPL"], Timeframe.DAY, window)
    assert frame["open"].to_list() == [124.0]
    assert fake.requests[0].path == aggs_path("AAPL", "day", "2026-11-23", "2026-11-25")


def test_request_dates_are_the_new_york_dates_of_the_window(fake):
    # 23:00 New York on the 9th to 00:00 on the 11th (exclusive): the 9th and the 10th.
    window = Window(datetime(2026, 3, 10, 3, tzinfo=UTC), datetime(2026, 3, 11, 4, tzinfo=UTC))
    source(fake).bars(["AAPL"], Timeframe.MINUTE, window)
    assert fake.requests[0].path == aggs_path("AAPL", "minute", "2026-03-09", "2026-03-10")


def test_symbols_are_asked_one_after_another(fake):
    fake.add_bars("AAPL", "minute", minutes(1))
    fake.add_bars("MSFT", "minute", minutes(1, price=300.0))
    frame = source(fake).bars(["MSFT", "AAPL"], Timeframe.MINUTE, DAY_1M)
    assert frame.select("symbol", "open").rows() == [("MSFT", 300.0), ("AAPL", 100.0)]
