"""Trading-session details on the simulated broker: the kill switch within one cycle, a broker
that drops out and comes back, crashes before and after an order was sent, risk-based
sizing. Whole days on every broker are in tests/live/test_session_venues.py."""

from __future__ import annotations

import os
import socket

import pytest

from tapeflow.backtest.costs import Costs
from tapeflow.calendar.exchange import NEW_YORK, get_calendar
from tapeflow.live import owner as owners
from tapeflow.live.clock import SimulatedClock
from tapeflow.live.session import SessionAlreadyRunning, SessionRules
from tapeflow.model import OrderStatus, Outcome
from tapeflow.risk.policy import ExecutionPolicy, Sizing
from tapeflow.risk.state import set_kill_switch
from tapeflow.venues.simulator import SimBroker
from tests.fakes.sim_venue import FaultyLink
from tests.session_kit import DAY, Flaky, Scripted, ny, scripted, session, store_day

pytestmark = pytest.mark.slow

RULES = SessionRules(cycle_s=60, policy=ExecutionPolicy(stop_loss_pct=0.05, daily_loss_limit_pct=None, max_position_pct=0.5))


class Crash(BaseException):
    """The process dies here (not an error anything may catch)."""


def run_until(trading, clock, hh: int, mm: int):
    """The session's morning only: prepare, cycle to hh:mm, then its end-of-day steps."""
    day = get_calendar().session(DAY)
    with trading.warehouse.held():  # as `run` does for a replay
        trading.prepare(day)
        while clock.now() < ny(hh, mm):
            trading.cycle(day)
            clock.sleep(60)
        return trading.finish(day)


def decisions(warehouse) -> list[tuple]:
    with warehouse.write() as con:
        return con.execute("SELECT strftime(decided_at AT TIME ZONE 'America/New_York', '%H:%M'), symbol, action, "
                           "outcome FROM session_decisions ORDER BY decided_at, symbol").fetchall()


def fills(broker) -> list[tuple]:
    return sorted((f.ts.astimezone(NEW_YORK).strftime("%H:%M"), f.symbol, f.side.value, f.qty, f.price)
                  for f in broker.fills(ny(0)))


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(ny(9, 25))


@pytest.fixture
def sim(warehouse, clock) -> SimBroker:
    return SimBroker(warehouse, cash=100_000.0, costs=Costs(), now=clock)


def test_the_kill_switch_cancels_working_entries_within_one_cycle(warehouse, sim, clock):
    store_day(warehouse, {"ACME": 10.0, "BETA": 20.0})
    strategy = scripted([(9, 31, "ACME", "enter", 9.0), (9, 31, "BETA", "enter"), (10, 5, "BETA", "exit"),
                         (10, 10, "ACME", "enter")], qty=100)
    trading = session(strategy, sim, warehouse, clock, rules=RULES, market=sim)
    day = get_calendar().session(DAY)
    with warehouse.held():
        trading.prepare(day)
        while clock.now() < ny(10, 15):
            if clock.now() == ny(10, 0):  # `tapeflow kill-switch on` from another process
                set_kill_switch(warehouse, "scripted", True, "operator: news halt", by="cli")
            trading.cycle(day)
            clock.sleep(60)
    resting = [o for o in sim.orders(ny(0)) if o.limit_price == 9.0]
    assert resting[0].status is OrderStatus.CANCELED and resting[0].updated_at == ny(10, 0)  # the same cycle
    outcomes = [(d[0], d[1], d[3]) for d in decisions(warehouse)]
    assert ("10:05", "BETA", "sent") in outcomes  # exits still go out
    assert ("10:10", "ACME", Outcome.ENTRIES_STOPPED.with_detail("kill switch (scripted): operator: news halt")) in outcomes
    assert [a.split(":")[0] for a in trading.report.alerts] == ["kill_switch"]


