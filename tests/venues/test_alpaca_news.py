"""Alpaca news through the real alpaca-py clients against loopback fakes: the REST source
(`NewsClient`: paging, filters, retries, malformed pages and items, credentials) and the
real-time stream (`NewsDataStream`: auth, subscribe, pushed items, bad frames, stopping)."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import msgpack
import polars as pl
import pytest

from tapeflow.config import Settings
from tapeflow.ingest.news import check_news
from tapeflow.news.base import NewsSource
from tapeflow.schemas import RAW_NEWS_SCHEMA
from tapeflow.sources.base import Window
from tapeflow.sources.http import HttpPolicy, VendorAuthError, VendorError
from tapeflow.venues.alpaca.news import AlpacaNews
from tapeflow.venues.alpaca.news_stream import AlpacaNewsStream
from tapeflow.venues.configured import news_source
from tests.fakes.alpaca_news import (
    MALFORMED_NEWS_PAGE,
    AlpacaNewsFake,
    AlpacaNewsStreamFake,
    news_item,
)

KEY = "SEKRET-KEY-n3ws-5a1f"
SECRET = "SEKRET-SECRET-n3ws-77c0"
UTC = UTC
OPEN = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
SESSION = Window(OPEN, datetime(2026, 3, 2, 21, 0, tzinfo=UTC))
AFTER_CLOSE = datetime(2026, 3, 2, 22, 0, tzinfo=UTC)
FAST = HttpPolicy(timeout_s=2.0, attempts=3, backoff_s=0.5, jitter=0.25)
CREDENTIALS = "check TAPEFLOW_ALPACA_API_KEY and TAPEFLOW_ALPACA_SECRET_KEY"


def at(minutes: int) -> datetime:
    return OPEN + timedelta(minutes=minutes)


def leaked(text: str, *secrets: str) -> list[str]:
    """The keys found in `text`: as text, or as websockets' frame log shows bytes (spaced hex,
    first 16 and last 8 bytes of a frame; the keys end the auth frame)."""
    forms = []
    for secret in (KEY, SECRET, *secrets):
        raw = secret.encode()
        forms += [secret, raw.hex(), " ".join(f"{b:02x}" for b in raw[-8:])]
    return [form for form in forms if form in text]


# -- REST: fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rest_server() -> Iterator[AlpacaNewsFake]:
    with AlpacaNewsFake(KEY, SECRET, page_cap=2) as running:
        yield running


@pytest.fixture
def rest(rest_server) -> AlpacaNewsFake:
    rest_server.reset()
    return rest_server


@pytest.fixture
def make(rest, tapeflow_home):
    """An AlpacaNews on the fake; sleeps recorded, never slept; the clock ticks a second a call."""
    sleeps: list[float] = []

    def build(policy: HttpPolicy = FAST, now: Callable[[], datetime] | None = None, **overrides: object) -> AlpacaNews:
        ticks = iter(range(10_000))
        clock = now or (lambda: AFTER_CLOSE + timedelta(seconds=next(ticks)))
        fields = {"alpaca_api_key": KEY, "alpaca_secret_key": SECRET, "alpaca_data_url": rest.url, **overrides}
        return AlpacaNews(Settings(**fields), policy=policy, sleep=sleeps.append, now=clock)

    build.sleeps = sleeps  # type: ignore[attr-defined]
    return build


# -- REST: shape, keys, paging ---------------------------------------------------------------


def test_it_is_a_news_source_with_the_raw_columns(rest, make):
    source = make()
    assert isinstance(source, NewsSource) and source.name == "alpaca"
    made = news_source("alpaca", Settings(alpaca_api_key=KEY, alpaca_secret_key=SECRET, alpaca_data_url=rest.url))
    assert isinstance(made, AlpacaNews) and made.url == rest.url
    rest.add_news(news_item(1, "Apple beats", at(5), symbols=["AAPL"]))
    frame = source.news(["AAPL"], SESSION)
    assert frame.schema == pl.Schema(RAW_NEWS_SCHEMA)
    assert repr(source) == f"AlpacaNews(url={rest.url!r})"


@pytest.mark.parametrize(
    ("overrides", "named"),
    [({"alpaca_api_key": None}, "TAPEFLOW_ALPACA_API_KEY"), ({"alpaca_secret_key": ""}, "TAPEFLOW_ALPACA_SECRET_KEY")],
)
def test_missing_keys_are_refused_at_construction(make, overrides, named):
    with pytest.raises(VendorAuthError, match=f"^alpaca needs {named} to be set$"):
        make(**overrides)


def test_multi_page_fetch_maps_every_field_and_stamps_each_page(rest, make):
    item = news_item(
        24843171, "Apple Leader in Phone Sales in China", at(1), symbols=["AAPL", "msft"],
        updated_at=at(2), summary="Apple led for a second month", author="Charles Gross",
        url="https://www.benzinga.com/news/24843171",
    )
    rest.add_news(item, *[news_item(100 + i, f"Headline {i}", at(10 + i), symbols=["AAPL"]) for i in range(4)])
    frame = make().news(["AAPL", "MSFT", "AAPL"], SESSION)
    assert frame["id"].to_list() == ["24843171", "100", "101", "102", "103"]
    first = frame.row(0, named=True)
    assert first == {
        "source": "alpaca", "id": "24843171", "published_at": at(1), "fetched_at": AFTER_CLOSE,
        "headline": "Apple Leader in Phone Sales in China", "summary": "Apple led for a second month",
        "url": "https://www.benzinga.com/news/24843171", "tickers": ["AAPL", "MSFT"], "category": "benzinga",
        "author": "Charles Gross", "payload": first["payload"], "problem": None,
    }
    assert json.loads(first["payload"])["created_at"] == "2026-03-02T14:31:00Z"
    assert json.loads(first["payload"])["symbols"] == ["AAPL", "msft"]  # the vendor's item, untouched
    # Five items at the fake's page cap of 2: three pages, each stamped when it arrived.
    ticks = [int((t - AFTER_CLOSE).total_seconds()) for t in frame["fetched_at"]]
    assert ticks == [0, 0, 1, 1, 2]
    hits = rest.hits("/v1beta1/news")
    assert [bool(h.query.get("page_token")) for h in hits] == [False, True, True]
    assert hits[0].query == {
        "symbols": "AAPL,MSFT", "start": "2026-03-02T14:30:00+00:00", "end": "2026-03-02T21:00:00+00:00",
        "sort": "asc", "limit": "50",
    }
    assert (hits[0].headers["apca-api-key-id"], hits[0].headers["apca-api-secret-key"]) == (KEY, SECRET)
    assert check_news(frame).good.height == 5


def test_symbols_filter_and_all_news(rest, make):
    rest.add_news(
        news_item(1, "Apple", at(1), symbols=["AAPL"]), news_item(2, "Tesla", at(2), symbols=["TSLA"]),
        news_item(3, "Fed holds rates", at(3), symbols=[]),
    )
    assert make().news(["TSLA"], SESSION)["headline"].to_list() == ["Tesla"]
    everything = make().news(None, SESSION)
    assert everything["headline"].to_list() == ["Apple", "Tesla", "Fed holds rates"]
    assert "symbols" not in rest.hits()[-1].query
    assert everything["tickers"].to_list()[2] == []
    assert make().news([], SESSION).height == 0


def test_window_keeps_start_inclusive_end_exclusive(rest, make):
    window = Window(at(10), at(20))
    rest.add_news(*[news_item(i, f"at {m}", at(m), symbols=["AAPL"]) for i, m in enumerate([9, 10, 15, 20, 21])])
    frame = make().news(["AAPL"], window)
    # The vendor's end is inclusive, so the item at 14:50 comes back; [14:40, 14:50) leaves it out.
    assert frame["headline"].to_list() == ["at 10", "at 15"]
    assert (rest.hits()[0].query["start"], rest.hits()[0].query["end"]) == ("2026-03-02T14:40:00+00:00", "2026-03-02T14:50:00+00:00")


def test_a_repeated_page_token_ends_paging_with_a_problem_row(rest, make):
    rest.add_news(*[news_item(i, f"h{i}", at(i), symbols=["AAPL"]) for i in range(1, 7)])
    rest.repeat_token_next()  # the second page sends back the token it was asked with
    frame = make().news(["AAPL"], SESSION)
    assert frame["headline"].to_list()[:4] == ["h1", "h2", "h3", "h4"]
    last = frame.row(-1, named=True)
    assert last["problem"] == "alpaca sent the same page token twice; paging stopped after 2 pages"
    assert json.loads(last["payload"])["pages"] == 2
    assert len(rest.hits()) == 2
    assert check_news(frame).rejected["reason"].to_list() == [last["problem"]]


# -- REST: retries and errors ----------------------------------------------------------------


def test_429_with_retry_after_waits_as_asked_then_succeeds(rest, make):
    rest.add_news(news_item(1, "Apple", at(1), symbols=["AAPL"]))
    rest.fail_next(429, retry_after="2")
    assert make().news(["AAPL"], SESSION)["id"].to_list() == ["1"]
    assert make.sleeps == [2.0] and len(rest.hits()) == 2


def test_5xx_every_time_gives_up_after_the_policy_attempts(rest, make):
    rest.fail_next(503, times=5)
    with pytest.raises(VendorError) as caught:
        make().news(["AAPL"], SESSION)
    assert str(caught.value) == "alpaca /v1beta1/news: gave up after 3 attempts (HTTP 503: service unavailable)"
    assert caught.value.status == 503 and not isinstance(caught.value, VendorAuthError)
    assert len(rest.hits()) == 3 and len(make.sleeps) == 2


def test_a_timeout_is_retried_then_succeeds(rest, make):
    rest.add_news(news_item(1, "Apple", at(1), symbols=["AAPL"]))
    rest.delay_next(1.0)
    assert make(HttpPolicy(timeout_s=0.2, attempts=2)).news(["AAPL"], SESSION).height == 1
    assert len(rest.hits()) == 2 and len(make.sleeps) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_name_the_settings(rest, make, status):
    rest.fail_next(status)
    with pytest.raises(VendorAuthError) as caught:
        make().news(["AAPL"], SESSION)
    assert str(caught.value).endswith(CREDENTIALS)
    assert caught.value.status == status and len(rest.hits()) == 1  # not retried


def test_422_is_not_retried_and_carries_the_vendor_message(rest, make):
    rest.fail_next(422, body={"message": "invalid sort"})
    with pytest.raises(VendorError, match=r"^alpaca /v1beta1/news: HTTP 422: invalid sort$"):
        make().news(["AAPL"], SESSION)
    assert len(rest.hits()) == 1


# -- REST: malformed pages and items -----------------------------------------------------------


def test_a_malformed_page_becomes_one_quarantine_bound_row(rest, make):
    rest.add_news(*[news_item(i, f"h{i}", at(i), symbols=["AAPL"]) for i in range(1, 5)])
    rest.delay_next(0.0)  # the first page is served normally; the second is broken
    rest.malformed_next(MALFORMED_NEWS_PAGE)
    frame = make().news(["AAPL"], SESSION)
    assert frame["headline"].to_list() == ["h1", "h2", None]
    bad = frame.row(2, named=True)
    assert bad["payload"] == MALFORMED_NEWS_PAGE and bad["fetched_at"] is not None
    assert bad["problem"].startswith("malformed JSON from alpaca: ")
    assert bad["problem"].endswith("(/v1beta1/news, after 1 good pages)")
    checked = check_news(frame)
    assert checked.good["id"].to_list() == ["1", "2"]
    assert checked.rejected.rows() == [("alpaca", bad["problem"], MALFORMED_NEWS_PAGE)]


def test_json_without_a_news_list_is_a_malformed_page(rest, make):
    rest.malformed_next('{"bars": {}}')
    frame = make().news(["AAPL"], SESSION)
    assert frame["problem"].to_list() == ['unexpected response from alpaca: the page has no "news" list (after 0 good pages)']
    assert frame["payload"].to_list() == ['{"bars": {}}']


def test_malformed_items_get_problems_and_only_they_are_rejected(rest, make):
    good = news_item(1, "Apple beats", at(1), symbols=["AAPL"])
    rest.add_news(
        good,
        {**news_item(2, "Naive stamp", at(2)), "created_at": "2026-03-02T14:32:00"},
        {**news_item(3, "Bad symbols", at(3)), "symbols": "AAPL"},
        {**news_item(4, "", at(4), symbols=["AAPL"]), "headline": None},
        {**news_item(5, "Float id", at(5)), "id": 5.5},
    )
    frame = make().news(None, SESSION)
    assert frame.height == 5
    assert frame["problem"].to_list() == [
        None,
        "created_at has no time zone ('2026-03-02T14:32:00')",
        'symbols is not a list of text ("AAPL")',
        None,
        "id is not an integer ('5.5')",
    ]
    checked = check_news(frame)
    assert checked.good["id"].to_list() == ["1"]
    assert checked.rejected["reason"].to_list() == [
        "created_at has no time zone ('2026-03-02T14:32:00')",
        'symbols is not a list of text ("AAPL")',
        "headline is missing",
        "id is not an integer ('5.5')",
    ]
    assert json.loads(checked.rejected["payload"][0])["created_at"] == "2026-03-02T14:32:00"


def test_an_item_that_is_not_an_object_is_one_problem_row(rest, make):
    rest.malformed_next(json.dumps({"news": [["not", "an", "object"]], "next_page_token": None}))
    frame = make().news(["AAPL"], SESSION)
    assert frame.rows(named=True)[0]["problem"] == "the item is not a JSON object"
    assert frame["payload"].to_list() == ['["not", "an", "object"]']


# -- REST: keys never shown ---------------------------------------------------------------------


def test_wrong_secret_leaks_nothing(rest, make, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    wrong = "SEKRET-WRONG-n3ws-0000"
    source = make(alpaca_secret_key=wrong)
    with pytest.raises(VendorAuthError) as caught:
        source.news(["AAPL"], SESSION)
    assert str(caught.value) == f"alpaca refused the credentials (HTTP 403: forbidden): {CREDENTIALS}"
    seen = " ".join([str(caught.value), repr(caught.value), repr(source), caplog.text, *capsys.readouterr()])
    assert leaked(seen, wrong) == []


def test_a_key_echoed_by_the_vendor_is_masked_everywhere(rest, make, caplog):
    caplog.set_level(logging.DEBUG)
    rest.fail_next(400, body={"message": f"bad key {KEY}"})
    with pytest.raises(VendorError) as caught:
        make().news(["AAPL"], SESSION)
    assert str(caught.value) == "alpaca /v1beta1/news: HTTP 400: bad key **********"
    rest.add_news({**news_item(1, "Apple", at(1), symbols=["AAPL"]), "note": SECRET},
                  {**news_item(2, "Apple", at(2), symbols=["AAPL"]), "created_at": KEY})
    frame = make().news(["AAPL"], SESSION)
    assert '"note": "**********"' in frame["payload"][0]
    text = str(frame.to_dicts()) + check_news(frame).rejected.write_csv() + caplog.text + str(caught.value.__context__)
    assert leaked(text) == []


# -- stream: fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stream_server() -> Iterator[AlpacaNewsStreamFake]:
    with AlpacaNewsStreamFake(KEY, SECRET) as running:
        yield running


@pytest.fixture
def wire(stream_server) -> AlpacaNewsStreamFake:
    """The module's stream fake, with no session left from an earlier test."""
    assert stream_server.wait_closed(3)
    stream_server.reset()
    return stream_server


