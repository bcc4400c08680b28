"""Crash points of a trading session: one scripted afternoon on the simulated broker (an
entry at 12:31, its protective stop, the time exit at 12:55 on a half day), and the exact
places a process can die in it. A crash either raises `Crash` (in-process) or SIGKILLs the
process; run as `python -m tests.crash_kit WAREHOUSE POINT` it plays the afternoon in a
process of its own and dies at POINT; as `python -m tests.crash_kit replay DAY` it replays
DAY of the `afternoon` strategy file through the replay launcher and dies in its closing step."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from datetime import datetime

from tapeflow.backtest.costs import Commission, Costs
from tapeflow.brokers.execution import Execution
from tapeflow.brokers.ledger import Ledger
from tapeflow.live.clock import SimulatedClock
from tapeflow.live.feed import WarehouseFeed
from tapeflow.live.session import TIME_EXIT, SessionRules, TradingSession
from tapeflow.model import Mode, OrderStatus, Side, Timeframe
from tapeflow.risk.policy import ExecutionPolicy
from tapeflow.venues.simulator import SimBroker
from tests.fakes.sim_venue import FaultyLink
from tests.session_kit import DAY, FAST, ny, scripted, store_day
from warehouse.connection import Warehouse

POINTS = ("after the decision", "after the record, before the ack", "after the submission, before the record",
          "after a fill", "in the closing step, after the sell reached the broker")
RULES = SessionRules(cycle_s=60, policy=ExecutionPolicy(stop_loss_pct=0.05, daily_loss_limit_pct=None,
                                                        max_position_pct=0.5))
START = ny(12, 30)


class Crash(BaseException):
    """The process dies here (not an error anything may catch)."""


def die_in_process() -> None:
    raise Crash()


def die_by_sigkill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def store_afternoon(warehouse: Warehouse) -> None:
    """ACME flat at 10.00, up to 10.40 from 12:40: the entry makes money, the stop never trades."""
    store_day(warehouse, {"ACME": 10.0}, moves={("ACME", 12, 40): 10.4})


def strategy():
    return scripted([(12, 31, "ACME", "enter")], qty=100)


class _Ledger(Ledger):
    def __init__(self, warehouse: Warehouse, point: str | None, die: Callable[[], None]) -> None:
        super().__init__(warehouse, "sim", Mode.PAPER)
        self.point, self.die = point, die

    def record_intent(self, order) -> None:
        if self.point == POINTS[0] and order.side is Side.BUY:
            self.die()  # the decision is recorded; nothing about its order is
        super().record_intent(order)

    def record_order(self, state, *, strategy: str = "external") -> None:
        super().record_order(state, strategy=strategy)
        if self.point == POINTS[1] and state.side is Side.BUY and state.status is OrderStatus.NEW:
            self.die()  # the broker's acknowledgement is in the ledger; the decision is not marked sent


class _Broker(FaultyLink):
    def __init__(self, inner: SimBroker, point: str | None, die: Callable[[], None]) -> None:
        super().__init__(inner)
        self.point, self.die = point, die

    def submit(self, order):
        state = super().submit(order)
        if self.point == POINTS[2] and order.side is Side.BUY:
            self.die()
        if self.point == POINTS[4] and order.reason == TIME_EXIT:
            self.die()
        return state


class _Market:
    """The simulator's market, dying right after a bar filled something."""

    def __init__(self, sim: SimBroker, point: str | None, die: Callable[[], None]) -> None:
        self.sim, self.point, self.die = sim, point, die

    def on_bar(self, bar):
        made = self.sim.on_bar(bar)
        if made and self.point == POINTS[3]:
            self.die()
        return made

    def on_open(self, bar):
        return self.sim.on_open(bar)

    def marked_through(self) -> dict[str, datetime]:
        return self.sim.marked_through()


def afternoon(warehouse: Warehouse, clock: SimulatedClock, point: str | None = None,
              die: Callable[[], None] = die_in_process) -> tuple[TradingSession, SimBroker]:
    """The afternoon's session on the simulator in `warehouse`, dying at `point` (None: never)."""
    sim = SimBroker(warehouse, cash=100_000.0, costs=Costs(commission=Commission(per_order=1.0)), now=clock)
    execution = Execution(_Broker(sim, point, die), _Ledger(warehouse, point, die), policy=FAST)
    feed = WarehouseFeed(warehouse, Timeframe.MINUTE)
    session = TradingSession(strategy(), execution, feed, clock, warehouse, rules=RULES, day=DAY,
                             market=_Market(sim, point, die), hold_warehouse=True)
    return session, sim


def last_heartbeat(warehouse: Warehouse) -> datetime:
    """Where a restarted replay picks its clock up: the crashed run's last cycle."""
    with warehouse.write() as con:
        return con.execute("SELECT max(ts) FROM heartbeats WHERE component = 'trade_session:scripted'").fetchall()[0][0]


if __name__ == "__main__" and sys.argv[1] != "replay":
    path, point = sys.argv[1], sys.argv[2]
    session, _ = afternoon(Warehouse(path), SimulatedClock(START), point, die_by_sigkill)
    session.run()
    sys.exit(3)  # the point was never reached


AFTERNOON_STRATEGY = '''
"""ACME at 12:31, flat by the time exit: the crash kit's afternoon as a strategy file."""
from datetime import datetime, time
from zoneinfo import ZoneInfo

from tapeflow.model import Timeframe
from tapeflow.strategy.base import Strategy, signal_frame


class Afternoon(Strategy):
    name = "afternoon"
    timeframe = Timeframe.MINUTE
    params = ()

    def signals(self, history):
        rows = []
        for day in history.bars["ts"].dt.date().unique().to_list():
            at = datetime.combine(day, time(12, 31), ZoneInfo("America/New_York"))
            if history.bars.height and at <= history.bars["end_ts"].max():
                rows.append({"symbol": "ACME", "at": at, "action": "enter", "reason": "12:31", "qty": 100.0})
        return signal_frame(rows)
'''


def replay_until_the_closing_sell(day: str) -> None:
    """Replay `day` of the `afternoon` strategy through the launcher, SIGKILLed as soon as its
    closing sell has reached the simulated broker (settings from the environment)."""
    from datetime import date

    from tapeflow.config import load_settings
    from tapeflow.live.launch import replay_session
    from warehouse import open_warehouse

    real = SimBroker.submit

    def submit(self, order):
        state = real(self, order)
        if order.reason == TIME_EXIT:
            die_by_sigkill()
        return state

    SimBroker.submit = submit  # type: ignore[method-assign]
    settings = load_settings()
    replay_session(settings, open_warehouse(settings), "afternoon", date.fromisoformat(day)).run()


if __name__ == "__main__" and sys.argv[1] == "replay":
    replay_until_the_closing_sell(sys.argv[2])
    sys.exit(3)
