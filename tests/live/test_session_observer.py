"""A session tells its observer what it does, in order, with no Prefect anywhere: the day's
start, each cycle's book, each fill, the kill switch engaging and letting go, the end."""

from __future__ import annotations

from datetime import date

import pytest

from tapeflow.backtest.costs import Costs
from tapeflow.calendar.exchange import get_calendar
from tapeflow.live.clock import SimulatedClock
from tapeflow.live.observer import Guard, SessionView
from tapeflow.live.report import SessionReport
from tapeflow.live.session import SessionRules
from tapeflow.model import Fill
from tapeflow.risk.policy import ExecutionPolicy
from tapeflow.risk.state import set_kill_switch
from tapeflow.venues.simulator import SimBroker
from tests.session_kit import DAY, ny, scripted, session, store_day

pytestmark = pytest.mark.slow

RULES = SessionRules(cycle_s=60, policy=ExecutionPolicy(stop_loss_pct=None, daily_loss_limit_pct=None,
                                                        max_position_pct=0.5))


class Recording:
    """Everything it is told, as (what, detail) in order."""

    def __init__(self) -> None:
        self.heard: list[tuple[str, object]] = []

    def on_start(self, session_id: str, day: date, cycles: int) -> None:
        self.heard.append(("start", (session_id, day, cycles)))

    def on_cycle(self, view: SessionView) -> None:
        self.heard.append(("cycle", view))

    def on_fill(self, fill: Fill) -> None:
        self.heard.append(("fill", fill))

    def on_guard(self, guard: Guard, engaged: bool, reason: str) -> None:
        self.heard.append(("guard", (guard, engaged, reason)))

    def on_finish(self, report: SessionReport, view: SessionView) -> None:
        self.heard.append(("finish", (report, view)))

    def of(self, what: str) -> list:
        return [detail for kind, detail in self.heard if kind == what]


def test_cycles_fills_and_a_kill_switch_reach_the_observer_in_order(warehouse):
    clock = SimulatedClock(ny(9, 25))
    sim = SimBroker(warehouse, cash=100_000.0, costs=Costs(), now=clock)
    store_day(warehouse, {"ACME": 10.0, "BETA": 20.0}, moves={("ACME", 9, 40): 11.0})
    strategy = scripted([(9, 31, "ACME", "enter"), (9, 33, "BETA", "enter", 19.0), (9, 50, "ACME", "exit")], qty=100)
    watching = Recording()
    trading = session(strategy, sim, warehouse, clock, rules=RULES, market=sim, observer=watching)
    day = get_calendar().session(DAY)
    with warehouse.held():
        trading.prepare(day)
        while clock.now() < ny(10, 0):
            if clock.now() == ny(9, 45):
                set_kill_switch(warehouse, "scripted", True, "operator: halt", by="cli")
            if clock.now() == ny(9, 47):
                set_kill_switch(warehouse, "scripted", False, "", by="cli")
            trading.cycle(day)
            clock.sleep(60)
        report = trading.finish(day)

    kinds = [kind for kind, _ in watching.heard]
    assert kinds[0] == "start" and kinds[-1] == "finish"
    [(sid, started, cycles)] = watching.of("start")
    assert (sid, started, cycles) == (trading.id, DAY, 215)  # 09:25 to 12:59, a minute apart: the close at 13:00
    views = watching.of("cycle")
    assert [v.cycle for v in views] == list(range(1, len(views) + 1)) == list(range(1, report.cycles + 1))
    assert [v.time for v in views] == sorted(v.time for v in views)

    # 09:31's entry fills at 09:32's open at $10; the exit at 09:51 at $11.
    fills = watching.of("fill")
    assert [(f.side.value, f.qty, f.price) for f in fills] == [("buy", 100, 10.0), ("sell", 100, 11.0)]
    position = [v for v in views if v.positions]
    assert position[0].positions[0].qty == 100 and position[0].positions[0].avg_price == 10.0
    marked = next(v for v in views if v.time == ny(9, 45))
    assert marked.positions[0].last == 11.0 and marked.unrealized_pnl == pytest.approx(100.0)
    # The 09:33 limit entry of BETA at $19 rests until the kill switch takes it back at 09:45.
    assert [w.limit_price for w in next(v for v in views if v.time == ny(9, 40)).working] == [19.0]
    assert next(v for v in views if v.time == ny(9, 45)).working == ()

    # Each fill is told in the cycle that first sees it: after the view before it, before the view after it.
    order = [(kind, detail.time if kind == "cycle" else None) for kind, detail in watching.heard]
    first_fill = order.index(("fill", None))
    assert order[first_fill - 1] == ("cycle", ny(9, 31)) and order[first_fill + 1] == ("cycle", ny(9, 32))
    guards = watching.of("guard")
    assert [(g, engaged) for g, engaged, _ in guards] == [(Guard.KILL_SWITCH, True), (Guard.KILL_SWITCH, False)]
    assert "operator: halt" in guards[0][2]
    engaged_at = kinds.index("guard")
    assert watching.heard[engaged_at - 1][1].time == ny(9, 44)  # told during the 09:45 cycle

    [(final, closing)] = watching.of("finish")
    assert final is report and final.fills == 2
    assert closing.positions == () and closing.realized_pnl == pytest.approx(report.realized_pnl) == pytest.approx(100.0)
    assert views[-1].realized_pnl == pytest.approx(100.0)  # the equity's change, read each cycle, agrees


def test_without_an_observer_nothing_is_kept(warehouse):
    clock = SimulatedClock(ny(9, 25))
    sim = SimBroker(warehouse, cash=100_000.0, costs=Costs(), now=clock)
    store_day(warehouse, {"ACME": 10.0})
    trading = session(scripted([(9, 31, "ACME", "enter")], qty=100), sim, warehouse, clock, rules=RULES, market=sim)
    day = get_calendar().session(DAY)
    with warehouse.held():
        trading.prepare(day)
        while clock.now() < ny(9, 35):
            trading.cycle(day)
            clock.sleep(60)
    assert trading._working == {} and trading._heard == set() and trading._guards == {}
