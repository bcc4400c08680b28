"""The Alpaca adapter beyond the shared contract: alpaca-py's real TradingClient and
TradingStream against the trading fake, with Alpaca's own error bodies on the wire."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

import tapeflow.venues.alpaca.broker as alpaca
from tapeflow.brokers.base import (
    BrokerError,
    Disconnected,
    DuplicateOrderId,
    Halted,
    InsufficientBuyingPower,
    InvalidOrder,
    NotShortable,
    OrderEvent,
    OrderRejected,
    QueryFailed,
    RateLimited,
    Replacement,
)
from tapeflow.brokers.submit import PlacePolicy, place
from tapeflow.config import Settings
from tapeflow.model import Mode, Order, OrderStatus, OrderType, Side, TimeInForce
from tapeflow.venues.alpaca.broker import (
    AlpacaBroker,
    AlpacaTuning,
    order_status,
    replacement_id,
)
from tests.fakes.alpaca_trading import AlpacaTradingFake

UTC = UTC
KEY = "PKTAPEFLOWKEY7Q2W9E4R"
SECRET = "tapeflow-secret-Zx81-do-not-leak-4f0c"
FAST = AlpacaTuning(timeout_s=2.0, sdk_wait_s=0.0, read_wait_s=0.0, stream_backoff_s=0.05)
NO_WAIT = PlacePolicy(wait_s=0.0)
HTML_502 = ("<html><head><title>502 Bad Gateway</title></head>"
            "<body><center><h1>502 Bad Gateway</h1></center></body></html>")


@pytest.fixture
def fake() -> Iterator[AlpacaTradingFake]:
    with AlpacaTradingFake(KEY, SECRET, cash=100_000.0, prices={"ACME": 10.0}) as f:
        yield f


@pytest.fixture
def connect(fake) -> Iterator[Callable[..., AlpacaBroker]]:
    made: list[AlpacaBroker] = []

    def make(**kw) -> AlpacaBroker:
        options = {"url": fake.url, "stream_url": fake.stream_url, "tuning": FAST, **kw}
        made.append(AlpacaBroker(options.pop("key", KEY), options.pop("secret", SECRET), **options))
        return made[-1]

    yield make
    for broker in made:
        broker.close()


@pytest.fixture
def broker(connect) -> AlpacaBroker:
    return connect()


def order(cid: str, side: Side = Side.BUY, qty: float = 10, order_type: OrderType = OrderType.MARKET,
          tif: TimeInForce = TimeInForce.DAY, **prices) -> Order:
    symbol = prices.pop("symbol", "ACME")
    return Order(client_order_id=cid, mode=Mode.PAPER, broker="alpaca", strategy="t", symbol=symbol, side=side, qty=qty,
                 order_type=order_type, time_in_force=tif, created_at=datetime.now(UTC), **prices)


def posts(fake: AlpacaTradingFake, path: str = "/v2/orders", method: str = "POST") -> int:
    return sum(1 for r in fake.requests if (r.method, r.path) == (method, path))


def events(broker: AlpacaBroker, count: int, seconds: float = 3.0) -> list:
    """Updates until `count` have arrived (the stream delivers them asynchronously)."""
    got: list = []
    deadline = time.monotonic() + seconds
    while len(got) < count and time.monotonic() < deadline:
        got += broker.updates(timeout=0.1)
    return got


# -- statuses ------------------------------------------------------------------------------


@pytest.mark.parametrize(("alpaca_status", "filled", "expected"), [
    ("accepted", 0, OrderStatus.NEW), ("pending_new", 0, OrderStatus.NEW), ("new", 0, OrderStatus.NEW),
    ("held", 0, OrderStatus.NEW), ("pending_cancel", 0, OrderStatus.NEW), ("pending_replace", 0, OrderStatus.NEW),
    ("pending_cancel", 4, OrderStatus.PARTIALLY_FILLED), ("partially_filled", 4, OrderStatus.PARTIALLY_FILLED),
    ("filled", 10, OrderStatus.FILLED), ("canceled", 0, OrderStatus.CANCELED), ("expired", 0, OrderStatus.EXPIRED),
    ("done_for_day", 4, OrderStatus.EXPIRED), ("rejected", 0, OrderStatus.REJECTED),
    ("replaced", 0, OrderStatus.REPLACED), ("calculated", 10, OrderStatus.FILLED),
])
def test_alpaca_statuses_read_over_the_wire_map_to_tapeflow_statuses(fake, broker, alpaca_status, filled, expected):
    broker.submit(order("st-1", order_type=OrderType.LIMIT, limit_price=9.0))
    fake.order_json("st-1")  # exists
    with fake.lock:
        fake.orders[fake.by_cid["st-1"]].json.update(status=alpaca_status, filled_qty=str(filled),
                                                     filled_avg_price="9" if filled else None)
    assert broker.order("st-1").status is expected
    assert order_status(alpaca_status, filled, 10) is expected


def test_an_unknown_order_is_none_not_an_error(broker):
    assert broker.order("never-sent") is None


# -- typed errors from Alpaca's own bodies -------------------------------------------------------


def test_buying_power_short_sale_and_unknown_asset_refusals_come_from_the_fake_itself(fake, broker):
    with pytest.raises(InsufficientBuyingPower, match="insufficient buying power") as big:
        broker.submit(order("too-big", qty=10_000_000))
    assert big.value.client_order_id == "too-big"
    with pytest.raises(NotShortable, match="insufficient qty available"):
        broker.submit(order("naked-short", side=Side.SELL))
    with pytest.raises(InvalidOrder, match="could not find us_equity"):
        broker.submit(order("unknown", symbol="NOSUCH"))
    assert fake.submissions("too-big") == fake.submissions("naked-short") == fake.submissions("unknown") == 0


@pytest.mark.parametrize(("status", "body", "expected"), [
    (403, {"code": 40310000, "message": "insufficient buying power", "buying_power": "0", "cost_basis": "100"},
     InsufficientBuyingPower),
    (403, {"code": 40310000, "message": "asset ACME cannot be sold short: not shortable"}, NotShortable),
    (403, {"code": 40310000, "message": "no locate available for ACME"}, NotShortable),
    (422, {"code": 40010001, "message": "asset ACME is halted"}, Halted),
    (422, {"code": 40010001, "message": "client_order_id must be unique"}, DuplicateOrderId),
    (422, {"code": 40010001, "message": "qty must be > 0"}, InvalidOrder),
    (400, {"code": 40010000, "message": "request body format is invalid"}, InvalidOrder),
    (404, {"code": 40410000, "message": "asset not found"}, InvalidOrder),
    (403, {"code": 40310000, "message": "pattern day trading protection"}, OrderRejected),
    (500, {"code": 50010000, "message": "internal server error"}, Disconnected),
    (502, HTML_502, Disconnected),
])
def test_submit_errors_are_typed(fake, broker, status, body, expected):
    fake.inject_error(status, body)
    with pytest.raises(expected) as caught:
        broker.submit(order("typed"))
    assert type(caught.value) is expected  # the exact class, not only a parent of it
    assert f"HTTP {status}" in str(caught.value)


def test_an_html_error_page_is_described_not_parsed(fake, broker):
    fake.inject_error(503, HTML_502)
    with pytest.raises(Disconnected, match="non-JSON answer: 502 Bad Gateway") as caught:
        broker.submit(order("html"))
    assert "<html>" not in str(caught.value)


def test_credentials_refused_is_a_plain_broker_error_naming_the_settings(fake, connect):
    broker = connect(secret="wrong-secret", stream=False)
    with pytest.raises(BrokerError) as caught:
        broker.account()
    assert type(caught.value) is BrokerError
    assert "TAPEFLOW_ALPACA_API_KEY" in str(caught.value) and "HTTP 401" in str(caught.value)
    with pytest.raises(BrokerError) as on_submit:
        broker.submit(order("no-auth"))
    assert not isinstance(on_submit.value, (OrderRejected, Disconnected))
    fake.inject_error(403, {"code": 40110000, "message": "forbidden"}, method="GET", path="^/v2/positions$")
    with pytest.raises(BrokerError, match="refused the credentials"):
        connect(stream=False).positions()


def test_a_429_storm_surfaces_as_rate_limited_after_the_sdks_own_repeats(fake, connect):
    broker = connect(tuning=AlpacaTuning(sdk_retries=3, sdk_wait_s=0.0, read_wait_s=0.0), stream=False)
    fake.inject_error(429, {"code": 42910000, "message": "rate limit exceeded"}, times=10)
    with pytest.raises(RateLimited, match="after 3 repeats"):
        broker.submit(order("storm"))
    assert posts(fake) == 4  # the first try and alpaca-py's three repeats
    assert fake.submissions("storm") == 0


def test_a_short_429_burst_is_absorbed(fake, broker):
    fake.inject_error(429, {"code": 42910000, "message": "rate limit exceeded"}, times=2)
    assert broker.submit(order("burst")).client_order_id == "burst"
    assert posts(fake) == 3 and fake.submissions("burst") == 1


def test_a_timeout_is_disconnected(fake, connect):
    broker = connect(tuning=AlpacaTuning(timeout_s=0.2, sdk_wait_s=0.0, read_attempts=1), stream=False)
    fake.delay_next(0.6)
    with pytest.raises(Disconnected, match="timed out"):
        broker.submit(order("slow"))


def test_reads_retry_a_dropped_connection_a_bounded_number_of_times(fake, broker):
    broker.submit(order("held-1"))
    fake.drop_connection(failures=2)
    assert [p.symbol for p in broker.positions()] == ["ACME"]
    assert posts(fake, "/v2/positions", "GET") == 3
    fake.drop_connection(failures=5)
    with pytest.raises(Disconnected, match="connection failed"):
        broker.account()
    assert posts(fake, "/v2/account", "GET") == FAST.read_attempts


def test_read_failures_that_are_not_the_connection_are_query_failed(fake, broker):
    fake.inject_error(422, {"code": 40010001, "message": "invalid status"}, method="GET", path="^/v2/orders$")
    with pytest.raises(QueryFailed):
        broker.open_orders()
    fake.inject_error(200, "<html>maintenance</html>", method="GET", path="^/v2/account$")
    with pytest.raises(QueryFailed, match="unreadable"):
        broker.account()
    fake.inject_error(500, HTML_502, method="GET", path="^/v2/clock$", times=5)
    with pytest.raises(Disconnected):
        broker.clock()


def test_submit_is_never_resent_by_the_adapter_itself(fake, broker):
    fake.drop_connection(failures=1)
    with pytest.raises(Disconnected):
        broker.submit(order("cut"))
    assert posts(fake) == 1 and fake.submissions("cut") == 0
    # place() asks first, hears "no such order", and only then sends it again.
    assert place(broker, order("cut"), NO_WAIT).client_order_id == "cut"
    assert fake.submissions("cut") == 1


# -- the lost answer: 504 after a write --------------------------------------------------------


def test_504_after_the_write_then_the_sdks_repeat_meets_422_and_place_finds_the_one_order(fake, broker):
    fake.inject_error(504, {"message": "gateway timeout"}, after_write=True)
    with pytest.raises(DuplicateOrderId):  # what the adapter alone makes of it
        broker.submit(order("lost-1", order_type=OrderType.LIMIT, limit_price=9.0))
    assert fake.submissions("lost-1") == 1

    fake.inject_error(504, HTML_502, after_write=True)
    placed = place(broker, order("lost-2", order_type=OrderType.LIMIT, limit_price=9.0), NO_WAIT)
    assert placed.client_order_id == "lost-2" and placed.is_open
    assert fake.submissions("lost-2") == 1
    assert len(fake.posted("lost-2")) == 2  # the write and alpaca-py's repeat, nothing more
    assert [o.client_order_id for o in broker.open_orders()] == ["lost-1", "lost-2"]


def test_without_sdk_repeats_a_504_after_the_write_is_disconnected_and_place_still_finds_it(fake, connect):
    broker = connect(tuning=AlpacaTuning(sdk_retries=0, read_wait_s=0.0), stream=False)
    fake.inject_error(504, HTML_502, after_write=True)
    with pytest.raises(Disconnected):
        broker.submit(order("lost-3"))
    fake.inject_error(504, HTML_502, after_write=True)
    assert place(broker, order("lost-4"), NO_WAIT).client_order_id == "lost-4"
    assert fake.submissions("lost-4") == 1 and len(fake.posted("lost-4")) == 1


def test_a_client_order_id_stays_taken_after_a_cancel(fake, broker):
    broker.submit(order("once", order_type=OrderType.LIMIT, limit_price=9.0))
    assert broker.cancel("once").status is OrderStatus.CANCELED
    with pytest.raises(DuplicateOrderId):
        broker.submit(order("once", order_type=OrderType.LIMIT, limit_price=9.0))
    assert fake.submissions("once") == 1


# -- what goes on the wire -------------------------------------------------------------------


def test_bracket_request_body_and_its_legs(fake, broker):
    placed = broker.submit(order("br-1", order_type=OrderType.LIMIT, limit_price=9.5, take_profit_price=12.0,
                                 stop_loss_price=8.0))
    assert fake.posted("br-1") == [{
        "symbol": "ACME", "qty": 10.0, "side": "buy", "type": "limit", "time_in_force": "day",
        "order_class": "bracket", "client_order_id": "br-1", "take_profit": {"limit_price": 12.0},
        "stop_loss": {"stop_price": 8.0}, "limit_price": 9.5,
    }]
    assert [(leg.order_type, leg.side, leg.limit_price, leg.stop_price) for leg in placed.legs] == [
        (OrderType.LIMIT, Side.SELL, 12.0, None), (OrderType.STOP, Side.SELL, None, 8.0)]
    assert placed.legs[0].status is OrderStatus.NEW  # "held" until the entry fills
    fake.set_price("ACME", 9.5)
    entry = broker.order("br-1")
    assert entry.status is OrderStatus.FILLED and [leg.status for leg in entry.legs] == [OrderStatus.NEW] * 2
    assert {o.client_order_id for o in broker.open_orders()} == {leg.client_order_id for leg in entry.legs}
    fake.set_price("ACME", 12.0)  # the take-profit fills; the stop-loss is cancelled with it
    legs = broker.order("br-1").legs
    assert [leg.status for leg in legs] == [OrderStatus.FILLED, OrderStatus.CANCELED]
    assert broker.positions() == []
    assert {f.client_order_id for f in broker.fills(datetime.now(UTC) - timedelta(minutes=1))} == {
        "br-1", legs[0].client_order_id}


@pytest.mark.parametrize("tif", [TimeInForce.OPG, TimeInForce.CLS])
def test_auction_orders_are_sent_as_opg_and_cls_and_wait_for_their_auction(fake, broker, tif):
    cid = f"auction-{tif.value}"
    placed = broker.submit(order(cid, tif=tif))
    assert fake.posted(cid) == [{"symbol": "ACME", "qty": 10.0, "side": "buy", "type": "market",
                                 "time_in_force": tif.value, "client_order_id": cid}]
    assert placed.time_in_force is tif and broker.order(cid).status is OrderStatus.NEW
    fake.run_auction(tif.value)
    assert broker.order(cid).status is OrderStatus.FILLED


def test_stop_and_stop_limit_bodies_and_triggers(fake, broker):
    broker.submit(order("stop-1", order_type=OrderType.STOP, stop_price=11.0))
    broker.submit(order("stoplim-1", order_type=OrderType.STOP_LIMIT, stop_price=11.0, limit_price=11.5))
    assert fake.posted("stop-1")[0] == {"symbol": "ACME", "qty": 10.0, "side": "buy", "type": "stop",
                                        "time_in_force": "day", "client_order_id": "stop-1", "stop_price": 11.0}
    assert fake.posted("stoplim-1")[0]["stop_price"] == 11.0 and fake.posted("stoplim-1")[0]["limit_price"] == 11.5
    assert {o.client_order_id for o in broker.open_orders()} == {"stop-1", "stoplim-1"}
    fake.set_price("ACME", 11.2)
    assert broker.order("stop-1").avg_fill_price == pytest.approx(11.2)
    assert broker.order("stoplim-1").status is OrderStatus.FILLED


def test_replace_sends_a_patch_and_the_new_order_gets_a_derived_id(fake, broker):
    old = broker.submit(order("rp", order_type=OrderType.LIMIT, limit_price=9.0))
    new = broker.replace("rp", Replacement(limit_price=9.2))
    assert new.client_order_id == "rp.r1" and new.limit_price == 9.2 and new.is_open
    assert new.broker_order_id != old.broker_order_id
    patch = [r for r in fake.requests if r.method == "PATCH"]
    assert [(r.path, r.body) for r in patch] == [(f"/v2/orders/{old.broker_order_id}",
                                                  {"limit_price": 9.2, "client_order_id": "rp.r1"})]
    assert broker.order("rp").status is OrderStatus.REPLACED
    assert broker.replace("rp.r1", Replacement(qty=5)).client_order_id == "rp.r2"
    assert [(o.client_order_id, o.qty) for o in broker.open_orders()] == [("rp.r2", 5)]
    assert replacement_id("a.r9") == "a.r10"
    with pytest.raises(InvalidOrder, match="no order"):
        broker.replace("nothing", Replacement(qty=1))


def test_cancel_of_an_order_that_already_ended_returns_it_as_it_stands(fake, broker):
    broker.submit(order("done"))
    assert broker.cancel("done").status is OrderStatus.FILLED
    assert posts(fake, method="DELETE", path=f"/v2/orders/{fake.order_json('done')['id']}") == 0
    broker.submit(order("racing", order_type=OrderType.LIMIT, limit_price=9.0))
    fake.inject_error(422, {"code": 42210000, "message": "order is not cancelable"}, method="DELETE",
                      path=r"^/v2/orders/")
    assert broker.cancel("racing").client_order_id == "racing"  # no exception: the state says the rest


# -- paging ------------------------------------------------------------------------------------


def test_orders_and_fills_page_through_everything(fake, broker, monkeypatch):
    monkeypatch.setattr(alpaca, "ORDERS_PAGE", 2)
    monkeypatch.setattr(alpaca, "ACTIVITIES_PAGE", 2)
    since = datetime.now(UTC) - timedelta(seconds=5)
    for i in range(5):
        broker.submit(order(f"pg-{i}", qty=1))
    assert sorted(o.client_order_id for o in broker.orders(since)) == [f"pg-{i}" for i in range(5)]
    fills = broker.fills(since)
    assert sorted(f.client_order_id for f in fills) == [f"pg-{i}" for i in range(5)]
    assert len({f.fill_id for f in fills}) == 5
    assert posts(fake, "/v2/account/activities/FILL", "GET") == 3


def test_fills_name_orders_this_adapter_never_saw(fake, broker, connect):
    broker.submit(order("before-restart"))
    fresh = connect(stream=False)
    assert [f.client_order_id for f in fresh.fills(datetime.now(UTC) - timedelta(minutes=1))] == ["before-restart"]


# -- trade_updates -------------------------------------------------------------------------------


def test_trade_updates_bring_a_partial_fill_then_the_fill_with_execution_ids(fake, broker):
    broker.submit(order("tu", order_type=OrderType.LIMIT, limit_price=9.0))
    fake.fill("tu", 4)
    fake.fill("tu")
    got = events(broker, 3)
    assert [u.event for u in got] == [OrderEvent.NEW, OrderEvent.PARTIAL_FILL, OrderEvent.FILL]
    assert [(u.fill.qty, u.fill.price) for u in got[1:]] == [(4, 9.0), (6, 9.0)]
    assert got[1].order.status is OrderStatus.PARTIALLY_FILLED and got[2].order.status is OrderStatus.FILLED
    # The execution ids are the fills' ids, the same ones the account activities name.
    rest = broker.fills(datetime.now(UTC) - timedelta(minutes=1))
    assert [u.fill.fill_id for u in got[1:]] == [f.fill_id for f in rest]
    assert all(f.client_order_id == "tu" and f.broker == "alpaca" for f in rest)


def test_trade_updates_for_cancel_replace_and_expiry(fake, broker):
    broker.submit(order("ev-1", order_type=OrderType.LIMIT, limit_price=9.0))
    broker.replace("ev-1", Replacement(limit_price=8.5))
    broker.cancel("ev-1.r1")
    broker.submit(order("ev-2", order_type=OrderType.LIMIT, limit_price=9.0))
    fake.expire("ev-2")
    got = [(u.event, u.order.client_order_id) for u in events(broker, 6)]
    assert got == [(OrderEvent.NEW, "ev-1"), (OrderEvent.REPLACED, "ev-1"), (OrderEvent.NEW, "ev-1.r1"),
                   (OrderEvent.CANCELED, "ev-1.r1"), (OrderEvent.NEW, "ev-2"), (OrderEvent.EXPIRED, "ev-2")]


def test_the_stream_reconnects_after_a_drop(fake, broker):
    fake.drop_connection(failures=0)  # only the sockets die; the next request goes through
    deadline = time.monotonic() + 3
    while fake.stream_clients == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.stream_clients == 1
    broker.submit(order("after-drop"))
    assert [u.event for u in events(broker, 2)] == [OrderEvent.NEW, OrderEvent.FILL]


def test_close_stops_the_stream_thread_at_once(fake, connect):
    broker = connect()
    assert fake.stream_clients == 1
    broker.close()
    assert not broker._thread.is_alive()  # close() waits at most 2 s; TradingStream.stop would need 5
    broker.close()  # twice is harmless


# -- secrets and modes ---------------------------------------------------------------------------


def test_secrets_are_absent_from_exceptions_reprs_and_logs(fake, connect, caplog):
    caplog.set_level(logging.DEBUG)
    broker = connect()
    echo = {"code": 40310000, "message": f"bad request from key {KEY} with secret {SECRET}"}
    failures = []
    for status in (403, 422, 500):
        fake.inject_error(status, echo)
        with pytest.raises(BrokerError) as caught:
            broker.submit(order(f"secret-{status}"))
        failures.append(caught.value)
    fake.inject_error(422, echo, method="GET", path="^/v2/account$")
    with pytest.raises(QueryFailed) as read:
        broker.account()
    failures.append(read.value)
    fake.drop_connection(failures=1)
    broker.positions()
    broker.submit(order("secret-ok"))
    wrong = connect(secret=SECRET[::-1], tuning=AlpacaTuning(stream_ready_s=0.3, read_wait_s=0.0))
    with pytest.raises(BrokerError) as refused:
        wrong.clock()
    failures.append(refused.value)
    texts = [str(e) for e in failures] + [repr(broker), caplog.text]
    assert all(KEY not in t and SECRET not in t for t in texts)
    assert "authentication frame withheld" in caplog.text  # websockets did log the auth frame, redacted


def test_live_mode_needs_its_confirmation(fake, connect):
    with pytest.raises(ValueError, match="confirmation"):
        connect(mode=Mode.LIVE)
    live = Settings(mode="live", alpaca_api_key=KEY, alpaca_secret_key=SECRET, alpaca_live_url=fake.url)
    with pytest.raises(ValueError, match="TAPEFLOW_LIVE_CONFIRMED"):
        AlpacaBroker.from_settings(live)
    confirmed = Settings(mode="live", live_confirmed=True, alpaca_api_key=KEY, alpaca_secret_key=SECRET,
                         alpaca_live_url=fake.url, alpaca_stream_url=fake.stream_url)
    with AlpacaBroker.from_settings(confirmed, tuning=FAST) as broker:
        assert broker.mode is Mode.LIVE and broker.url == fake.url
        assert broker.account().cash == 100_000.0


def test_from_settings_is_paper_by_default_and_needs_keys():
    paper = AlpacaBroker.from_settings(Settings(alpaca_api_key=KEY, alpaca_secret_key=SECRET), stream=False)
    assert paper.mode is Mode.PAPER and paper.url == "https://paper-api.alpaca.markets"
    assert paper.stream_url == "wss://paper-api.alpaca.markets/stream"
    paper.close()
    with pytest.raises(BrokerError, match="TAPEFLOW_ALPACA_SECRET_KEY"):
        AlpacaBroker.from_settings(Settings(alpaca_api_key=KEY), stream=False)
