"""The one interface every broker adapter implements (sim, Alpaca, Interactive Brokers),
its records, and the typed errors that replace vendor exceptions.

An adapter never lets a vendor exception out: a refused order is an `OrderRejected`
subclass, a broker that cannot be reached is `Disconnected` (or `RateLimited`), and a query
that failed is `QueryFailed`, never an empty answer. Messages carry no secrets.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from tapeflow.model import (
    Account,
    Fill,
    InvalidRecord,
    Mode,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TimeInForce,
    check_aware,
)

OPEN_STATUSES = frozenset({OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED})


# -- errors -----------------------------------------------------------------------------


class BrokerError(Exception):
    """Anything a broker adapter raises."""

    def __init__(self, message: str, *, broker: str = "", client_order_id: str | None = None) -> None:
        super().__init__(message)
        self.broker = broker
        self.client_order_id = client_order_id


class OrderRejected(BrokerError):
    """The broker refused the order: resubmitting it unchanged will not help."""

    reason = "rejected"


class InsufficientBuyingPower(OrderRejected):
    reason = "insufficient_buying_power"


class NotShortable(OrderRejected):
    """No shares to borrow (or no locate) for a short sale."""

    reason = "not_shortable"


class Halted(OrderRejected):
    reason = "halted"


class InvalidOrder(OrderRejected):
    """Unknown symbol, bad price or quantity, an order type the venue does not take..."""

    reason = "invalid_order"


class DuplicateOrderId(OrderRejected):
    """The client order id was used before: the first order may well exist (look it up)."""

    reason = "duplicate_id"


class Disconnected(BrokerError):
    """The broker could not be reached, or the answer was lost (timeout, 5xx, dropped socket):
    whether the request took effect is unknown."""


class RateLimited(Disconnected):
    """The broker asked us to slow down; like a lost answer, the request may not have run."""


class QueryFailed(BrokerError):
    """A read (orders, positions, account) failed: this is not an empty answer."""


# -- records ----------------------------------------------------------------------------


class OrderEvent(StrEnum):
    NEW = "new"
    PARTIAL_FILL = "partial_fill"
    FILL = "fill"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    REPLACED = "replaced"


@dataclass(frozen=True, slots=True)
class BrokerOrder:
    """An order as the broker reports it now."""

    client_order_id: str
    broker_order_id: str
    symbol: str
    side: Side
    qty: float
    order_type: OrderType
    time_in_force: TimeInForce
    status: OrderStatus
    filled_qty: float = 0.0
    avg_fill_price: float | None = None
    limit_price: float | None = None
    stop_price: float | None = None
    submitted_at: datetime | None = None
    updated_at: datetime | None = None
    reason: str = ""  # why it was rejected or cancelled, when the broker says
    legs: tuple[BrokerOrder, ...] = ()  # a bracket's take-profit and stop-loss

    def __post_init__(self) -> None:
        object.__setattr__(self, "side", Side(self.side))
        object.__setattr__(self, "order_type", OrderType(self.order_type))
        object.__setattr__(self, "time_in_force", TimeInForce(self.time_in_force))
        object.__setattr__(self, "status", OrderStatus(self.status))
        for name in ("submitted_at", "updated_at"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, check_aware(name, getattr(self, name)))
        if self.filled_qty < 0 or self.filled_qty > self.qty + 1e-9:
            raise InvalidRecord(f"filled_qty {self.filled_qty} outside [0, {self.qty}]")

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> float:
        return max(0.0, self.qty - self.filled_qty)


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """One event of an order's life, as the broker's stream (or the simulator) reports it."""

    event: OrderEvent
    order: BrokerOrder
    ts: datetime
    fill: Fill | None = None  # for partial_fill and fill: this execution

    def __post_init__(self) -> None:
        object.__setattr__(self, "event", OrderEvent(self.event))
        object.__setattr__(self, "ts", check_aware("ts", self.ts))


@dataclass(frozen=True, slots=True)
class Clock:
    """The broker's clock: now, and whether the regular session is open."""

    timestamp: datetime
    is_open: bool
    next_open: datetime
    next_close: datetime

    def __post_init__(self) -> None:
        for name in ("timestamp", "next_open", "next_close"):
            object.__setattr__(self, name, check_aware(name, getattr(self, name)))


@dataclass(frozen=True, slots=True)
class Replacement:
    """What `Broker.replace` may change on a working order."""

    qty: float | None = None
    limit_price: float | None = None
    stop_price: float | None = None
    changes: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        changes = tuple(n for n in ("qty", "limit_price", "stop_price") if getattr(self, n) is not None)
        if not changes:
            raise InvalidRecord("a replacement must change qty, limit_price or stop_price")
        object.__setattr__(self, "changes", changes)


# -- the interface -------------------------------------------------------------------------


class Broker(ABC):
    """Orders, positions and account of one account at one venue."""

    name: str  # "sim" | "alpaca" | "ibkr": the `broker` column in the warehouse
    mode: Mode  # paper or live; backtests do not use a Broker

    @abstractmethod
    def submit(self, order: Order) -> BrokerOrder:
        """Send `order` once. Raises OrderRejected subclasses, Disconnected or RateLimited;
        callers resubmit only through `tapeflow.brokers.submit.place`."""

    @abstractmethod
    def cancel(self, client_order_id: str) -> BrokerOrder:
        """Ask to cancel; returns the order as it stands (it may have filled meanwhile)."""

    @abstractmethod
    def replace(self, client_order_id: str, change: Replacement) -> BrokerOrder:
        """Change a working order's quantity or prices; returns the order that now works."""

    @abstractmethod
    def order(self, client_order_id: str) -> BrokerOrder | None:
        """The order with this client order id, or None if the broker has never seen it."""

    @abstractmethod
    def open_orders(self) -> list[BrokerOrder]:
        """Orders still working."""

    @abstractmethod
    def orders(self, since: datetime) -> list[BrokerOrder]:
        """Every order submitted since `since`, open or closed."""

    @abstractmethod
    def fills(self, since: datetime) -> list[Fill]:
        """Every execution since `since`, with the client order id it belongs to."""

    @abstractmethod
    def positions(self) -> list[Position]:
        """Current holdings (an empty list means flat; a failure raises QueryFailed)."""

    @abstractmethod
    def account(self) -> Account:
        """Equity, cash, buying power and the last session's equity."""

    def book(self) -> tuple[Account, list[Position]]:
        """`account()` and `positions()`; a venue that can read both at once overrides this."""
        return self.account(), self.positions()

    @abstractmethod
    def updates(self, timeout: float = 0.0) -> list[OrderUpdate]:
        """Order events received since the last call, waiting up to `timeout` seconds for one."""

    @abstractmethod
    def clock(self) -> Clock:
        """The venue's clock."""

    def close(self) -> None:
        """Release connections and threads."""

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
