"""The kill switch never waits on readers: while a long `tapeflow sql` query holds the
warehouse, `tapeflow kill-switch on` returns at once, a running session rides the busy
warehouse out without dying and stops new entries, and Ctrl-C ends the query."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from tapeflow.backtest.costs import Costs
from tapeflow.brokers.execution import Execution
from tapeflow.brokers.ledger import Ledger
from tapeflow.calendar.exchange import get_calendar
from tapeflow.cli.main import app
from tapeflow.live.clock import SimulatedClock
from tapeflow.live.feed import WarehouseFeed
from tapeflow.live.session import SessionRules, TradingSession
from tapeflow.model import Mode, OrderStatus, Outcome, Timeframe
from tapeflow.risk.policy import ExecutionPolicy
from tapeflow.venues.simulator import SimBroker
from tests.session_kit import DAY, FAST, ny, scripted, store_day
from warehouse.connection import Warehouse, WarehouseBusy

pytestmark = pytest.mark.slow
runner = CliRunner()
LONG_QUERY = "SELECT sum(hash(range)) FROM range(100000000000)"  # minutes of work: it holds the file until stopped


def held_by_another_process(warehouse: Warehouse) -> bool:
    try:
        with Warehouse(warehouse.path, lock_timeout_s=0.05).write():
            return False
    except WarehouseBusy:
        return True


def test_kill_switch_and_session_while_a_long_query_holds_the_warehouse(settings):
    warehouse = Warehouse(settings.warehouse_path, lock_timeout_s=0.5)  # a live session's: opened per write
    store_day(warehouse, {"ACME": 10.0, "BETA": 20.0})
    clock = SimulatedClock(ny(9, 25))
    sim = SimBroker(warehouse, cash=100_000.0, costs=Costs(), now=clock)
    alerts: list[str] = []
    trading = TradingSession(
        scripted([(9, 31, "ACME", "enter", 9.0), (9, 40, "BETA", "enter")], qty=100),
        Execution(sim, Ledger(warehouse, "sim", Mode.PAPER), policy=FAST), WarehouseFeed(warehouse, Timeframe.MINUTE),
        clock, warehouse, rules=SessionRules(policy=ExecutionPolicy(daily_loss_limit_pct=None)), day=DAY, market=sim,
        alert=lambda kind, severity, message: alerts.append(kind))
    day = get_calendar().session(DAY)
    trading.prepare(day)
    while clock.now() <= ny(9, 35):
        trading.cycle(day)
        clock.sleep(60)
    assert [o.status for o in sim.open_orders()] == [OrderStatus.NEW]  # ACME's limit entry, working

    query = subprocess.Popen([sys.executable, "-m", "tapeflow.cli.main", "sql", LONG_QUERY, "--time-limit", "120"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not held_by_another_process(warehouse):
            assert time.monotonic() < deadline and query.poll() is None, query.stderr.read() if query.stderr else ""
            time.sleep(0.1)

        started = time.monotonic()
        engaged = runner.invoke(app, ["kill-switch", "on", "--strategy", "scripted", "--reason", "news halt"])
        took = time.monotonic() - started
        assert engaged.exit_code == 0 and "ENGAGED" in engaged.stdout and "warehouse is busy" in engaged.stdout
        assert took < 1.0, f"kill-switch on took {took:.2f} s"

        trading.cycle(day)  # 09:36, the warehouse still held: no error, the switch read from its side file
        assert trading.report.status == "killed" and alerts[-2:] == ["kill_switch", "warehouse_busy"]
        assert held_by_another_process(warehouse)

        query.send_signal(signal.SIGINT)
        _, stderr = query.communicate(timeout=10)
    finally:
        query.kill()
    # (it may first have said it waited for the file: the probe above takes the lock for an instant)
    assert query.returncode == 130 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == "query stopped by Ctrl-C; nothing was changed"

    clock.sleep(60)
    while clock.now() <= ny(9, 41):
        trading.cycle(day)
        clock.sleep(60)
    assert sim.open_orders() == [] and sim.positions() == []  # the working entry cancelled, no new one
    with warehouse.write() as con:
        refused = con.execute("SELECT outcome FROM session_decisions WHERE symbol = 'BETA'").fetchall()
        recorded = con.execute("SELECT engaged, reason, changed_by FROM kill_switch").fetchall()
    assert refused == [(Outcome.ENTRIES_STOPPED.with_detail("kill switch (scripted): news halt"),)]
    assert recorded == [(True, "news halt", "cli")]  # recorded in the warehouse once it was free


def test_the_kill_switch_command_starts_without_the_rest_of_the_cli(tapeflow_home):
    """`tapeflow kill-switch` loads neither polars, Prefect nor the strategies: its process
    answers in about half a second, not the whole CLI's second."""
    probe = ("import sys; sys.argv = ['tapeflow', 'kill-switch', 'on', '--reason', 'halt']\n"
             "from tapeflow.cli.entry import main\n"
             "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'polars', 'prefect', 'strategies', 'matplotlib'}))")
    ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == ["kill switch for all: ENGAGED", "[]"]
    status = runner.invoke(app, ["kill-switch", "status"])  # the whole CLI has the same command
    assert status.exit_code == 0 and "halt" in status.stdout
