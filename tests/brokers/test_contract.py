"""One contract, three brokers: the simulator, Alpaca (alpaca-py against the Alpaca fake)
and Interactive Brokers (ib_async against the IB gateway fake). Every scenario runs on each,
with the same steps and the same expected outcome, through `Execution` (broker + warehouse
ledger) as the trading flow uses it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tapeflow.brokers.base import InsufficientBuyingPower, InvalidOrder
from tapeflow.brokers.execution import EntriesBlocked, Execution
from tapeflow.brokers.ids import client_order_id
from tapeflow.brokers.ledger import Ledger
from tapeflow.brokers.reconcile import reconcile
from tapeflow.brokers.submit import PlacePolicy
from tapeflow.model import Fill, Mode, Order, OrderStatus, OrderType, Side, TimeInForce
from tests.broker_venues import VENUES, Venue, open_venue, wait_for
from warehouse.connection import Warehouse

pytestmark = pytest.mark.slow

UTC = UTC
FAST = PlacePolicy(wait_s=0.05)


@pytest.fixture(params=sorted(VENUES))
def venue(request, tmp_path) -> Iterator[Venue]:
    with open_venue(request.param, tmp_path) as v:
        v.set_price("ACME", 10.0)
        yield v


@pytest.fixture
def execution(venue: Venue, warehouse: Warehouse) -> Execution:
    return Execution(venue.broker, Ledger(warehouse, venue.broker.name, Mode.PAPER), policy=FAST)


def order(decision: str, side: Side = Side.BUY, qty: float = 10, order_type: OrderType = OrderType.MARKET,
          limit: float | None = None, symbol: str = "ACME", leg: str = "entry") -> Order:
    return Order(client_order_id=client_order_id("contract", decision, symbol, leg), mode=Mode.PAPER, broker="any",
                 strategy="contract", symbol=symbol, side=side, qty=qty, order_type=order_type,
                 time_in_force=TimeInForce.DAY, created_at=datetime.now(UTC), limit_price=limit)


def positions(broker) -> dict[str, float]:
    return {p.symbol: p.qty for p in broker.positions() if p.qty}


def test_market_order_fills_and_the_position_appears(venue, execution):
    placed = execution.submit(order("market-buy"))
    assert placed.client_order_id == order("market-buy").client_order_id
    venue.set_price("ACME", 10.0)
    filled = wait_for(lambda: venue.broker.order(placed.client_order_id), lambda o: o.status is OrderStatus.FILLED)
    assert filled.filled_qty == 10 and filled.avg_fill_price == pytest.approx(10.0)
    assert positions(venue.broker) == {"ACME": 10}
    execution.sync(timeout=2.0)
    ledger = execution.ledger
    assert ledger.order_status(placed.client_order_id) is OrderStatus.FILLED
    assert [(f.qty, f.price) for f in ledger.fills(placed.client_order_id)] == [(10, pytest.approx(10.0))]
    assert ledger.positions() == {"ACME": 10}


def test_limit_order_rests_and_is_cancelled(venue, execution):
    placed = execution.submit(order("resting-limit", order_type=OrderType.LIMIT, limit=9.0))
    venue.set_price("ACME", 9.5)  # above the limit: nothing fills
    resting = venue.broker.order(placed.client_order_id)
    assert resting.status is OrderStatus.NEW and resting.filled_qty == 0
    assert [o.client_order_id for o in venue.broker.open_orders()] == [placed.client_order_id]
    execution.cancel(placed.client_order_id)
    gone = wait_for(lambda: venue.broker.order(placed.client_order_id), lambda o: o.status is OrderStatus.CANCELED)
    assert gone.filled_qty == 0
    assert venue.broker.open_orders() == []
    execution.sync(timeout=1.0)
    assert execution.ledger.order_status(placed.client_order_id) is OrderStatus.CANCELED
    assert positions(venue.broker) == {}


def test_partial_fill_then_fill(venue, execution):
    placed = execution.submit(order("partial", order_type=OrderType.LIMIT, limit=9.0))
    venue.fill(placed.client_order_id, qty=4)
    part = wait_for(lambda: venue.broker.order(placed.client_order_id), lambda o: o.filled_qty == 4)
    assert part.status is OrderStatus.PARTIALLY_FILLED and part.is_open
    venue.fill(placed.client_order_id)
    done = wait_for(lambda: venue.broker.order(placed.client_order_id), lambda o: o.status is OrderStatus.FILLED)
    assert done.filled_qty == 10 and done.avg_fill_price == pytest.approx(9.0)
    execution.sync(timeout=2.0)
    assert sorted(f.qty for f in execution.ledger.fills(placed.client_order_id)) == [4, 6]
    assert execution.ledger.positions() == positions(venue.broker) == {"ACME": 10}


def test_a_rejection_is_typed_and_recorded(venue, execution):
    too_big = order("too-big", qty=10_000_000)
    with pytest.raises(InsufficientBuyingPower) as caught:
        execution.submit(too_big)
    assert caught.value.client_order_id == too_big.client_order_id
    assert execution.ledger.order_status(too_big.client_order_id) is OrderStatus.REJECTED
    assert "insufficient_buying_power" in execution.ledger.order_reason(too_big.client_order_id)
    unknown = order("unknown-symbol", symbol="NOSUCH")
    with pytest.raises(InvalidOrder):
        execution.submit(unknown)
    assert execution.ledger.order_status(unknown.client_order_id) is OrderStatus.REJECTED
    assert positions(venue.broker) == {}


def test_an_answer_lost_after_the_write_does_not_duplicate_the_order(venue, execution):
    wanted = order("lost-answer", order_type=OrderType.LIMIT, limit=9.0)
    venue.fail_after_write_next()
    placed = execution.submit(wanted)
    assert placed.client_order_id == wanted.client_order_id and placed.is_open
    assert venue.submissions(wanted.client_order_id) == 1
    assert [o.client_order_id for o in venue.broker.open_orders()] == [wanted.client_order_id]
    # Submitting the same decision again (a restarted loop) finds it, and sends nothing.
    again = execution.submit(wanted)
    assert again.broker_order_id == placed.broker_order_id
    assert venue.submissions(wanted.client_order_id) == 1


def test_a_dropped_connection_mid_order_is_recovered_and_the_order_found_by_its_id(venue, execution):
    placed = execution.submit(order("dropped", order_type=OrderType.LIMIT, limit=9.0))
    venue.drop_connection()
    venue.set_price("ACME", 8.9)  # it fills while we are cut off
    found = wait_for(lambda: venue.broker.order(placed.client_order_id), lambda o: o.status is OrderStatus.FILLED)
    assert found.broker_order_id == placed.broker_order_id and found.filled_qty == 10
    assert positions(venue.broker) == {"ACME": 10}


def test_a_restart_and_reconciliation_adopt_a_fill_made_while_down(venue, warehouse):
    ledger = Ledger(warehouse, venue.broker.name, Mode.PAPER)
    since = datetime.now(UTC) - timedelta(minutes=5)
    placed = Execution(venue.broker, ledger, policy=FAST).submit(order("while-down", order_type=OrderType.LIMIT, limit=9.0))
    venue.broker.close()  # the process dies with the order working
    venue.set_price("ACME", 8.9)  # ...and it fills while nobody listens
    broker = venue.restart()
    assert ledger.fills(placed.client_order_id) == []
    report = reconcile(ledger, broker, since=since)
    assert [f.client_order_id for f in report.adopted_fills] == [placed.client_order_id]
    assert report.clean, report.differences
    assert ledger.positions() == positions(broker) == {"ACME": 10}
    assert ledger.order_status(placed.client_order_id) is OrderStatus.FILLED
    # Reconciling again changes nothing: the fill is not adopted twice.
    assert reconcile(ledger, broker, since=since).adopted_fills == []
    assert len(ledger.fills(placed.client_order_id)) == 1


def test_a_fill_adopted_after_a_too_narrow_window_moves_cash_once(venue, execution):
    placed = execution.submit(order("unseen"))
    venue.set_price("ACME", 10.0)
    wait_for(lambda: venue.broker.order(placed.client_order_id), lambda o: o.status is OrderStatus.FILLED)
    # A window that starts after the fill: the fill is not adopted, but the cash read already holds it.
    narrow = reconcile(execution.ledger, venue.broker, since=datetime.now(UTC) + timedelta(minutes=5))
    assert narrow.adopted_fills == [] and not narrow.clean
    wide = reconcile(execution.ledger, venue.broker, since=datetime.now(UTC) - timedelta(days=1))
    assert [f.client_order_id for f in wide.adopted_fills] == [placed.client_order_id]
    assert wide.clean and [d for d in wide.differences if d.kind == "cash"] == [], wide.describe()


def test_an_unexplained_difference_blocks_entries_but_not_exits(venue, execution):
    execution.submit(order("held"))
    venue.set_price("ACME", 10.0)
    wait_for(lambda: venue.broker.order(order("held").client_order_id), lambda o: o.status is OrderStatus.FILLED)
    execution.sync(timeout=2.0)
    # The ledger claims a fill the broker never made: a difference nobody can explain.
    execution.ledger.record_fill(Fill(broker=venue.broker.name, fill_id="ghost-1", client_order_id="ghost",
                                      symbol="ACME", side=Side.BUY, ts=datetime.now(UTC), qty=5, price=10.0))
    report = reconcile(execution.ledger, venue.broker, since=datetime.now(UTC) - timedelta(minutes=5))
    assert not report.clean
    assert any(d.symbol == "ACME" and d.kind == "position" for d in report.differences)
    with pytest.raises(EntriesBlocked):
        execution.submit(order("another-entry"))
    exit_ = execution.submit(order("exit", side=Side.SELL, leg="exit"))  # reducing risk stays possible
    assert exit_.client_order_id == order("exit", side=Side.SELL, leg="exit").client_order_id
