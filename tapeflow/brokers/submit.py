"""Placing an order exactly once, whatever the network does.

Every submit error that leaves the outcome unknown (a timeout, a 5xx, a dropped socket, a
rate limit, and "client order id already used", which is what a retried write that did land
looks like) is followed by a lookup by client order id; only a broker that answers "no such
order" gets the order again. If the lookup itself keeps failing, nothing is resent: the
caller gets `Disconnected` and the next reconciliation settles it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from tapeflow.brokers.base import (
    Broker,
    BrokerOrder,
    Disconnected,
    DuplicateOrderId,
    QueryFailed,
)
from tapeflow.model import Order

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlacePolicy:
    """How hard `place` tries: submits, lookups after a failed one, and the wait between."""

    submits: int = 3
    lookups: int = 4
    wait_s: float = 0.5  # doubled after each failure
    sleep: Callable[[float], None] = time.sleep


def place(broker: Broker, order: Order, policy: PlacePolicy = PlacePolicy()) -> BrokerOrder:
    """The broker's order for `order`, submitted at most as often as the broker has never seen it."""
    cid = order.client_order_id
    for attempt in range(policy.submits):
        try:
            return broker.submit(order)
        except DuplicateOrderId:
            found = _look_up(broker, cid, policy)
            if found is None:
                # The id is taken but the order is not there: never guess, never resend.
                raise
            log.info("order %s already at %s (%s): not sent again", cid, broker.name, found.status)
            return found
        except Disconnected as exc:
            found = _look_up(broker, cid, policy)
            if found is not None:
                log.info("order %s reached %s before the error (%s): not sent again", cid, broker.name, exc)
                return found
            log.warning("order %s did not reach %s (%s); sending again", cid, broker.name, exc)
            policy.sleep(policy.wait_s * 2**attempt)
    raise Disconnected(f"order {cid} could not be placed at {broker.name} after {policy.submits} attempts",
                       broker=broker.name, client_order_id=cid)


def _look_up(broker: Broker, cid: str, policy: PlacePolicy) -> BrokerOrder | None:
    """The broker's answer to "do you have `cid`?"; raises Disconnected if it never answers."""
    for attempt in range(policy.lookups):
        try:
            return broker.order(cid)
        except (Disconnected, QueryFailed) as exc:
            log.warning("looking up order %s at %s failed (%s)", cid, broker.name, exc)
            policy.sleep(policy.wait_s * 2**attempt)
    raise Disconnected(f"order {cid}: {broker.name} did not answer whether it has it; not sending again",
                       broker=broker.name, client_order_id=cid)
