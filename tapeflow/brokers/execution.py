"""Execution: a broker and its ledger together, as the trading flow drives them.

Every order is recorded before it is sent, placed through the idempotent `place`, and its
fate (acknowledged, rejected, filled) recorded as the broker reports it. New entries are
refused while the last reconciliation left an unexplained difference; exits stay possible.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from tapeflow.brokers.base import Broker, BrokerOrder, OrderRejected, OrderUpdate
from tapeflow.brokers.ledger import Ledger
from tapeflow.brokers.submit import PlacePolicy, place
from tapeflow.model import Order, Side

log = logging.getLogger(__name__)


class EntriesBlocked(RuntimeError):
    """New entries are refused until a reconciliation comes out clean."""


class Execution:
    """Submit, cancel and follow orders at `broker`, keeping `ledger` in step."""

    def __init__(self, broker: Broker, ledger: Ledger, policy: PlacePolicy = PlacePolicy()) -> None:
        if ledger.broker != broker.name:
            raise ValueError(f"ledger is for {ledger.broker!r}, broker is {broker.name!r}")
        self.broker = broker
        self.ledger = ledger
        self.policy = policy

    def submit(self, order: Order) -> BrokerOrder:
        """Record, then place `order` exactly once; typed rejections are recorded and re-raised."""
        if self.is_entry(order):
            blocked = self.ledger.entries_blocked()
            if blocked:
                raise EntriesBlocked(f"entry {order.client_order_id} refused: {blocked}")
        self.ledger.record_intent(order)
        try:
            state = place(self.broker, order, self.policy)
        except OrderRejected as exc:
            self.ledger.record_rejection(order, exc)
            raise
        self.ledger.record_order(state, strategy=order.strategy)
        return state

    def is_entry(self, order: Order) -> bool:
        """Whether `order` opens or adds to a position (an exit only reduces one)."""
        held = self.ledger.positions().get(order.symbol, 0.0)
        return held >= 0 if order.side is Side.BUY else held <= 0

    def cancel(self, client_order_id: str) -> BrokerOrder:
        state = self.broker.cancel(client_order_id)
        self.ledger.record_order(state)
        return state

    def sync(self, timeout: float = 0.0) -> list[OrderUpdate]:
        """Record the broker's order events, then refresh every order the ledger holds open
        (a stream can miss events: the broker's answer is what counts)."""
        seen = []
        batch = self.broker.updates(timeout)
        while batch:
            for update in batch:
                self.ledger.record_update(update)
                if not update.order.is_open:  # finished: a fill event lost on the way is fetched now
                    self._complete_fills(update.order.client_order_id, update.order.filled_qty)
            seen.extend(batch)
            batch = self.broker.updates(0.0)
        # One listing of the working orders answers for most; only orders that stopped
        # working (or never showed up) are looked up one by one.
        open_in_ledger = self.ledger.open_orders()
        working = {o.client_order_id: o for o in self.broker.open_orders()} if open_in_ledger else {}
        for cid in open_in_ledger:
            state = working.get(cid) or self.broker.order(cid)
            if state is None:
                continue  # reconciliation decides about orders the broker never saw
            self.ledger.record_order(state)
            self._complete_fills(cid, state.filled_qty)
        return seen

    def _complete_fills(self, cid: str, filled_qty: float) -> None:
        """Fetch the executions of `cid` the ledger lacks when the broker reports more filled."""
        if filled_qty <= sum(f.qty for f in self.ledger.fills(cid)) + 1e-9:
            return
        created = self.ledger.order_created(cid) or datetime.now(UTC)
        for fill in self.broker.fills(since=created - timedelta(minutes=1)):
            if fill.client_order_id == cid:
                self.ledger.record_fill(fill)
