"""Runs whose process died are marked Crashed when tapeflow next starts (`tapeflow serve`, or a
command that runs a flow); runs of live processes are left alone. The processes are real, on
the real Prefect API of the test harness; the verdict rules are checked on their own below."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect.settings import PREFECT_API_URL
from typer.testing import CliRunner

from flows.crash_sweep import MIN_STALE, death_of, sweep_dead_runs
from flows.run_owner import owner_of, owner_tag
from tapeflow.cli.console import err
from tapeflow.cli.main import app
from tapeflow.cli.serve import close_dead_runs
from tapeflow.config import Settings
from tapeflow.live.owner import Owner, process_gone
from warehouse import Warehouse

PROJECT_DIR = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
HERE = Owner(socket.gethostname(), os.getpid())


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_run_on_this_host_is_judged_by_its_process_never_by_heartbeats():
    ancient = NOW - timedelta(days=3)
    assert death_of([owner_tag(Owner(HERE.host, os.getppid()))], ancient, here=HERE, now=NOW, stale=MIN_STALE) is None
    assert death_of([owner_tag(HERE)], ancient, here=HERE, now=NOW, stale=MIN_STALE) is None  # this very process
    pid = dead_pid()
    assert process_gone(pid)
    why = death_of(["duckdb-writer", owner_tag(Owner(HERE.host, pid))], None, here=HERE, now=NOW, stale=MIN_STALE)
    assert why == f"its process (pid {pid} on {HERE.host}) is gone"


def test_other_runs_are_dead_only_after_a_long_silence_of_heartbeats():
    elsewhere = [owner_tag(Owner("another-host", 4242))]
    for tags in (elsewhere, []):  # another host's run, or one no tapeflow process tagged
        assert death_of(tags, NOW - timedelta(minutes=14), here=HERE, now=NOW, stale=MIN_STALE) is None
        assert death_of(tags, None, here=HERE, now=NOW, stale=MIN_STALE) is None  # never beat: unknown
        why = death_of(tags, NOW - timedelta(minutes=16), here=HERE, now=NOW, stale=MIN_STALE)
        assert why == "no heartbeat since 2026-03-02 14:44:00 UTC (over 15 min)"


def test_an_owner_tag_is_read_back_and_other_tags_are_not_owners():
    assert owner_of(["x", owner_tag(Owner("a.b-c", 12))]) == Owner("a.b-c", 12)
    assert owner_of(["tapeflow-owner:", "tapeflow-owner:host:", "tapeflow-owner:host:x1", "owner:h:1"]) is None


class Holder:
    """`tests/flows/hold_flow.py` in its own process, against the harness's API."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_LOGGING_LEVEL": "WARNING"}
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.flows.hold_flow", *args], cwd=PROJECT_DIR,
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.run_id: UUID | None = None

    def running(self, client) -> UUID:
        """Wait until its flow run is Running with its task run started; the flow run's id."""
        line = self.proc.stdout.readline().strip() if self.run_id is None else str(self.run_id)
        assert line, f"the holding flow exited with {self.proc.wait()}"
        self.run_id = UUID(line)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[self.run_id])))
            if any(t.state_type.value == "RUNNING" for t in tasks):
                return self.run_id
            time.sleep(0.2)
        raise AssertionError("the holding flow's task run never started")

    def kill(self) -> int:
        self.proc.kill()
        self.proc.wait()  # reaped: a zombie would still answer signal 0
        return self.proc.pid


def heartbeat_seen(client, run_id: UUID) -> None:
    """Wait until the API has stored a heartbeat of the run (events are written in batches)."""
    heartbeats = EventFilter(event=EventNameFilter(name=["prefect.flow-run.heartbeat"]),
                             resource=EventResourceFilter(id=[f"prefect.flow-run.{run_id}"]))
    deadline = time.monotonic() + START_TIMEOUT_S
    while not client.read_events(heartbeats, limit=1).events:
        assert time.monotonic() < deadline, "the run's first heartbeat was never stored"
        time.sleep(0.5)


def states(client, run_id: UUID) -> tuple[str, str, set[str]]:
    """The flow run's state type and message, and its task runs' state types."""
    run = client.read_flow_run(run_id)
    tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    return run.state_type.value, run.state.message or "", {t.state_type.value for t in tasks}


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_killed_runs_are_crashed_at_the_next_start_and_live_ones_left_running(tapeflow_home):
    killed, live, untagged = Holder(), Holder(), Holder("--untagged")
    try:
        with get_client(sync_client=True) as client:
            killed_run, live_run, untagged_run = (h.running(client) for h in (killed, live, untagged))
            killed_pid = killed.kill()

            close_dead_runs(PREFECT_API_URL.value(), err)  # what `tapeflow serve` does once its API is up
            state, message, tasks = states(client, killed_run)
            assert (state, tasks) == ("CRASHED", {"CRASHED"})
            assert f"its process (pid {killed_pid} on {socket.gethostname()}) is gone" in message
            assert states(client, live_run)[::2] == ("RUNNING", {"RUNNING"})
            assert states(client, untagged_run)[::2] == ("RUNNING", {"RUNNING"})

            # A run no tapeflow process tagged is judged by its heartbeats: an hour on, it is silent.
            heartbeat_seen(client, untagged_run)
            swept = sweep_dead_runs(now=datetime.now(UTC) + timedelta(hours=1))
            assert client.read_flow_run(untagged_run).name in {run.name for run in swept}
            state, message, tasks = states(client, untagged_run)
            assert (state, tasks) == ("CRASHED", {"CRASHED"}) and message.startswith("no heartbeat since ")
            assert states(client, live_run)[::2] == ("RUNNING", {"RUNNING"})  # its process is alive: that decides

            # The other way in: any tapeflow command that runs a flow sweeps before it starts.
            live_pid = live.kill()
            with Warehouse(Settings().warehouse_path).write():  # the scanner's warehouse exists
                pass
            result = CliRunner().invoke(app, ["snapshot", "--source", "scanner", "--as-of", "2025-12-25T10:00:00-05:00"])
            assert result.exit_code == 0, result.output
            assert "flow run(s) Crashed that a process which is gone left running" in result.stderr
            assert f"hold/{client.read_flow_run(live_run).name}" in result.stderr
            state, message, tasks = states(client, live_run)
            assert (state, tasks) == ("CRASHED", {"CRASHED"}) and f"pid {live_pid} on" in message
    finally:
        for holder in (killed, live, untagged):
            if holder.proc.poll() is None:
                holder.proc.send_signal(signal.SIGKILL)
                holder.proc.wait()
