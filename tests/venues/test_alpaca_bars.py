"""The Alpaca source through the real alpaca-py client against a loopback fake of Alpaca's
data API: paging, retries, timeouts, malformed pages, credentials, instants, adjustment."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
import requests
from alpaca.data.enums import Adjustment as AlpacaAdjustment

from tapeflow.config import Settings
from tapeflow.ingest.bars import check_bars
from tapeflow.schemas import RAW_COLUMNS
from tapeflow.sources.base import MarketData, Window, empty_raw_bars
from tapeflow.sources.http import HttpPolicy, VendorAuthError, VendorError
from tapeflow.venues.alpaca.bars import AlpacaSource
from tests.fakes.alpaca_data import MALFORMED_PAGE, AlpacaDataFake

KEY = "SEKRET-KEY-7f3a9e"
SECRET = "SEKRET-SECRET-c41d2b"
UTC = UTC
MARCH_2 = Window(datetime(2026, 3, 2, 14, 30, tzinfo=UTC), datetime(2026, 3, 2, 21, 0, tzinfo=UTC))
FAST = HttpPolicy(timeout_s=2.0, attempts=3, backoff_s=0.5, jitter=0.25)


def minute(t: str, price: float = 100.0, **extra: object) -> dict[str, object]:
    """An Alpaca minute bar as the API sends it."""
    return {"t": t, "o": price, "h": price + 1, "l": price - 1, "c": price + 0.5, "v": 1200, "n": 17, "vw": price + 0.2, **extra}


def minutes(start: datetime, count: int, price: float = 100.0) -> list[dict[str, object]]:
    return [minute((start + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"), price + i) for i in range(count)]


@pytest.fixture(scope="module")
def server() -> Iterator[AlpacaDataFake]:
    with AlpacaDataFake(KEY, SECRET, page_cap=3) as running:
        yield running


@pytest.fixture
def fake(server) -> AlpacaDataFake:
    """The module's fake, emptied: one server for all tests keeps the file fast."""
    server.reset()
    return server


@pytest.fixture
def make(fake, tapeflow_home):
    """Build an AlpacaSource on the fake; sleeps are recorded, never slept."""
    sleeps: list[float] = []

    def build(policy: HttpPolicy = FAST, **overrides: object) -> AlpacaSource:
        fields = {"alpaca_api_key": KEY, "alpaca_secret_key": SECRET, "alpaca_data_url": fake.url, **overrides}
        kwargs = {k: fields.pop(k) for k in ("adjustment", "symbols_per_request", "clock") if k in fields}
        return AlpacaSource(Settings(**fields), policy=policy, sleep=sleeps.append, **kwargs)

    build.sleeps = sleeps  # type: ignore[attr-defined]
    return build


def bars_of(frame: pl.DataFrame) -> list[tuple[str, str, float]]:
    return [(r["symbol"], r["ts"].strftime("%H:%M"), r["open"]) for r in frame.iter_rows(named=True)]


# -- shape and configuration -------------------------------------------------------------


def test_it_is_a_market_data_source_with_the_raw_batch_columns(fake, make):
    source = make()
    assert isinstance(source, MarketData) and source.name == "alpaca"
    fake.add_bars("AAPL", "1Min", minutes(MARCH_2.start, 1))
    frame = source.bars(["AAPL"], "1m", MARCH_2)
    assert frame.columns == [*RAW_COLUMNS, "problem"]
    assert frame.schema == empty_raw_bars().schema


def test_symbols_none_and_empty(make):
    with pytest.raises(ValueError, match="alpaca needs explicit symbols"):
        make().bars(None, "1m", MARCH_2)
    assert make().bars([], "1m", MARCH_2).height == 0


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"alpaca_api_key": None}, "TAPEFLOW_ALPACA_API_KEY"),
        ({"alpaca_secret_key": None}, "TAPEFLOW_ALPACA_SECRET_KEY"),
        ({"alpaca_api_key": ""}, "TAPEFLOW_ALPACA_API_KEY"),
    ],
)
def test_missing_key_is_refused_at_construction(make, overrides, named):
    with pytest.raises(VendorAuthError) as caught:
        make(**overrides)
    assert str(caught.value) == f"alpaca needs {named} to be set"