@pytest.fixture
def streamer(wire, tapeflow_home):
    def build(**overrides: object) -> AlpacaNewsStream:
        fields = {"alpaca_api_key": KEY, "alpaca_secret_key": SECRET, "alpaca_news_stream_url": wire.url, **overrides}
        tuning = {k: fields.pop(k) for k in ("connect_attempts", "backoff_s", "flush_s", "max_batch") if k in fields}
        return AlpacaNewsStream(Settings(**fields), **{"flush_s": 0.05, "backoff_s": 0.01, **tuning})

    return build


class Collector:
    """on_batch for tests: keeps the batches, sets `stop` once `want` rows have come."""

    def __init__(self, want: int) -> None:
        self.want, self.batches, self.stop = want, [], threading.Event()

    def __call__(self, batch: pl.DataFrame) -> None:
        self.batches.append(batch)
        if sum(b.height for b in self.batches) >= self.want:
            self.stop.set()

    @property
    def rows(self) -> pl.DataFrame:
        return pl.concat(self.batches) if self.batches else pl.DataFrame(schema=RAW_NEWS_SCHEMA)


def later(fake: AlpacaNewsStreamFake, *actions: Callable[[], object]) -> threading.Thread:
    """Once the client has subscribed, run `actions` (pushes) from another thread."""

    def go() -> None:
        if fake.wait_subscribed(1, timeout=5):
            for action in actions:
                action()

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread


