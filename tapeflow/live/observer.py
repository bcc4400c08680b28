"""What a running session tells whoever watches it (the Prefect UI, a test), without
knowing who: each cycle's book, each fill, each guard that engages or lets go, the end.

A session with no observer builds none of this. The view is made of what the cycle read
anyway (account, positions, this cycle's bars, the broker's order events): watching costs
no warehouse transaction of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Protocol

from tapeflow.brokers.base import BrokerOrder
from tapeflow.live.report import SessionReport
from tapeflow.model import Fill, OrderType, Position, Side


class Guard(StrEnum):
    """What can stop a session's entries."""

    BREAKER = "breaker"  # the daily loss limit was hit (it then locks the day)
    KILL_SWITCH = "kill-switch"
    DAY_LOCK = "day-lock"  # no new entries for the rest of the day


@dataclass(frozen=True)
class Holding:
    """A position as the cycle saw it, marked at the last close it knew."""

    symbol: str
    qty: float
    avg_price: float
    last: float | None  # None: no bar of it in this cycle's view (marked at cost)
    unrealized_pnl: float

    @classmethod
    def of(cls, position: Position, last: float | None) -> Holding:
        mark = position.avg_price if last is None else last
        return cls(position.symbol, position.qty, position.avg_price, last, (mark - position.avg_price) * position.qty)


@dataclass(frozen=True)
class WorkingOrder:
    """An order still working at the broker."""

    client_order_id: str
    symbol: str
    side: Side
    qty: float
    filled_qty: float
    order_type: OrderType
    limit_price: float | None
    stop_price: float | None

    @classmethod
    def of(cls, order: BrokerOrder) -> WorkingOrder:
        return cls(order.client_order_id, order.symbol, order.side, order.qty, order.filled_qty, order.order_type,
                   order.limit_price, order.stop_price)


@dataclass(frozen=True)
class SessionView:
    """The account's book at one cycle: `cycle` of `cycles`, equity, cash, P&L, positions, orders.

    `realized_pnl` is the day's: the equity's change since the session began less the change
    in unrealised P&L (no fill history is read for it); the session's summary has the
    ledger's own figure at the close."""

    session_id: str
    time: datetime
    cycle: int
    cycles: int
    equity: float
    cash: float
    realized_pnl: float
    unrealized_pnl: float
    positions: tuple[Holding, ...]
    working: tuple[WorkingOrder, ...]

    @property
    def percent(self) -> float:
        """How far through its cycles the day is, 0 to 100."""
        return 100.0 if self.cycles <= 0 else min(100.0, 100.0 * self.cycle / self.cycles)

    def book(self) -> tuple[tuple[tuple[str, float], ...], tuple[tuple[str, float], ...]]:
        """What the book holds and has working, without prices: it changes only on a trade or an order."""
        return (tuple((h.symbol, h.qty) for h in self.positions),
                tuple((w.client_order_id, w.qty - w.filled_qty) for w in self.working))


class SessionObserver(Protocol):
    """Told, in order, what a session does; it must not block for long (the cycle waits)."""

    def on_start(self, session_id: str, day: date, cycles: int) -> None: ...

    def on_cycle(self, view: SessionView) -> None: ...

    def on_fill(self, fill: Fill) -> None: ...

    def on_guard(self, guard: Guard, engaged: bool, reason: str) -> None: ...

    def on_finish(self, report: SessionReport, view: SessionView) -> None: ...