def test_feed_comes_from_settings_and_is_checked(fake, make):
    fake.add_bars("AAPL", "1Min", minutes(MARCH_2.start, 1))
    make(alpaca_feed="sip").bars(["AAPL"], "1m", MARCH_2)
    assert fake.hits()[-1].query["feed"] == "sip"
    make().bars(["AAPL"], "1m", MARCH_2)
    assert fake.hits()[-1].query["feed"] == "iex"  # the default
    with pytest.raises(ValueError, match="TAPEFLOW_ALPACA_FEED must be one of sip, iex, not 'opra'"):
        make(alpaca_feed="opra")


def test_repr_names_url_and_feed_but_no_key(make):
    source = make()
    assert repr(source) == f"AlpacaSource(url={source.url!r}, feed='iex', adjustment='raw')"
    assert KEY not in repr(source) and SECRET not in repr(source)


# -- paging ------------------------------------------------------------------------------


def test_multi_symbol_paging_returns_every_bar_in_order(fake, make):
    fake.add_bars("AAPL", "1Min", minutes(MARCH_2.start, 5, 100.0))
    fake.add_bars("MSFT", "1Min", minutes(MARCH_2.start, 4, 400.0))
    frame = make().bars(["MSFT", "AAPL"], "1m", MARCH_2)
    assert bars_of(frame) == [
        ("AAPL", "14:30", 100.0), ("AAPL", "14:31", 101.0), ("AAPL", "14:32", 102.0), ("AAPL", "14:33", 103.0),
        ("AAPL", "14:34", 104.0), ("MSFT", "14:30", 400.0), ("MSFT", "14:31", 401.0), ("MSFT", "14:32", 402.0),
        ("MSFT", "14:33", 403.0),
    ]
    hits = fake.hits("/v2/stocks/bars")
    # 9 bars at a page cap of 3: alpaca-py followed next_page_token twice, in one request series.
    assert [h.query.get("page_token") for h in hits] == [None, "b2Zmc2V0OjM=", "b2Zmc2V0OjY="]
    assert hits[0].query == {
        "symbols": "MSFT,AAPL", "timeframe": "1Min", "start": "2026-03-02T14:30:00+00:00",
        "end": "2026-03-02T21:00:00+00:00", "limit": "10000", "feed": "iex", "adjustment": "raw",
    }
    assert hits[0].headers["apca-api-key-id"] == KEY  # the SDK, not tapeflow, sends the keys


def test_empty_pages_with_a_token_are_followed(fake, make):
    fake.add_bars("AAPL", "1Min", minutes(MARCH_2.start, 4))
    fake.empty_pages_next(2)
    frame = make().bars(["AAPL"], "1m", MARCH_2)
    assert frame["open"].to_list() == [100.0, 101.0, 102.0, 103.0]
    assert len(fake.hits()) == 4  # two empty pages, then two pages of bars


def test_symbols_are_batched_per_request(fake, make):
    for i, symbol in enumerate(["A", "B", "C"]):
        fake.add_bars(symbol, "1Min", minutes(MARCH_2.start, 1, 10.0 * (i + 1)))
    frame = make(symbols_per_request=2).bars(["A", "B", "C", "A"], "1m", MARCH_2)
    assert bars_of(frame) == [("A", "14:30", 10.0), ("B", "14:30", 20.0), ("C", "14:30", 30.0)]
    assert [h.query["symbols"] for h in fake.hits()] == ["A,B", "C"]