# -- stream -------------------------------------------------------------------------------------


def test_stream_connects_authenticates_and_subscribes_in_msgpack(wire, streamer, caplog):
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    report = streamer().run(["AAPL", "TSLA", "AAPL"], Collector(1), seconds=0.4)
    assert time.monotonic() - started < 2.0
    assert wire.encodings == ["msgpack"]
    assert wire.received == [
        {"action": "auth", "key": KEY, "secret": SECRET},
        {"action": "subscribe", "news": ["AAPL", "TSLA"]},
    ]
    assert (report.connections, report.subscribed, report.stopped_by, report.rows) == (1, ("AAPL", "TSLA"), "time", 0)
    assert "alpaca news stream connected to ws://127.0.0.1" in caplog.text and leaked(caplog.text) == []


def test_pushed_items_arrive_once_each_as_good_raw_rows(wire, streamer):
    now = datetime.now(UTC)
    both = news_item(31, "Apple and Tesla team up", now - timedelta(seconds=30), symbols=["AAPL", "TSLA"])
    one = news_item(32, "Tesla recalls", now - timedelta(seconds=5), symbols=["TSLA"], author="Jane Doe")
    collect = Collector(2)
    later(wire, lambda: wire.push(both), lambda: wire.push(one))
    report = streamer().run(["AAPL", "TSLA"], collect, seconds=5, stop=collect.stop)
    rows = collect.rows
    # `both` names two subscribed symbols: still one row (alpaca-py's routing would call twice).
    assert rows["id"].to_list() == ["31", "32"]
    assert rows["tickers"].to_list() == [["AAPL", "TSLA"], ["TSLA"]]
    assert (rows["category"].to_list(), rows["author"].to_list()) == (["benzinga"] * 2, ["Benzinga Newsdesk", "Jane Doe"])
    # msgpack timestamps, read to the microsecond they were sent
    assert rows["published_at"].to_list() == [both["created_at"], one["created_at"]]
    assert (rows["fetched_at"] >= rows["published_at"]).all()
    assert json.loads(rows["payload"][0])["T"] == "n"
    checked = check_news(rows)
    assert checked.good.height == 2 and checked.rejected.height == 0
    assert (report.stopped_by, report.rows) == ("stop event", 2)


