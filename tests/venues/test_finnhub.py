"""FinnhubSource through the real requests client against FakeFinnhub on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta

import polars as pl
import pytest
import requests

from tapeflow.calendar.exchange import NEW_YORK
from tapeflow.config import Settings
from tapeflow.ingest.bars import CheckedBars, check_bars
from tapeflow.model import Timeframe
from tapeflow.sources.base import MarketData, Window, empty_raw_bars
from tapeflow.sources.http import HttpPolicy, VendorAuthError, VendorError
from tapeflow.venues.finnhub import FinnhubSource
from tests.fakes.finnhub import FakeFinnhub, candle, day_candle, minute_candle

KEY = "SEKRET-finnhub-4c1d8e07"
UTC = UTC
FAST = HttpPolicy(timeout_s=2.0, attempts=3, backoff_s=0.01, jitter=0.0)
T0 = datetime(2026, 3, 9, 13, 30, tzinfo=UTC)  # 09:30 New York (EDT since 2026-03-08)
S0 = int(T0.timestamp())
DAY_1M = Window(T0, T0 + timedelta(hours=2))
NOVEMBER = Window.days(date(2026, 11, 1), date(2026, 11, 30))
DAY_S = 86_400


@pytest.fixture(scope="module")
def server() -> Iterator[FakeFinnhub]:
    # One server for the module: each stop costs up to 0.5 s (the stdlib server's poll interval).
    with FakeFinnhub(KEY) as running:
        yield running


@pytest.fixture
def fake(server: FakeFinnhub, tapeflow_home) -> FakeFinnhub:
    server.reset()
    return server


def source(fake: FakeFinnhub, sleeps: list[float] | None = None, policy: HttpPolicy = FAST, key: str = KEY) -> FinnhubSource:
    config = Settings(finnhub_api_key=key, finnhub_url=fake.url)
    return FinnhubSource(config, policy=policy, sleep=sleeps.append if sleeps is not None else (lambda _: None))


def checked(frame: pl.DataFrame) -> CheckedBars:
    """check_bars as of long after every bar in these tests has ended."""
    return check_bars(frame, received_at=datetime(2030, 1, 1, tzinfo=UTC))


def minutes(count: int, start: datetime = T0, price: float = 100.0) -> list[dict]:
    return [minute_candle(start + timedelta(minutes=i), price + i) for i in range(count)]


# -- shape and contract ------------------------------------------------------------------


def test_it_is_a_market_data_source_with_the_raw_columns(fake):
    fake.add_candles("AAPL", "1", minutes(1))
    finnhub = source(fake)
    assert isinstance(finnhub, MarketData) and finnhub.name == "finnhub"
    frame = finnhub.bars(["AAPL"], Timeframe.MINUTE, DAY_1M)
    assert frame.schema == empty_raw_bars().schema
    assert frame.select("source", "vwap", "trade_count").rows() == [("finnhub", None, None)]


def test_the_request_is_exactly_the_documented_one(fake):
    source(fake).bars(["AAPL"], Timeframe.MINUTE, DAY_1M)
    (request,) = fake.requests
    assert request.path == "/stock/candle"
    # `to` is inclusive at Finnhub: the window's exclusive end minus one second.
    assert request.query == {"symbol": "AAPL", "resolution": "1", "from": str(S0), "to": str(S0 + 7200 - 1)}
    assert request.headers["x-finnhub-token"] == KEY


def test_daily_requests_cover_whole_utc_days_of_the_window(fake):
    source(fake).bars(["AAPL"], Timeframe.DAY, NOVEMBER)
    first, last = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    assert fake.requests[0].query["resolution"] == "D"
    assert fake.requested_ranges() == [(int(first.timestamp()), int(last.timestamp()) - 1)]


def test_symbols_none_is_refused(fake):
    with pytest.raises(ValueError, match=r"^finnhub needs explicit symbols$"):
        source(fake).bars(None, Timeframe.DAY, NOVEMBER)


@pytest.mark.parametrize("key", [None, ""])
def test_a_missing_key_is_refused_at_construction(tapeflow_home, key):
    with pytest.raises(VendorAuthError) as caught:
        FinnhubSource(Settings(finnhub_api_key=key))
    assert str(caught.value) == "finnhub needs TAPEFLOW_FINNHUB_API_KEY to be set"


# -- chunks (Finnhub has no paging) ------------------------------------------------------


def test_a_long_minute_window_is_asked_in_30_day_chunks_and_every_bar_comes_once(fake):
    month = timedelta(days=30)
    minute = timedelta(minutes=1)
    starts = [T0, T0 + month - minute, T0 + month, T0 + 2 * month, T0 + timedelta(days=65) - minute]
    fake.add_candles("AAPL", "1", [minute_candle(s, 100.0 + i) for i, s in enumerate(starts)])
    fake.add_candles("AAPL", "1", [minute_candle(T0 + timedelta(days=65), 999.0)])  # just past the window
    frame = source(fake).bars(["AAPL"], Timeframe.MINUTE, Window(T0, T0 + timedelta(days=65)))
    assert fake.requested_ranges() == [
        (S0, S0 + 30 * DAY_S - 1),
        (S0 + 30 * DAY_S, S0 + 60 * DAY_S - 1),
        (S0 + 60 * DAY_S, S0 + 65 * DAY_S - 1),
    ]
    assert frame["ts"].to_list() == starts
    assert frame["open"].to_list() == [100.0, 101.0, 102.0, 103.0, 104.0]


def test_a_long_daily_window_is_asked_in_365_day_chunks(fake):
    source(fake).bars(["AAPL"], Timeframe.DAY, Window.days(date(2025, 1, 1), date(2026, 6, 30)))
    first = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp())
    end = int(datetime(2026, 7, 1, tzinfo=UTC).timestamp())
    assert fake.requested_ranges() == [(first, first + 365 * DAY_S - 1), (first + 365 * DAY_S, end - 1)]


def test_no_data_is_an_empty_batch(fake):
    frame = source(fake).bars(["AAPL"], Timeframe.MINUTE, DAY_1M)
    assert frame.height == 0 and frame.schema == empty_raw_bars().schema


# -- faults ------------------------------------------------------------------------------


def test_429_waits_exactly_retry_after_then_succeeds(fake):
    fake.add_candles("AAPL", "1", minutes(2))
    fake.fail_next(429, retry_after="7")
    sleeps: list[float] = []
    frame = source(fake, sleeps).bars(["AAPL"], Timeframe.MINUTE, DAY_1M)
    assert sleeps == [7.0]
    assert frame.height == 2 and len(fake.hits()) == 2


def test_a_5xx_is_retried_after_backoff(fake):
    fake.add_candles("AAPL", "1", minutes(2))
    fake.fail_next(502)
    sleeps: list[float] = []
    assert source(fake, sleeps).bars(["AAPL"], Timeframe.MINUTE, DAY_1M).height == 2
    assert sleeps == [0.01]


def test_a_timeout_then_success(fake):
    fake.add_candles("AAPL", "1", minutes(2))
    fake.delay_next(0.6)
    policy = HttpPolicy(timeout_s=0.2, attempts=2, backoff_s=0.0, jitter=0.0)
    assert source(fake, policy=policy).bars(["AAPL"], Timeframe.MINUTE, DAY_1M).height == 2
    assert len(fake.hits()) == 2


def test_a_timeout_every_time_is_a_vendor_error(fake):
    fake.delay_next(0.6, times=2)
    policy = HttpPolicy(timeout_s=0.2, attempts=2, backoff_s=0.0, jitter=0.0)
    with pytest.raises(VendorError) as caught:
        source(fake, policy=policy).bars(["AAPL"], Timeframe.MINUTE, DAY_1M)
    assert str(caught.value) == "finnhub /stock/candle: gave up after 2 attempts (timed out after 0.2 s)"
    assert caught.value.status is None


def test_malformed_json_becomes_one_row_and_the_next_symbol_still_comes(fake):
    fake.add_candles("AAPL", "1", minutes(3))
    fake.add_candles("MSFT", "1", minutes(2, price=300.0))
    body = '{"c": [1.0, 2.0'
    fake.malformed_next(body)
    frame = source(fake).bars(["AAPL", "MSFT"], Timeframe.MINUTE, DAY_1M)
    broken = frame.row(0, named=True)
    assert (broken["symbol"], broken["payload"], broken["ts"]) == ("AAPL", body, None)
    assert broken["problem"].startswith("malformed JSON from finnhub: ")
    assert frame["symbol"].to_list() == ["AAPL", "MSFT", "MSFT"]
    result = checked(frame)
    assert result.good["open"].to_list() == [300.0, 301.0]
    (reason,) = result.rejected["reason"].to_list()
    assert reason.startswith("malformed JSON from finnhub: ")


def test_arrays_of_unequal_length_make_the_page_one_row(fake):
    fake.add_candles("AAPL", "1", minutes(2))
    fake.add_candles("MSFT", "1", minutes(1, price=300.0))
    fake.ragged_next()
    frame = source(fake).bars(["AAPL", "MSFT"], Timeframe.MINUTE, DAY_1M)
    problem = "malformed candles from finnhub: arrays of unequal length (c=2, h=2, l=2, o=2, t=2, v=1)"
    assert frame.select("symbol", "open", "problem").rows() == [("AAPL", None, problem), ("MSFT", 300.0, None)]
    assert json.loads(frame["payload"][0])["v"] == [1000.0]
    (reason,) = checked(frame).rejected["reason"].to_list()
    assert reason.startswith(problem + "; ")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("[1, 2]", "malformed candles from finnhub: expected a JSON object, got list"),
        ('{"error": "boom"}', "malformed candles from finnhub: status s=None (boom)"),
        ('{"s": "ok", "c": [1], "h": [1], "l": [1], "o": [1], "t": 5}',
         "malformed candles from finnhub: arrays missing or not lists: t, v"),
    ],
)
def test_an_answer_without_the_expected_structure_becomes_one_row(fake, body, problem):
    fake.malformed_next(body)
    frame = source(fake).bars(["AAPL"], Timeframe.MINUTE, DAY_1M)
    assert frame.select("symbol", "payload", "problem").rows() == [("AAPL", body, problem)]


def test_bad_values_are_null_and_every_candle_comes_back(fake):
    page = {"s": "ok", "c": [10.5, 10.5], "h": [11, 11], "l": [9, 9], "o": ["10", 10], "t": [S0, "x"], "v": [5, 5]}
    fake.malformed_next(json.dumps(page))
    frame = source(fake).bars(["AAPL"], Timeframe.MINUTE, DAY_1M)
    assert frame.select("ts", "open", "high").rows() == [(T0, None, 11.0), (None, 10.0, 11.0)]
    assert frame["problem"].to_list() == [None, "t (bar start, unix seconds) is missing or not an integer: 'x'"]
    assert checked(frame).rejected["reason"].to_list() == [
        "open is missing or not a number",
        "t (bar start, unix seconds) is missing or not an integer: 'x'",
    ]


# -- credentials and secrets -------------------------------------------------------------


def test_a_wrong_key_is_an_auth_error_naming_the_setting_never_the_key(fake, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "SEKRET-wrong-93aa10"
    sleeps: list[float] = []
    with pytest.raises(VendorAuthError) as caught:
        source(fake, sleeps, key=wrong).bars(["AAPL"], Timeframe.DAY, NOVEMBER)
    error = caught.value
    assert str(error) == "finnhub refused the credentials (HTTP 401): check TAPEFLOW_FINNHUB_API_KEY"
    assert error.status == 401 and sleeps == []
    shown = str(error) + repr(error) + "".join(traceback.format_exception(error)) + caplog.text
    assert wrong not in shown and KEY not in shown


def test_a_resolution_the_plan_lacks_is_a_403_auth_error(fake):
    fake.reset(denied=("1",))
    with pytest.raises(VendorAuthError) as caught:
        source(fake).bars(["AAPL"], Timeframe.MINUTE, DAY_1M)
    assert str(caught.value) == "finnhub refused the credentials (HTTP 403): check TAPEFLOW_FINNHUB_API_KEY"


def test_the_key_is_in_no_url_log_frame_or_repr(fake, caplog):
    caplog.set_level(logging.DEBUG)
    fake.add_candles("AAPL", "1", minutes(2))
    finnhub = source(fake)
    frame = finnhub.bars(["AAPL"], Timeframe.MINUTE, DAY_1M)
    assert frame.height == 2
    assert KEY not in frame.write_csv() + repr(finnhub) + caplog.text
    assert all("token" not in r.query and KEY not in json.dumps(r.query) for r in fake.requests)


def test_the_fake_checks_credentials_as_finnhub_does(fake):
    url = fake.url + "/stock/candle"
    query = {"symbol": "AAPL", "resolution": "D", "from": "0", "to": "1"}
    wrong = requests.get(url, params=query, headers={"X-Finnhub-Token": "nope"}, timeout=5)
    missing = requests.get(url, params=query, timeout=5)
    by_query = requests.get(url, params={**query, "token": KEY}, timeout=5)
    assert (wrong.status_code, wrong.json()) == (401, {"error": "Invalid API key"})
    assert (missing.status_code, missing.json()) == (401, {"error": "Please use an API key."})
    assert (by_query.status_code, by_query.json()) == (200, {"s": "no_data"})


# -- duplicates, instants, adjustment, window --------------------------------------------


def test_duplicate_rows_all_come_back_and_check_bars_keeps_one(fake):
    bar = minute_candle(T0, 100.0)
    fake.add_candles("AAPL", "1", [bar, bar])
    frame = source(fake).bars(["AAPL"], Timeframe.MINUTE, DAY_1M)
    assert frame.height == 2
    result = checked(frame)
    assert result.good.height == 1
    assert result.rejected["reason"].to_list() == ["duplicate of an earlier row in the same batch"]


@pytest.mark.parametrize(
    ("stamp", "zone"),
    [(time(0), NEW_YORK), (time(9, 30), NEW_YORK), (time(0), UTC)],
    ids=["midnight-new-york", "open-new-york", "midnight-utc"],
)
def test_daily_bars_span_the_new_york_session(fake, stamp, zone):
    days = [date(2026, 7, 1), date(2026, 11, 25), date(2026, 11, 26), date(2026, 11, 27)]
    fake.add_candles("AAPL", "D", [day_candle(d, 100.0, stamp=stamp, zone=zone) for d in days])
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
    fake.add_candles("AAPL", "1", [candle(int(winter.timestamp()), 10.0, 11.0, 9.0, 10.5, 1234), minute_candle(T0, 20.0)])
    frame = source(fake).bars(["AAPL"], Timeframe.MINUTE, Window(winter, T0 + timedelta(minutes=1)))
    assert frame.select("ts", "end_ts").rows() == [(winter, winter + timedelta(minutes=1)), (T0, T0 + timedelta(minutes=1))]
    first = frame.row(0, named=True)
    assert (first["open"], first["high"], first["low"], first["close"], first["volume"]) == (10.0, 11.0, 9.0, 10.5, 1234.0)
    assert first["timeframe"] == "1m"
    assert json.loads(first["payload"]) == {
        "c": 10.5, "h": 11.0, "l": 9.0, "o": 10.0, "t": int(winter.timestamp()), "v": 1234, "symbol": "AAPL", "resolution": "1",
    }


def test_adjustment_is_split_for_daily_and_raw_for_minute(fake):
    fake.add_candles("AAPL", "1", minutes(1))
    fake.add_candles("AAPL", "D", [day_candle(date(2026, 11, 25), 100.0)])
    finnhub = source(fake)
    assert finnhub.bars(["AAPL"], Timeframe.MINUTE, DAY_1M)["adjustment"].to_list() == ["raw"]
    assert finnhub.bars(["AAPL"], Timeframe.DAY, NOVEMBER)["adjustment"].to_list() == ["split"]


def test_only_bars_starting_inside_the_window_come_back(fake):
    fake.add_candles("AAPL", "1", minutes(6, start=T0 - timedelta(minutes=2)))
    frame = source(fake).bars(["AAPL"], Timeframe.MINUTE, Window(T0 - timedelta(seconds=30), T0 + timedelta(minutes=2)))
    assert frame["ts"].to_list() == [T0, T0 + timedelta(minutes=1)]


def test_daily_window_keeps_sessions_whose_open_is_inside(fake):
    fake.add_candles("AAPL", "D", [day_candle(date(2026, 11, d), 100.0 + d) for d in (23, 24, 25)])
    # From the 23rd's close to the 25th's open: only the 24th's open lies inside.
    window = Window(datetime(2026, 11, 23, 21, tzinfo=UTC), datetime(2026, 11, 25, 14, 30, tzinfo=UTC))
    assert source(fake).bars(["AAPL"], Timeframe.DAY, window)["open"].to_list() == [124.0]


def test_symbols_are_asked_one_after_another(fake):
    fake.add_candles("AAPL", "1", minutes(1))
    fake.add_candles("MSFT", "1", minutes(1, price=300.0))
    frame = source(fake).bars(["MSFT", "AAPL"], Timeframe.MINUTE, DAY_1M)
    assert frame.select("symbol", "open").rows() == [("MSFT", 300.0), ("AAPL", 100.0)]