def test_duplicate_rows_from_the_vendor_both_come_back(fake, make):
    bar = minute("2026-03-02T15:00:00Z", 50.0)
    fake.add_bars("AAPL", "1Min", [bar, dict(bar)])
    frame = make().bars(["AAPL"], "1m", MARCH_2)
    assert frame.height == 2
    checked = check_bars(frame)
    assert checked.good.height == 1
    assert checked.rejected["reason"].to_list() == ["duplicate of an earlier row in the same batch"]


# -- instants, values, payload ---------------------------------------------------------


def test_minute_bar_instants_values_and_payload(fake, make):
    bar = minute("2026-03-02T15:07:00Z", 187.25)
    fake.add_bars("AAPL", "1Min", [bar])
    row = make().bars(["AAPL"], "1m", MARCH_2).row(0, named=True)
    assert row["ts"] == datetime(2026, 3, 2, 15, 7, tzinfo=UTC)  # t is the bar's start
    assert row["end_ts"] == datetime(2026, 3, 2, 15, 8, tzinfo=UTC)
    assert (row["open"], row["high"], row["low"], row["close"]) == (187.25, 188.25, 186.25, 187.75)
    assert (row["volume"], row["vwap"], row["trade_count"]) == (1200.0, 187.45, 17)
    assert (row["timeframe"], row["source"], row["adjustment"], row["problem"]) == ("1m", "alpaca", "raw", None)
    assert json.loads(row["payload"]) == {"S": "AAPL", **bar}


@pytest.mark.parametrize(
    ("t", "day", "open_utc", "close_utc"),
    [
        ("2026-03-02T05:00:00Z", date(2026, 3, 2), (14, 30), (21, 0)),  # EST: 09:30-16:00 New York
        ("2026-07-01T04:00:00Z", date(2026, 7, 1), (13, 30), (20, 0)),  # EDT
        ("2026-11-27T05:00:00Z", date(2026, 11, 27), (14, 30), (18, 0)),  # day after Thanksgiving: 13:00 close
    ],
)
def test_daily_bar_spans_its_new_york_session(fake, make, t, day, open_utc, close_utc):
    fake.add_bars("SPY", "1Day", [minute(t, 500.0)])
    row = make().bars(["SPY"], "1d", Window.days(day, day)).row(0, named=True)
    assert row["ts"] == datetime(day.year, day.month, day.day, *open_utc, tzinfo=UTC)
    assert row["end_ts"] == datetime(day.year, day.month, day.day, *close_utc, tzinfo=UTC)
    assert (row["timeframe"], row["open"], row["problem"]) == ("1d", 500.0, None)


def test_daily_request_starts_at_new_york_midnight_so_the_bar_is_found(fake, make):
    # Asked from the 09:30 open, the vendor's midnight stamp would fall before `start`.
    fake.add_bars("SPY", "1Day", [minute("2026-03-02T05:00:00Z"), minute("2026-03-03T05:00:00Z")])
    frame = make().bars(["SPY"], "1d", Window(datetime(2026, 3, 2, 14, 30, tzinfo=UTC), datetime(2026, 3, 3, 14, 30, tzinfo=UTC)))
    assert frame["ts"].to_list() == [datetime(2026, 3, 2, 14, 30, tzinfo=UTC)]
    assert fake.hits()[0].query["start"] == "2026-03-02T05:00:00+00:00"
    assert fake.hits()[0].query["timeframe"] == "1Day"


def test_daily_bar_on_a_holiday_is_kept_with_a_problem(fake, make):
    fake.add_bars("SPY", "1Day", [minute("2026-11-26T05:00:00Z")])  # Thanksgiving
    frame = make().bars(["SPY"], "1d", Window.days(date(2026, 11, 26), date(2026, 11, 26)))
    assert frame["problem"].to_list() == ["2026-11-26 is not an XNYS session"]
    assert check_bars(frame).rejected["reason"].to_list() == ["2026-11-26 is not an XNYS session"]


