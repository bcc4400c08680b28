"""IbBroker beyond the contract suite: IB's error codes, outages, brackets and auction orders on
the wire, and the event stream — through the real ib_async client against the fake IB Gateway."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tapeflow.brokers.base import (
    BrokerError,
    Disconnected,
    DuplicateOrderId,
    Halted,
    InsufficientBuyingPower,
    InvalidOrder,
    NotShortable,
    OrderEvent,
    QueryFailed,
    RateLimited,
    Replacement,
)
from tapeflow.brokers.ids import client_order_id
from tapeflow.config import Settings
from tapeflow.model import Mode, Order, OrderStatus, OrderType, Side, TimeInForce
from tapeflow.venues.ibkr.broker import LIVE_PORT, PAPER_PORT, IbBroker, IbPolicy
from tests.broker_venues import wait_for
from tests.fakes.ib_broker import CLIENT_ID, TEST_POLICY, IbVenue
from tests.fakes.ib_gateway import FakeIBGateway

UTC = UTC
ACCOUNT = "DU1234567"


@pytest.fixture
def venue(tmp_path) -> Iterator[IbVenue]:
    v = IbVenue(tmp_path)
    v.set_price("ACME", 10.0)
    try:
        yield v
    finally:
        v.stop()


@pytest.fixture(autouse=True)
def decoder_is_happy(caplog) -> Iterator[None]:
    """ib_async's decoder is strict and logs (not raises) a message it cannot unpack: none may."""
    caplog.set_level(logging.DEBUG)
    yield
    bad = [r.getMessage() for r in caplog.records if r.name == "ib_async.Decoder" and r.levelno >= logging.ERROR]
    assert bad == []


def order(decision: str, *, side: Side = Side.BUY, qty: float = 10, order_type: OrderType = OrderType.MARKET,
          tif: TimeInForce = TimeInForce.DAY, limit: float | None = None, stop: float | None = None,
          symbol: str = "ACME", take_profit: float | None = None, stop_loss: float | None = None) -> Order:
    return Order(client_order_id=client_order_id("ibtest", decision, symbol), mode=Mode.PAPER, broker="ibkr",
                 strategy="ibtest", symbol=symbol, side=side, qty=qty, order_type=order_type, time_in_force=tif,
                 created_at=datetime.now(UTC), limit_price=limit, stop_price=stop, take_profit_price=take_profit,
                 stop_loss_price=stop_loss)



# ---------------------------------------------------------------- typed rejections
@pytest.mark.parametrize(("code", "message", "error"), [
    (201, "Order rejected - reason:YOUR EQUITY WITH LOAN VALUE [100000.00 USD] MUST EXCEED THE INITIAL MARGIN",
     InsufficientBuyingPower),
    (201, "Order rejected - reason:Shares of ACME are not available for short sale.", NotShortable),
    (201, "Order rejected - reason:Short sale requires a locate", NotShortable),
    (201, "Order rejected - reason:Trading in ACME is halted", Halted),
    (201, "Order rejected - reason:Order size exceeds the precautionary limit", InvalidOrder),
    (200, "No security definition has been found for the request", InvalidOrder),
    (110, "The price does not conform to the minimum price variation for this contract.", InvalidOrder),
    (321, "Error validating request.-'bN' : cause - Invalid order", InvalidOrder),
    (100, "Max rate of messages per second has been exceeded:max=50 rec=51", RateLimited),
    (504, "Not connected", Disconnected),
])
def test_ib_error_codes_become_typed_errors(venue, code, message, error):
    wanted = order(f"reject-{code}-{message[:20]}", order_type=OrderType.LIMIT, limit=9.0)
    venue.desk.reject_next(code, message)
    with pytest.raises(error) as caught:
        venue.broker.submit(wanted)
    assert type(caught.value) is error
    assert caught.value.client_order_id == wanted.client_order_id and caught.value.broker == "ibkr"
    assert f"error {code}" in str(caught.value)
    assert venue.submissions(wanted.client_order_id) == 0


def test_real_rejections_from_the_fake_account(venue):
    with pytest.raises(InsufficientBuyingPower):
        venue.broker.submit(order("oversized", qty=10_000_000))
    with pytest.raises(InvalidOrder, match="NOSUCH"):
        venue.broker.submit(order("unknown", symbol="NOSUCH"))
    venue.desk.not_shortable.add("ACME")
    with pytest.raises(NotShortable):
        venue.broker.submit(order("short", side=Side.SELL))
    rejected = venue.broker.order(order("oversized", qty=10_000_000).client_order_id)
    assert rejected.status is OrderStatus.REJECTED and "201" in rejected.reason
    assert venue.broker.positions() == []