def test_an_unreadable_frame_is_one_problem_row_and_the_stream_goes_on(wire, streamer):
    good = news_item(41, "Still here", datetime.now(UTC) - timedelta(seconds=1), symbols=["AAPL"])
    collect = Collector(3)
    later(
        wire,
        lambda: wire.push_frame(b"\xc1not msgpack"),
        lambda: wire.push_frame(msgpack.packb({"T": "n", "id": 40})),  # an object, not a list
        lambda: wire.push(good),
    )
    streamer().run(["AAPL"], collect, seconds=5, stop=collect.stop)
    rows = collect.rows
    assert rows["problem"].to_list()[:2] == [
        "unreadable frame from the alpaca news stream: not msgpack (FormatError)",
        'unreadable frame from the alpaca news stream: not a list of messages with a text "T"',
    ]
    assert rows["payload"].to_list()[:2] == ["base64:wW5vdCBtc2dwYWNr", '{"T": "n", "id": 40}']
    assert rows["id"].to_list()[2] == "41" and rows["problem"][2] is None
    assert check_news(rows).rejected.height == 2


def test_a_malformed_news_message_is_kept_with_its_problem(wire, streamer):
    bad = {**news_item(51, "No stamp", datetime.now(UTC)), "created_at": None, "symbols": ["AAPL"]}
    collect = Collector(1)
    later(wire, lambda: wire.push(bad))
    streamer().run(["AAPL"], collect, seconds=5, stop=collect.stop)
    [row] = collect.rows.rows(named=True)
    assert (row["id"], row["problem"], row["published_at"]) == ("51", "the item has no created_at", None)
    assert check_news(collect.rows).rejected["reason"].to_list() == ["the item has no created_at"]