def test_window_keeps_starts_in_start_inclusive_end_exclusive(fake, make):
    window = Window(datetime(2026, 3, 2, 15, 0, tzinfo=UTC), datetime(2026, 3, 2, 15, 3, tzinfo=UTC))
    fake.add_bars("AAPL", "1Min", minutes(datetime(2026, 3, 2, 14, 59, tzinfo=UTC), 5))
    frame = make().bars(["AAPL"], "1m", window)
    # Alpaca's end is inclusive, so the vendor sends 15:00..15:03; 15:03 is not in [15:00, 15:03).
    assert [t.strftime("%H:%M") for t in frame["ts"]] == ["15:00", "15:01", "15:02"]


def test_fields_that_do_not_parse_are_null_and_check_bars_names_them(fake, make):
    fake.add_bars("AAPL", "1Min", [
        {"t": "2026-03-02T15:00:00Z", "o": "abc", "h": 2.0, "l": 1.0, "c": 1.5, "v": 10, "n": 1, "vw": 1.5},
        {"t": "yesterday", "o": 1.0, "h": 2.0, "l": 1.0, "c": 1.5, "v": 10, "n": 1, "vw": 1.5},
    ])
    frame = make().bars(["AAPL"], "1m", MARCH_2)
    assert frame.height == 2  # the undatable bar is not dropped by the window
    assert frame["open"].to_list() == [None, 1.0]
    reasons = check_bars(frame).rejected["reason"].to_list()
    assert reasons == ["open is missing or not a number", "t is not an RFC-3339 instant ('yesterday')"]


# -- adjustment ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("adjustment", "sent", "flag"),
    [(AlpacaAdjustment.RAW, "raw", "raw"), (AlpacaAdjustment.SPLIT, "split", "split"), (AlpacaAdjustment.ALL, "all", "all")],
)
def test_adjustment_is_sent_and_flagged(fake, make, adjustment, sent, flag):
    fake.add_bars("AAPL", "1Min", minutes(MARCH_2.start, 1))
    frame = make(adjustment=adjustment).bars(["AAPL"], "1m", MARCH_2)
    assert fake.hits()[0].query["adjustment"] == sent
    assert frame["adjustment"].to_list() == [flag]


def test_dividend_only_adjustment_is_refused(make):
    with pytest.raises(ValueError, match="adjustment 'dividend' has no tapeflow flag"):
        make(adjustment=AlpacaAdjustment.DIVIDEND)


# -- retries, rate limits, timeouts ---------------------------------------------------------


def test_429_with_retry_after_waits_as_asked_then_succeeds(fake, make):
    fake.add_bars("AAPL", "1Min", minutes(MARCH_2.start, 2))
    fake.fail_next(429, retry_after="2")
    source = make()
    frame = source.bars(["AAPL"], "1m", MARCH_2)
    assert frame.height == 2
    assert make.sleeps == [2.0]
    assert len(fake.hits()) == 2


def test_429_without_retry_after_waits_until_the_rate_limit_reset(fake, make):
    now = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    fake.add_bars("AAPL", "1Min", minutes(MARCH_2.start, 1))
    fake.fail_next(429, rate_limit_reset=int(now.timestamp()) + 3)
    assert make(clock=lambda: now).bars(["AAPL"], "1m", MARCH_2).height == 1
    assert make.sleeps == [3.0]


def test_429_every_time_gives_up_after_the_policy_attempts(fake, make):
    fake.fail_next(429, times=5, retry_after="1")
    with pytest.raises(VendorError) as caught:
        make().bars(["AAPL"], "1m", MARCH_2)
    assert str(caught.value) == "alpaca /v2/stocks/bars: gave up after 3 attempts (HTTP 429: too many requests.)"
    assert caught.value.status == 429 and not isinstance(caught.value, VendorAuthError)
    assert len(fake.hits()) == 3 and make.sleeps == [1.0, 1.0]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_then_success(fake, make, status):
    fake.add_bars("AAPL", "1Min", minutes(MARCH_2.start, 2))
    fake.fail_next(status)
    assert make().bars(["AAPL"], "1m", MARCH_2)["open"].to_list() == [100.0, 101.0]
    assert len(fake.hits()) == 2
    assert len(make.sleeps) == 1 and 0.375 <= make.sleeps[0] <= 0.625  # backoff 0.5 s +/- 25 %