def test_a_broker_disconnect_is_alerted_and_trading_resumes_when_it_is_back(warehouse, sim, clock):
    store_day(warehouse, {"ACME": 10.0})
    alerts = []
    broker = Flaky(sim, clock, ny(9, 40), ny(9, 45))
    strategy = scripted([(9, 42, "ACME", "enter")], qty=100)
    run_until(session(strategy, broker, warehouse, clock, rules=RULES, market=sim,
                      alert=lambda kind, severity, message: alerts.append(kind)), clock, 9, 50)
    assert alerts.count("broker_disconnected") >= 5  # every cycle of the outage says so
    # The 09:42 decision waited for the broker and went out at 09:45, well within its age limit.
    assert [(d[0], d[3]) for d in decisions(warehouse) if d[2] == "enter"] == [("09:42", "sent")]
    assert fills(sim)[0][:3] == ("09:45", "ACME", "buy")


def test_a_restart_is_refused_while_the_owner_may_live_and_takes_over_when_it_cannot(warehouse, sim, clock):
    """Crash points and restarts after them are in tests/live/test_crash_points.py."""
    store_day(warehouse, {"ACME": 10.0})
    strategy = scripted([(9, 31, "ACME", "enter")], qty=100)
    day = get_calendar().session(DAY)
    first = session(strategy, sim, warehouse, clock, rules=RULES, market=sim)
    try:
        first.prepare(day)
        first.cycle(day)  # claimed, one heartbeat: it runs in this process
        with pytest.raises(SessionAlreadyRunning, match="running in"):
            session(strategy, sim, warehouse, clock, rules=RULES, market=sim).prepare(day)
        for owner in (f"{socket.gethostname()}:{os.getppid()}", "another-host:4242"):  # alive; not provably gone
            with warehouse.write() as con:
                con.execute("UPDATE trading_sessions SET owner = ?", [owner])
            with pytest.raises(SessionAlreadyRunning, match=owner):
                session(strategy, sim, warehouse, clock, rules=RULES, market=sim).prepare(day)
        clock.sleep(RULES.cycle_s + 11)  # its heartbeat is now older than a cycle: the lease is over
        again = session(strategy, sim, warehouse, clock, rules=RULES, market=sim)
        again.prepare(day)
        assert again.report.recovery == ["took over from another-host:4242: its heartbeat (2023-11-24T14:25:00+00:00) "
                                          "is older than a cycle"]
    finally:
        owners.stopped(first.id)


def test_entries_risk_a_set_share_of_equity_down_to_the_stop(warehouse, sim, clock):
    store_day(warehouse, {"ACME": 10.0})
    rules = SessionRules(policy=ExecutionPolicy(stop_loss_pct=0.05, daily_loss_limit_pct=None, max_position_pct=1.0,
                                                sizing=Sizing(fraction=1.0, risk_per_trade=0.005)))
    trading = session(scripted([(9, 31, "ACME", "enter")]), sim, warehouse, clock, rules=rules, market=sim)
    day = get_calendar().session(DAY)
    trading.prepare(day)
    while clock.now() <= ny(9, 32):
        trading.cycle(day)
        clock.sleep(60)
    # 0.5% of 100,000 at risk over a 5% stop on a $10 share: $500 / $0.50 = 1,000 shares (not all-in 10,000).
    assert fills(sim)[0][1:4] == ("ACME", "buy", 1000)


def test_a_restart_does_not_send_a_recorded_entry_past_the_kill_switch(warehouse, sim, clock):
    store_day(warehouse, {"ACME": 10.0})
    strategy = scripted([(9, 31, "ACME", "enter")], qty=100)

    class Dying(FaultyLink):
        def submit(self, order):
            raise Crash()

    day = get_calendar().session(DAY)
    first = session(strategy, Dying(sim), warehouse, clock, rules=RULES, market=sim)
    first.prepare(day)
    with pytest.raises(Crash):
        while True:
            first.cycle(day)
            clock.sleep(60)
    set_kill_switch(warehouse, "all", True, "operator: stop everything", by="cli")
    clock.sleep(150)
    again = session(strategy, FaultyLink(sim), warehouse, clock, rules=RULES, market=sim)
    again.prepare(day)
    again.cycle(day)
    assert sim.orders(ny(0)) == []
    assert [d[3] for d in decisions(warehouse)] == [Outcome.ENTRIES_STOPPED.with_detail("kill switch (all): operator: stop everything")]