def test_account_codes_stay_out_of_errors_and_logs(venue, caplog):
    venue.desk.reject_next(201, f"Order rejected - reason:account {ACCOUNT} lacks equity for this margin")
    with pytest.raises(InsufficientBuyingPower) as caught:
        venue.broker.submit(order("secret"))
    assert ACCOUNT not in str(caught.value) and "<account>" in str(caught.value)
    venue.broker.account()
    assert ACCOUNT not in caplog.text


def test_a_reused_client_order_id_is_not_sent_again(venue):
    first = venue.broker.submit(order("twice", order_type=OrderType.LIMIT, limit=9.0))
    with pytest.raises(DuplicateOrderId):
        venue.broker.submit(order("twice", order_type=OrderType.LIMIT, limit=9.0))
    assert venue.submissions(first.client_order_id) == 1


# --------------------------------------------------------- failed query vs nothing held
def test_no_positions_is_an_empty_list_but_a_failed_query_raises(tmp_path):
    quick = IbPolicy(connect_s=0.3, request_s=0.3, ack_s=0.5, reconnects=2, backoff_s=0.01)
    v = IbVenue(tmp_path, policy=quick)
    try:
        assert v.broker.positions() == []
        v.desk.mute(61)  # reqPositions is never answered
        with pytest.raises((QueryFailed, Disconnected)):
            v.broker.positions()
        v.desk.unmute(61)
        assert v.broker.positions() == []  # reconnects and answers again
        v.desk.refuse_next(7, 322, "Error processing request.-'bY' : cause - executions unavailable")
        with pytest.raises(QueryFailed, match="322"):
            v.broker.fills(datetime.now(UTC) - timedelta(hours=1))
        v.gateway.stop()
        with pytest.raises(Disconnected):
            v.broker.account()
    finally:
        v.stop()


# ---------------------------------------------------------------- drops and outages
def test_after_a_drop_reads_reconnect_and_find_the_order_by_its_ref(venue):
    since = datetime.now(UTC) - timedelta(minutes=1)
    placed = venue.broker.submit(order("drop", order_type=OrderType.LIMIT, limit=9.0))
    venue.drop_connection()
    venue.fill(placed.client_order_id, qty=4)  # executed while the adapter is cut off
    found = venue.broker.order(placed.client_order_id)
    assert found.broker_order_id == placed.broker_order_id
    assert found.status is OrderStatus.PARTIALLY_FILLED and found.filled_qty == 4
    assert [o.client_order_id for o in venue.broker.open_orders()] == [placed.client_order_id]
    venue.drop_connection()
    venue.fill(placed.client_order_id)
    done = wait_for(lambda: venue.broker.order(placed.client_order_id), lambda o: o.status is OrderStatus.FILLED)
    assert done.filled_qty == 10 and done.avg_fill_price == pytest.approx(9.0)
    fills = venue.broker.fills(since)
    assert sorted(f.qty for f in fills) == [4, 6]
    assert {f.client_order_id for f in fills} == {placed.client_order_id}
    assert all(f.commission == pytest.approx(1.0) for f in fills)
    assert [o.client_order_id for o in venue.broker.orders(since)] == [placed.client_order_id]


def test_a_lost_answer_is_disconnected_and_the_order_exists_once(venue):
    wanted = order("lost", order_type=OrderType.LIMIT, limit=9.0)
    venue.fail_after_write_next()
    with pytest.raises(Disconnected, match="unknown"):
        venue.broker.submit(wanted)
    found = venue.broker.order(wanted.client_order_id)
    assert found is not None and found.is_open
    assert venue.submissions(wanted.client_order_id) == 1


def test_an_ib_side_outage_stops_orders_until_restored(venue):
    venue.desk.system_message(1100, "Connectivity between IB and Trader Workstation has been lost.")
    wanted = order("outage", order_type=OrderType.LIMIT, limit=9.0)
    with pytest.raises(Disconnected, match="1100"):
        venue.broker.submit(wanted)
    with pytest.raises(Disconnected):
        venue.broker.positions()
    assert venue.desk.received(wanted.client_order_id) == []
    venue.desk.system_message(1102, "Connectivity between IB and Trader Workstation has been restored - data "
                                    "maintained.")
    placed = venue.broker.submit(wanted)
    assert placed.status is OrderStatus.NEW and venue.submissions(wanted.client_order_id) == 1