def test_422_is_not_retried_and_carries_the_vendor_message(fake, make):
    fake.fail_next(422, body={"message": "invalid timeframe"})
    with pytest.raises(VendorError) as caught:
        make().bars(["AAPL"], "1m", MARCH_2)
    assert str(caught.value) == "alpaca /v2/stocks/bars: HTTP 422: invalid timeframe"
    assert caught.value.status == 422 and len(fake.hits()) == 1 and make.sleeps == []


def test_a_timeout_is_retried_then_succeeds(fake, make):
    fake.add_bars("AAPL", "1Min", minutes(MARCH_2.start, 2))
    fake.delay_next(1.0)
    frame = make(HttpPolicy(timeout_s=0.2, attempts=3)).bars(["AAPL"], "1m", MARCH_2)
    assert frame.height == 2
    assert len(fake.hits()) == 2 and len(make.sleeps) == 1


def test_a_timeout_every_time_is_a_vendor_error(fake, make):
    fake.delay_next(1.0, times=2)
    with pytest.raises(VendorError) as caught:
        make(HttpPolicy(timeout_s=0.2, attempts=2)).bars(["AAPL"], "1m", MARCH_2)
    assert str(caught.value) == "alpaca /v2/stocks/bars: gave up after 2 attempts (timed out after 0.2 s)"
    assert len(fake.hits()) == 2 and len(make.sleeps) == 1


def test_attempts_come_from_settings_when_no_policy_is_given(fake, tapeflow_home):
    sleeps: list[float] = []
    settings = Settings(alpaca_api_key=KEY, alpaca_secret_key=SECRET, alpaca_data_url=fake.url, http_attempts=2, http_timeout_s=0.2)
    source = AlpacaSource(settings, sleep=sleeps.append)
    assert (source.policy.attempts, source.policy.timeout_s) == (2, 0.2)
    fake.fail_next(503, times=2)
    with pytest.raises(VendorError, match=r"gave up after 2 attempts \(HTTP 503: service unavailable\)"):
        source.bars(["AAPL"], "1m", MARCH_2)
    assert len(fake.hits()) == 2 and len(sleeps) == 1


# -- malformed pages -----------------------------------------------------------------------


def test_malformed_page_becomes_one_row_and_the_run_continues(fake, make):
    fake.add_bars("MSFT", "1Min", minutes(MARCH_2.start, 2, 400.0))
    fake.malformed_next(MALFORMED_PAGE)
    frame = make(symbols_per_request=1).bars(["AAPL", "MSFT"], "1m", MARCH_2)
    assert frame["symbol"].to_list() == ["AAPL", "MSFT", "MSFT"]
    bad = frame.row(0, named=True)
    assert bad["payload"] == MALFORMED_PAGE
    assert bad["problem"].startswith("malformed JSON from alpaca: ")
    assert bad["problem"].endswith("(/v2/stocks/bars, symbols AAPL, after 0 good pages)")
    assert (bad["ts"], bad["open"], bad["source"]) == (None, None, "alpaca")
    checked = check_bars(frame)
    assert checked.good["symbol"].to_list() == ["MSFT", "MSFT"]
    assert checked.rejected.height == 1
    assert checked.rejected["reason"].item().startswith(bad["problem"] + "; open is missing")
    assert checked.rejected["payload"].to_list() == [MALFORMED_PAGE]