def test_bad_credentials_raise_vendor_auth_error_at_once_and_leak_nothing(wire, streamer, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "SEKRET-WRONG-stream-1111"
    started = time.monotonic()
    with pytest.raises(VendorAuthError) as caught:
        streamer(alpaca_secret_key=wrong).run(None, Collector(1), seconds=10)
    assert time.monotonic() - started < 3.0  # not retried until the bound
    assert str(caught.value) == f"alpaca news stream refused the credentials (auth failed): {CREDENTIALS}"
    assert wire.connections == 1 and wire.received[0]["action"] == "auth"
    seen = str(caught.value) + repr(caught.value) + caplog.text
    assert leaked(seen, wrong) == []


def test_a_busy_connection_slot_is_retried(wire, streamer):
    wire.refuse_auth_next(406, "connection limit exceeded")
    item = news_item(61, "After a retry", datetime.now(UTC) - timedelta(seconds=1), symbols=["AAPL"])
    collect = Collector(1)
    later(wire, lambda: wire.push(item))
    report = streamer(connect_attempts=3).run(["AAPL"], collect, seconds=5, stop=collect.stop)
    assert wire.connections == 2 and report.connections == 1
    assert collect.rows["id"].to_list() == ["61"]


def test_a_dropped_connection_is_reconnected_and_resubscribed(wire, streamer):
    now = datetime.now(UTC) - timedelta(seconds=1)
    collect = Collector(2)

    def script() -> None:
        wire.push(news_item(91, "Before the drop", now, symbols=["AAPL"]))
        deadline = time.monotonic() + 5
        while not collect.batches and time.monotonic() < deadline:
            time.sleep(0.01)
        wire.drop_sessions()
        if wire.wait_closed(2) and wire.wait_subscribed(1, timeout=5):
            wire.push(news_item(92, "After the drop", now, symbols=["AAPL"]))

    later(wire, script)
    report = streamer().run(["AAPL"], collect, seconds=8, stop=collect.stop)
    assert collect.rows["id"].to_list() == ["91", "92"]
    assert report.connections == 2 and wire.connections == 2
    assert [m["action"] for m in wire.received] == ["auth", "subscribe", "auth", "subscribe"]


def test_no_server_gives_up_after_the_connect_attempts(tapeflow_home):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(alpaca_api_key=KEY, alpaca_secret_key=SECRET, alpaca_news_stream_url=f"ws://127.0.0.1:{port}/v1beta1/news")
    with pytest.raises(VendorError, match=r"^alpaca news stream: no connection after 2 attempts in a row \(") as caught:
        AlpacaNewsStream(settings, connect_attempts=2, backoff_s=0.01).run(None, Collector(1), seconds=10)
    assert not isinstance(caught.value, VendorAuthError)


def test_the_stream_stops_within_its_bound_and_closes_the_socket(wire, streamer):
    started = time.monotonic()
    report = streamer().run(None, Collector(1), seconds=0.3)
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 1.5
    assert report.stopped_by == "time" and report.subscribed == ("*",)
    assert wire.wait_closed(1.0)


def test_a_stop_event_ends_the_stream_early(wire, streamer):
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    report = streamer().run(["AAPL"], Collector(1), seconds=30, stop=stop)
    assert time.monotonic() - started < 1.5 and report.stopped_by == "stop event"


def test_an_on_batch_failure_stops_the_stream_and_is_raised(wire, streamer):
    def broken(batch: pl.DataFrame) -> None:
        raise RuntimeError("warehouse is on fire")

    later(wire, lambda: wire.push(news_item(71, "x", datetime.now(UTC), symbols=["AAPL"])))
    with pytest.raises(RuntimeError, match="warehouse is on fire"):
        streamer().run(["AAPL"], broken, seconds=5)
    assert wire.wait_closed(1.5)


def test_batches_are_cut_at_max_batch(wire, streamer):
    now = datetime.now(UTC) - timedelta(seconds=1)
    collect = Collector(5)
    later(wire, lambda: wire.push(*[news_item(80 + i, f"n{i}", now, symbols=["AAPL"]) for i in range(5)]))
    report = streamer(max_batch=2, flush_s=0.3).run(["AAPL"], collect, seconds=5, stop=collect.stop)
    assert [b.height for b in collect.batches] == [2, 2, 1] and report.batches == 3


def test_stream_needs_both_keys_and_some_symbols(streamer):
    with pytest.raises(VendorAuthError, match="^alpaca needs TAPEFLOW_ALPACA_SECRET_KEY to be set$"):
        streamer(alpaca_secret_key=None)
    with pytest.raises(ValueError, match="no symbols to stream"):
        streamer().run([], Collector(1), seconds=1)


def test_a_batch_the_callback_could_not_take_stays_pending():
    from tapeflow.news.frames import news_row
    from tapeflow.venues.alpaca.news_stream import _Batches

    calls = []

    def store(frame):
        calls.append(frame.height)
        if len(calls) == 1:
            raise RuntimeError("warehouse busy")

    batches = _Batches(store, size=10)
    batches.take([news_row("alpaca", id=str(i)) for i in range(3)])
    with pytest.raises(RuntimeError):
        batches.flush()
    assert len(batches.pending) == 3 and batches.rows == 0
    batches.flush()
    assert calls == [3, 3] and batches.pending == [] and batches.rows == 3