def test_a_gateway_that_is_gone_is_disconnected_after_bounded_retries(tmp_path):
    gw = FakeIBGateway(symbols=["ACME"], trading=True).start()
    port = gw.port
    gw.stop()
    naps: list[float] = []
    broker = IbBroker("127.0.0.1", port, CLIENT_ID, policy=TEST_POLICY, sleep=naps.append)
    with pytest.raises(Disconnected, match="3 attempts"):
        broker.positions()
    assert naps == [0.02, 0.04]


# ---------------------------------------------------------------- order shapes on the wire
def test_a_bracket_is_parent_and_two_oca_legs_transmitted_by_the_last(venue):
    wanted = order("bracket", order_type=OrderType.LIMIT, limit=9.5, take_profit=11.0, stop_loss=9.0)
    placed = venue.broker.submit(wanted)
    parent, take, stop = venue.desk.received(wanted.client_order_id)
    assert (parent["orderType"], parent["lmtPrice"], parent["action"], parent["transmit"], parent["parentId"]) == (
        "LMT", "9.5", "BUY", "0", "0")
    assert (take["orderType"], take["lmtPrice"], take["action"], take["transmit"]) == ("LMT", "11.0", "SELL", "0")
    assert (stop["orderType"], stop["auxPrice"], stop["action"], stop["transmit"]) == ("STP", "9.0", "SELL", "1")
    assert take["parentId"] == stop["parentId"] == parent["orderId"]
    assert take["ocaGroup"] == stop["ocaGroup"] != "" and take["ocaType"] == stop["ocaType"] == "1"
    assert take["orderRef"] == wanted.client_order_id + ".tp" and stop["orderRef"] == wanted.client_order_id + ".sl"
    assert [leg.order_type for leg in placed.legs] == [OrderType.LIMIT, OrderType.STOP]
    venue.set_price("ACME", 9.5)  # the entry fills; the legs start working
    venue.set_price("ACME", 11.0)  # the take-profit fills, which cancels the stop-loss
    done = wait_for(lambda: venue.broker.order(wanted.client_order_id),
                    lambda o: {leg.status for leg in o.legs} == {OrderStatus.FILLED, OrderStatus.CANCELED})
    assert done.status is OrderStatus.FILLED
    assert [leg.stop_price for leg in done.legs if leg.status is OrderStatus.CANCELED] == [9.0]
    assert venue.broker.positions() == []
    assert [o.client_order_id for o in venue.broker.orders(datetime.now(UTC) - timedelta(minutes=1))] == [
        wanted.client_order_id]  # the legs are listed under their parent


def test_market_on_close_and_on_open(venue):
    moc = venue.broker.submit(order("moc", tif=TimeInForce.CLS))
    opg = venue.broker.submit(order("opg", order_type=OrderType.LIMIT, limit=10.5, tif=TimeInForce.OPG))
    (moc_wire,) = venue.desk.received(moc.client_order_id)
    (opg_wire,) = venue.desk.received(opg.client_order_id)
    assert (moc_wire["orderType"], moc_wire["tif"]) == ("MOC", "DAY")
    assert (opg_wire["orderType"], opg_wire["tif"], opg_wire["lmtPrice"]) == ("LMT", "OPG", "10.5")
    assert (moc.order_type, moc.time_in_force, moc.status) == (OrderType.MARKET, TimeInForce.CLS, OrderStatus.NEW)
    assert (opg.time_in_force, opg.status) == (TimeInForce.OPG, OrderStatus.NEW)
    venue.desk.open_auction()
    assert venue.broker.order(opg.client_order_id).status is OrderStatus.FILLED
    assert venue.broker.order(moc.client_order_id).status is OrderStatus.NEW
    venue.desk.close_auction()
    assert venue.broker.order(moc.client_order_id).status is OrderStatus.FILLED
    with pytest.raises(InvalidOrder, match="on-close"):
        venue.broker.submit(order("stop-on-close", order_type=OrderType.STOP, stop=9.0, tif=TimeInForce.CLS))