def test_malformed_second_page_keeps_the_first_pages_bars(fake, make):
    fake.add_bars("AAPL", "1Min", minutes(MARCH_2.start, 2, 100.0))
    fake.add_bars("MSFT", "1Min", minutes(MARCH_2.start, 3, 400.0))
    fake.delay_next(0.0)  # the first page is served normally; the second is broken
    fake.malformed_next(MALFORMED_PAGE)
    frame = make().bars(["AAPL", "MSFT"], "1m", MARCH_2)
    assert bars_of(frame.head(3)) == [("AAPL", "14:30", 100.0), ("AAPL", "14:31", 101.0), ("MSFT", "14:30", 400.0)]
    last = frame.row(3, named=True)
    assert frame.height == 4 and last["symbol"] is None and last["payload"] == MALFORMED_PAGE
    assert last["problem"].endswith("(/v2/stocks/bars, symbols AAPL,MSFT, after 1 good pages)")
    assert len(fake.hits()) == 2  # no cursor to follow after a broken page


def test_json_without_the_bars_object_is_a_malformed_page(fake, make):
    fake.malformed_next('{"trades": {}}')
    frame = make().bars(["AAPL"], "1m", MARCH_2)
    assert frame["problem"].to_list() == [
        'unexpected response from alpaca: the page has no "bars" object (/v2/stocks/bars, symbols AAPL, after 0 good pages)'
    ]
    assert frame["payload"].to_list() == ['{"trades": {}}']


def test_a_long_malformed_page_is_cut_to_20000_characters(fake, make):
    fake.malformed_next("x" * 25_000)
    assert make().bars(["AAPL"], "1m", MARCH_2)["payload"].str.len_chars().to_list() == [20_000]


# -- credentials and secrets ----------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_name_the_settings(fake, make, status):
    fake.fail_next(status)
    with pytest.raises(VendorAuthError) as caught:
        make().bars(["AAPL"], "1m", MARCH_2)
    assert "TAPEFLOW_ALPACA_API_KEY and TAPEFLOW_ALPACA_SECRET_KEY" in str(caught.value)
    assert caught.value.status == status and len(fake.hits()) == 1


