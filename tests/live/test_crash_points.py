"""A session killed at each crash point, in-process and by SIGKILL, then restarted: it ends
flat at the close, sends no order twice, its ledger equals the broker, and its fills and
P&L are an uncrashed run's; bars from a downtime reach the simulator in order. The replay
launcher's resume and its one-run-at-a-time rule are in tests/live/test_replay_resume.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tapeflow.backtest.costs import Costs
from tapeflow.brokers.ledger import Ledger
from tapeflow.brokers.reconcile import reconcile
from tapeflow.calendar.exchange import NEW_YORK, get_calendar
from tapeflow.live.clock import SimulatedClock
from tapeflow.model import Mode
from tapeflow.venues.simulator import SimBroker
from tests.crash_kit import POINTS, RULES, START, Crash, afternoon, last_heartbeat, store_afternoon
from tests.session_kit import DAY, ny, scripted, session, store_day
from warehouse.connection import Warehouse

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def outcome(warehouse: Warehouse, sim, report) -> dict:
    """What a run leaves: the broker's fills and orders, the P&L, positions, the ledger's view."""
    with warehouse.write() as con:
        orders = con.execute("SELECT client_order_id, side, status FROM sim_orders ORDER BY client_order_id").fetchall()
    return {
        "fills": sorted((f.ts.astimezone(NEW_YORK).strftime("%H:%M"), f.symbol, f.side.value, f.qty, f.price,
                         f.commission) for f in sim.fills(ny(0))),
        "orders": orders,
        "realized_pnl": round(report.realized_pnl, 6),
        "positions": {p.symbol: p.qty for p in sim.positions() if p.qty},
    }


@pytest.fixture(scope="module")
def uncrashed(tmp_path_factory) -> dict:
    warehouse = Warehouse(tmp_path_factory.mktemp("uncrashed") / "w.duckdb", lock_timeout_s=5)
    store_afternoon(warehouse)
    session, sim = afternoon(warehouse, SimulatedClock(START))
    report = session.run()
    result = outcome(warehouse, sim, report)
    # The afternoon does what the points need: an entry, its stop, the time exit, all filled or cancelled.
    assert [f[:4] for f in result["fills"]] == [("12:31", "ACME", "buy", 100.0), ("12:55", "ACME", "sell", 100.0)]
    assert sorted(status for _, _, status in result["orders"]) == ["canceled", "filled", "filled"]
    assert result["realized_pnl"] == pytest.approx(100 * 0.4 - 2.0) and result["positions"] == {}
    return result


def check_restart(warehouse: Warehouse, clock: SimulatedClock, uncrashed: dict, point: str) -> None:
    session, sim = afternoon(warehouse, clock)
    report = session.run()
    assert outcome(warehouse, sim, report) == uncrashed  # same fills, orders (none twice), P&L; flat
    assert report.status == "finished" and report.reconciled
    assert report.recovery, "the session's record says what recovery did"
    assert not [a for a in report.alerts if a.startswith("position_left_open")]
    ledger = Ledger(warehouse, "sim", Mode.PAPER)
    assert ledger.positions() == {} and reconcile(ledger, sim, since=ny(0)).clean
    with warehouse.write() as con:
        [(status, recovery)] = con.execute("SELECT status, summary->>'recovery' FROM trading_sessions").fetchall()
    assert status == "finished" and "took over" in recovery


@pytest.mark.parametrize("point", POINTS)
def test_a_crash_in_process_then_a_restart_ends_like_an_uncrashed_run(warehouse, uncrashed, point):
    store_afternoon(warehouse)
    clock = SimulatedClock(START)
    crashed, _ = afternoon(warehouse, clock, point)
    with pytest.raises(Crash):
        crashed.run()
    assert clock.now() < ny(13, 0)
    check_restart(warehouse, clock, uncrashed, point)  # at once: the crashed run is provably gone


@pytest.mark.parametrize("point", POINTS)
def test_a_sigkill_then_a_restart_ends_like_an_uncrashed_run(warehouse, uncrashed, point):
    store_afternoon(warehouse)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    died = subprocess.run([sys.executable, "-m", "tests.crash_kit", str(warehouse.path), point], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert died.returncode == -9, died.stderr[-2000:]
    # The restart picks the clock up where the dead run's last cycle was, as a resumed replay does.
    check_restart(warehouse, SimulatedClock(last_heartbeat(warehouse)), uncrashed, point)


def test_bars_from_the_downtime_reach_the_simulator_in_order_after_a_restart(warehouse):
    """Down from 09:35 to 09:50 on the wall clock: the working limit entry fills on the 09:40
    bar that crossed it, as it would have, not on whatever the market does at the restart."""
    store_day(warehouse, {"ACME": 10.0}, moves={("ACME", 9, 40): 8.9, ("ACME", 9, 45): 9.5})
    strategy = scripted([(9, 31, "ACME", "enter", 9.0)], qty=100)
    clock = SimulatedClock(ny(9, 25))
    sim = SimBroker(warehouse, cash=100_000.0, costs=Costs(), now=clock)

    class DiesAt935:
        def on_bar(self, bar):
            sim.on_bar(bar)
            if bar.end == ny(9, 35):
                raise Crash()

        on_open, marked_through = sim.on_open, sim.marked_through

    with pytest.raises(Crash):
        session(strategy, sim, warehouse, clock, rules=RULES, market=DiesAt935()).run()
    clock.sleep((ny(9, 50) - clock.now()).total_seconds())  # the process is down for a quarter of an hour
    restarted = session(strategy, sim, warehouse, clock, rules=RULES, market=sim)
    day = get_calendar().session(DAY)
    with warehouse.held():
        restarted.prepare(day)
        restarted.cycle(day)
    [entry] = sim.fills(ny(0))
    assert (entry.ts, entry.qty, entry.price) == (ny(9, 40), 100, 8.9)
