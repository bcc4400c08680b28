"""The simulated broker as a contract-suite venue: its market is bars fed to `on_bar`, and
the faults the network brings to real brokers are injected by a thin wrapper.

The simulator has no connection to drop (it opens the warehouse for each call), so
`drop_connection` is a no-op; a lost answer after a write is the wrapper raising
`Disconnected` after the order was booked.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tapeflow.backtest.costs import Costs
from tapeflow.brokers.base import (
    Broker,
    BrokerOrder,
    Clock,
    Disconnected,
    OrderUpdate,
    Replacement,
)
from tapeflow.model import Account, Bar, Fill, Order, Position, Timeframe
from tapeflow.venues.simulator import SimBroker
from warehouse.connection import Warehouse

# Every bar may fill all of an order (participation 1.0), so `fill(cid, qty)` is a bar of `qty` shares.
COSTS = Costs(participation=1.0)
DEEP = 1e9  # the volume of a set_price bar: deep enough for any order


class FaultyLink(Broker):
    """A SimBroker whose next submit answer can be lost after the order was booked."""

    def __init__(self, inner: SimBroker) -> None:
        self.inner = inner
        self.name = inner.name
        self.mode = inner.mode
        self.lose_next_answer = False
        self.closed = False

    def submit(self, order: Order) -> BrokerOrder:
        state = self.inner.submit(order)
        if self.lose_next_answer:
            self.lose_next_answer = False
            raise Disconnected("the answer was lost after the order was booked", broker=self.name,
                               client_order_id=order.client_order_id)
        return state

    def cancel(self, client_order_id: str) -> BrokerOrder:
        return self.inner.cancel(client_order_id)

    def replace(self, client_order_id: str, change: Replacement) -> BrokerOrder:
        return self.inner.replace(client_order_id, change)

    def order(self, client_order_id: str) -> BrokerOrder | None:
        return self.inner.order(client_order_id)

    def open_orders(self) -> list[BrokerOrder]:
        return self.inner.open_orders()

    def orders(self, since: datetime) -> list[BrokerOrder]:
        return self.inner.orders(since)

    def fills(self, since: datetime) -> list[Fill]:
        return self.inner.fills(since)

    def positions(self) -> list[Position]:
        return self.inner.positions()

    def account(self) -> Account:
        return self.inner.account()

    def updates(self, timeout: float = 0.0) -> list[OrderUpdate]:
        return self.inner.updates(timeout)

    def clock(self) -> Clock:
        return self.inner.clock()

    def close(self) -> None:
        self.closed = True


class SimVenue:
    def __init__(self, tmp_path: Path) -> None:
        self.warehouse = Warehouse(tmp_path / "sim-venue.duckdb")
        self.broker = FaultyLink(SimBroker(self.warehouse, cash=100_000.0, costs=COSTS))

    def _market(self) -> SimBroker:
        # While the trading process is down the venue keeps matching: another instance on the same book.
        return SimBroker(self.warehouse, costs=COSTS) if self.broker.closed else self.broker.inner

    def _bar(self, symbol: str, price: float, volume: float) -> Bar:
        now = datetime.now(UTC)
        return Bar(symbol=symbol, timeframe=Timeframe.MINUTE, ts=now, end=now + timedelta(minutes=1), open=price,
                   high=price, low=price, close=price, volume=volume, source="sim-venue")

    def set_price(self, symbol: str, price: float) -> None:
        self._market().on_bar(self._bar(symbol, price, DEEP))

    def fill(self, client_order_id: str, qty: float | None = None) -> None:
        state = self._market().order(client_order_id)
        price = state.limit_price or state.stop_price
        self._market().on_bar(self._bar(state.symbol, price, qty if qty is not None else state.remaining))

    def fail_after_write_next(self) -> None:
        self.broker.lose_next_answer = True

    def drop_connection(self) -> None:
        pass  # no connection: each call opens the warehouse afresh

    def submissions(self, client_order_id: str) -> int:
        with self.warehouse.write() as con:
            return con.execute("SELECT count(*) FROM sim_orders WHERE client_order_id = ?", [client_order_id]).fetchone()[0]

    def restart(self) -> Broker:
        self.broker.close()
        self.broker = FaultyLink(SimBroker(self.warehouse, costs=COSTS))
        return self.broker

    def stop(self) -> None:
        self.broker.close()