def test_wrong_secret_against_the_fake_is_403_and_leaks_nothing(fake, make, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    wrong = "SEKRET-WRONG-99x"
    source = make(alpaca_secret_key=wrong)
    with pytest.raises(VendorAuthError) as caught:
        source.bars(["AAPL"], "1m", MARCH_2)
    assert str(caught.value).startswith("alpaca refused the credentials (HTTP 403: forbidden): check TAPEFLOW_ALPACA_API_KEY")
    seen = " ".join([str(caught.value), repr(caught.value), repr(source), caplog.text, *capsys.readouterr()])
    for secret in (KEY, wrong):
        assert secret not in seen


def test_a_key_echoed_by_the_vendor_is_masked(fake, make):
    fake.fail_next(400, body={"message": f"bad key {KEY}"})
    with pytest.raises(VendorError) as caught:
        make().bars(["AAPL"], "1m", MARCH_2)
    assert str(caught.value) == "alpaca /v2/stocks/bars: HTTP 400: bad key **********"
    fake.add_bars("AAPL", "1Min", [minute("2026-03-02T15:00:00Z", note=SECRET)])
    payload = make().bars(["AAPL"], "1m", MARCH_2)["payload"].item()
    assert SECRET not in payload and '"note": "**********"' in payload


def test_no_key_in_the_frame_or_logs_on_a_normal_run(fake, make, caplog):
    caplog.set_level(logging.DEBUG)
    fake.add_bars("AAPL", "1Min", minutes(MARCH_2.start, 4))
    frame = make().bars(["AAPL"], "1m", MARCH_2)
    text = frame.write_csv() + caplog.text
    assert KEY not in text and SECRET not in text


# -- latest bar ------------------------------------------------------------------------------


def test_latest_bar_that_has_ended_is_returned_as_is(fake, make):
    fake.set_latest("AAPL", minute("2026-03-02T15:58:00Z", 190.0))
    now = datetime(2026, 3, 2, 15, 59, 30, tzinfo=UTC)
    frame = make(clock=lambda: now).latest_bars(["AAPL"])
    assert bars_of(frame) == [("AAPL", "15:58", 190.0)]
    assert frame["end_ts"].to_list() == [datetime(2026, 3, 2, 15, 59, tzinfo=UTC)]
    assert [h.path for h in fake.hits()] == ["/v2/stocks/bars/latest"]
    assert fake.hits()[0].query == {"symbols": "AAPL", "feed": "iex"}


def test_a_still_forming_latest_bar_is_replaced_by_the_last_completed_one(fake, make):
    now = datetime(2026, 3, 2, 15, 59, 30, tzinfo=UTC)
    fake.set_latest("AAPL", minute("2026-03-02T15:59:00Z", 191.0))  # ends 16:00, after now
    fake.set_latest("MSFT", minute("2026-03-02T15:57:00Z", 401.0))
    fake.add_bars("AAPL", "1Min", minutes(datetime(2026, 3, 2, 15, 56, tzinfo=UTC), 4, 186.0))
    frame = make(clock=lambda: now).latest_bars(["AAPL", "MSFT"])
    assert bars_of(frame) == [("MSFT", "15:57", 401.0), ("AAPL", "15:58", 188.0)]
    assert (frame["end_ts"] <= now).all()
    # The fallback asks for AAPL's recent minutes only (two pages at the fake's cap of 3).
    assert [h.path for h in fake.hits()] == ["/v2/stocks/bars/latest", "/v2/stocks/bars", "/v2/stocks/bars"]
    assert fake.hits()[1].query["symbols"] == "AAPL"
    assert fake.hits()[1].query["start"] == "2026-03-02T15:29:30+00:00"  # now - 30 min lookback


def test_latest_bars_malformed_page_is_one_problem_row(fake, make):
    fake.malformed_next('{"bars": {"AAPL": [1, 2]}}')
    frame = make().latest_bars(["AAPL"])
    assert frame["symbol"].to_list() == ["AAPL"]
    assert frame["problem"].item().startswith('unexpected response from alpaca: "bars" holds something other than objects')


# -- the fake itself speaks Alpaca --------------------------------------------------------------


def test_fake_answers_like_alpaca(fake):
    url = f"{fake.url}/v2/stocks/bars"
    good = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
    params = {"symbols": "AAPL", "timeframe": "1Min"}
    missing = requests.get(url, params=params, timeout=5)
    assert (missing.status_code, missing.json()) == (401, {"message": "unauthorized."})
    wrong = requests.get(url, params=params, headers={**good, "APCA-API-SECRET-KEY": "nope"}, timeout=5)
    assert (wrong.status_code, wrong.json()) == (403, {"message": "forbidden"})
    bad = requests.get(url, params={**params, "timeframe": "1Minute"}, headers=good, timeout=5)
    assert (bad.status_code, bad.json()) == (422, {"message": "invalid timeframe: 1Minute"})
    fake.fail_next(429, rate_limit_reset=1_800_000_000)
    limited = requests.get(url, params=params, headers=good, timeout=5)
    assert (limited.status_code, limited.json()) == (429, {"message": "too many requests."})
    assert limited.headers["X-RateLimit-Reset"] == "1800000000" and limited.headers["X-RateLimit-Remaining"] == "0"
    empty = requests.get(url, params=params, headers=good, timeout=5)
    assert empty.json() == {"bars": {}, "next_page_token": None, "currency": "USD"}


def test_fake_refuses_sip_without_a_subscription(fake, make):
    fake.sip_allowed = False
    with pytest.raises(VendorAuthError) as caught:
        make(alpaca_feed="sip").bars(["AAPL"], "1m", MARCH_2)
    assert "subscription does not permit querying recent SIP data" in str(caught.value)
    assert "TAPEFLOW_ALPACA_FEED" in str(caught.value)
