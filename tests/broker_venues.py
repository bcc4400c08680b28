"""The venues the broker contract suite runs against: a Broker adapter plus the controls of
what stands behind it (the simulator's exchange, the Alpaca fake, the IB gateway fake).

Each venue offers the same controls, so one scenario reads the same on all three:
- set_price(symbol, price): the market trades at `price`: a working market order fills
  there, a resting limit or stop that the price reaches fills;
- fill(cid, qty=None): the venue executes `qty` (default: all that remains) of a working
  order at its limit price (or the last price);
- fail_after_write_next(): the next order submitted is accepted, but the answer is lost
  (Alpaca: a 504 after the write; IB: the socket drops right after placeOrder);
- drop_connection(): the connection dies; the adapter must notice and reconnect;
- submissions(cid): how many orders with that client order id the venue has accepted;
- restart(): a fresh adapter on the same venue state, as after a process restart;
- stop(): shut the venue down.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from tapeflow.brokers.base import Broker, BrokerOrder


class Venue(Protocol):
    broker: Broker

    def set_price(self, symbol: str, price: float) -> None: ...

    def fill(self, client_order_id: str, qty: float | None = None) -> None: ...

    def fail_after_write_next(self) -> None: ...

    def drop_connection(self) -> None: ...

    def submissions(self, client_order_id: str) -> int: ...

    def restart(self) -> Broker: ...

    def stop(self) -> None: ...


VenueFactory = Callable[[Path], Venue]


def _sim(tmp_path: Path) -> Venue:
    from tests.fakes.sim_venue import SimVenue

    return SimVenue(tmp_path)


def _alpaca(tmp_path: Path) -> Venue:
    from tests.fakes.alpaca_trading import AlpacaVenue

    return AlpacaVenue(tmp_path)


def _ibkr(tmp_path: Path) -> Venue:
    from tests.fakes.ib_broker import IbVenue

    return IbVenue(tmp_path)


VENUES: dict[str, VenueFactory] = {"sim": _sim, "alpaca": _alpaca, "ibkr": _ibkr}


@contextmanager
def open_venue(name: str, tmp_path: Path) -> Iterator[Venue]:
    venue = VENUES[name](tmp_path)
    try:
        yield venue
    finally:
        venue.stop()


def wait_for(check: Callable[[], BrokerOrder | None], until: Callable[[BrokerOrder], bool], seconds: float = 5.0) -> BrokerOrder:
    """Poll the broker until the order reaches the wanted state (fills arrive asynchronously)."""
    deadline = time.monotonic() + seconds
    while True:
        got = check()
        if got is not None and until(got):
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"order never reached the wanted state; last seen {got}")
        time.sleep(0.05)