def test_bars_that_reach_the_warehouse_late_still_reach_the_simulator(warehouse, sim, clock):
    store_day(warehouse, {"ACME": 10.0}, gaps=[(9, 31, 9, 36)])  # 09:31 to 09:35 are ingested late
    trading = session(scripted([(9, 31, "ACME", "enter")], qty=100), sim, warehouse, clock, rules=RULES,
                      market=sim)
    day = get_calendar().session(DAY)
    with warehouse.held():
        trading.prepare(day)
        while clock.now() < ny(9, 38):
            if clock.now() == ny(9, 36):  # they all arrive now, together
                store_day(warehouse, {"ACME": 10.5}, gaps=[(9, 30, 9, 31), (9, 36, 16, 0)])
            trading.cycle(day)
            clock.sleep(60)
    # The entry decided at 09:31 fills on the first bar after it, 09:31, at its open, once it arrives.
    assert fills(sim)[0] == ("09:31", "ACME", "buy", 100, 10.5)
    assert sim.account().equity == pytest.approx(100_000 - 100 * 10.5 + 100 * 10.0)  # marked at 09:37's close


def test_two_strategies_on_one_account_count_only_their_own_positions_and_orders(warehouse, sim, clock):
    store_day(warehouse, {"ACME": 10.0, "BETA": 20.0})
    alpha = type("Alpha", (Scripted,), {"name": "alpha", "script": [(9, 31, "ACME", "enter"), (9, 35, "BETA", "enter"),
                                                                      (9, 40, "ACME", "exit")]})()
    beta = type("Beta", (Scripted,), {"name": "beta", "script": [(9, 33, "ACME", "enter"), (9, 34, "BETA", "enter")]})()
    rules = SessionRules(policy=ExecutionPolicy(sizing=Sizing(fraction=0.2, max_positions=2), daily_loss_limit_pct=None))
    sessions = [session(s, sim, warehouse, clock, rules=rules, market=sim if s is alpha else None)
                for s in (alpha, beta)]
    day = get_calendar().session(DAY)
    with warehouse.held():
        for trading in sessions:
            trading.prepare(day)
        while clock.now() < ny(9, 45):
            for trading in sessions:
                trading.cycle(day)
            clock.sleep(60)
    with warehouse.write() as con:
        outcomes = con.execute("SELECT strftime(d.decided_at AT TIME ZONE 'America/New_York', '%H:%M'), s.strategy, "
                               "d.symbol, d.outcome FROM session_decisions d JOIN trading_sessions s USING (session_id) "
                               "ORDER BY 1, 2").fetchall()
    # beta's ACME entry is not blocked by alpha's position, nor alpha's BETA entry by beta's two
    # names (alpha holds one of its two slots); alpha's exit sells alpha's ACME shares only.
    assert [o[3] for o in outcomes] == ["sent"] * 5
    bought = {(f.symbol, f.ts.astimezone(NEW_YORK).strftime("%H:%M")): f.qty for f in sim.fills(ny(0)) if f.side.value == "buy"}
    sold = [(f.symbol, f.qty) for f in sim.fills(ny(0)) if f.side.value == "sell"]
    assert sold == [("ACME", bought[("ACME", "09:31")])]
    assert {p.symbol: p.qty for p in sim.positions()} == {"ACME": bought[("ACME", "09:33")],
                                                          "BETA": bought[("BETA", "09:34")] + bought[("BETA", "09:35")]}