def test_stop_orders_trigger_and_replace_changes_the_working_order(venue):
    stop = venue.broker.submit(order("stop", order_type=OrderType.STOP, stop=11.0))
    assert venue.desk.received(stop.client_order_id)[0]["orderType"] == "STP"
    changed = venue.broker.replace(stop.client_order_id, Replacement(stop_price=12.0, qty=5))
    assert (changed.stop_price, changed.qty, changed.status) == (12.0, 5, OrderStatus.NEW)
    first, second = venue.desk.received(stop.client_order_id)
    assert first["orderId"] == second["orderId"] and second["auxPrice"] == "12.0"
    venue.set_price("ACME", 11.5)
    assert venue.broker.order(stop.client_order_id).status is OrderStatus.NEW
    venue.set_price("ACME", 12.1)
    filled = venue.broker.order(stop.client_order_id)
    assert filled.status is OrderStatus.FILLED and filled.avg_fill_price == pytest.approx(12.1)
    with pytest.raises(InvalidOrder):
        venue.broker.cancel("no-such-order")


# ----------------------------------------------------------------------- the event stream
def test_updates_report_new_partial_fill_and_fill_with_commission(venue):
    placed = venue.broker.submit(order("events", order_type=OrderType.LIMIT, limit=9.0))
    assert [u.event for u in venue.broker.updates(0.5)] == [OrderEvent.NEW]
    venue.fill(placed.client_order_id, qty=4)
    (part,) = venue.broker.updates(2.0)
    assert part.event is OrderEvent.PARTIAL_FILL and part.order.status is OrderStatus.PARTIALLY_FILLED
    assert (part.fill.qty, part.fill.price, part.fill.commission) == (4, 9.0, pytest.approx(1.0))
    venue.fill(placed.client_order_id)
    (done,) = venue.broker.updates(2.0)
    assert done.event is OrderEvent.FILL and done.order.status is OrderStatus.FILLED and done.order.filled_qty == 10
    assert done.fill.qty == 6 and done.fill.fill_id != part.fill.fill_id
    assert done.fill.client_order_id == placed.client_order_id
    assert venue.broker.updates(0.0) == []
    venue.broker.cancel(venue.broker.submit(order("gone", order_type=OrderType.LIMIT, limit=8.0)).client_order_id)
    assert [u.event for u in venue.broker.updates(0.5)] == [OrderEvent.NEW, OrderEvent.CANCELED]


def test_account_positions_and_clock(venue):
    before = venue.broker.account()
    assert (before.equity, before.cash, before.buying_power, before.last_equity) == (100_000, 100_000, 400_000, 100_000)
    venue.broker.submit(order("buy"))
    wait_for(lambda: venue.broker.order(order("buy").client_order_id), lambda o: o.status is OrderStatus.FILLED)
    (held,) = venue.broker.positions()
    assert (held.symbol, held.qty) == ("ACME", 10)
    assert venue.broker.account().cash == pytest.approx(100_000 - 100 - 1.0)
    clock = venue.broker.clock()
    assert abs(clock.timestamp - datetime.now(UTC)) < timedelta(minutes=1)
    assert clock.next_open > clock.timestamp and clock.next_close > clock.timestamp


# ----------------------------------------------------------------------- settings and safety
def test_live_port_only_with_live_confirmed(settings: Settings):
    assert IbBroker.from_settings(settings).port == PAPER_PORT
    with pytest.raises(ValueError, match="live_confirmed"):
        IbBroker.from_settings(settings.model_copy(update={"mode": Mode.LIVE}))
    live = IbBroker.from_settings(settings.model_copy(update={"mode": Mode.LIVE, "live_confirmed": True}))
    assert (live.port, live.mode) == (LIVE_PORT, Mode.LIVE)
    with pytest.raises(ValueError, match="live port"):
        IbBroker.from_settings(settings.model_copy(update={"ibkr_port": LIVE_PORT}))
    custom = IbBroker.from_settings(settings, host="10.0.0.5", port=7497)
    assert (custom.host, custom.port, custom.client_id) == ("10.0.0.5", 7497, settings.ibkr_trading_client_id)


def test_paper_mode_refuses_a_live_account():
    with FakeIBGateway(symbols=["ACME"], trading=True, account="U7654321") as gw:
        broker = IbBroker("127.0.0.1", gw.port, CLIENT_ID, policy=TEST_POLICY)
        with pytest.raises(BrokerError, match="live account"):
            broker.positions()
        broker.close()
