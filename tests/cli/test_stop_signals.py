"""Ctrl-C or SIGTERM stops a `tapeflow` command that runs flows within seconds: exit status 130,
one line, no traceback, no run left Running or Pending in its Prefect database, and the local
Prefect API it started stopped with it.

Real processes, each in a new session (a terminal's Ctrl-C signals the whole foreground
process group, the local API included) with its own TAPEFLOW_HOME; they share one
PREFECT_HOME so that its database is created once.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]
TAPEFLOW = Path(sys.executable).parent / "tapeflow"
START_TIMEOUT_S = 180  # the local API's first start creates its database: slow on two busy cores
STOP_WITHIN_S = 30

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not TAPEFLOW.exists() or not hasattr(os, "killpg"), reason="needs the tapeflow script, on POSIX"),
]


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("prefect-home")


class Command:
    """`tapeflow ARGS` in a session of its own, its output in files (a pipe could fill and block it)."""

    def __init__(self, args: list[str], home: Path, prefect_home: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TAPEFLOW_"))}
        env.update(TAPEFLOW_HOME=str(home), PREFECT_HOME=str(prefect_home), DO_NOT_TRACK="1",
                   PREFECT_SERVER_ANALYTICS_ENABLED="false",
                   # The local API writes its own log to the same stderr: on a loaded machine, SQLite
                   # busy errors it retries. They are not the command's output under test here.
                   PREFECT_SERVER_LOGGING_LEVEL="CRITICAL")
        self.db = prefect_home / "prefect.db"
        self.stderr_path = home.parent / "stderr.txt"
        with open(home.parent / "stdout.txt", "w") as out, open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen([str(TAPEFLOW), *args], cwd=PROJECT_DIR, env=env, stdout=out, stderr=err,
                                         start_new_session=True)

    def wait_for_a_running_flow(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"exited {self.proc.returncode} first:\n{self.stderr}"
            if self.db.exists() and query(self.db, "SELECT 1 FROM flow_run WHERE state_type = 'RUNNING'"):
                return
            time.sleep(0.05)
        raise AssertionError(f"no flow run started within {START_TIMEOUT_S} s:\n{self.stderr}")

    def stopped_within(self, seconds: float) -> int:
        try:
            return self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running {seconds} s after the signal:\n{self.stderr}") from None

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def session_gone(self) -> bool:
        """Every process of its session (the local API too) has exited."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.1)
        return False

    def kill_all(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


def query(db: Path, sql: str) -> list[tuple]:
    """Prefect's own record, read straight from its SQLite file (read-only, while it runs)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return con.execute(sql).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []


def unfinished(db: Path) -> list[tuple]:
    return query(db, "SELECT 'flow', name, state_type FROM flow_run WHERE state_type IN ('RUNNING', 'PENDING') "
                     "UNION ALL SELECT 'task', name, state_type FROM task_run WHERE state_type IN ('RUNNING', 'PENDING')")


def assert_one_line(stderr: str, signal_name: str) -> None:
    lines = stderr.strip().splitlines()
    assert lines[-1] == (f"stopped by {signal_name}: this command's flow runs are marked Crashed in Prefect; "
                         "run it again to resume"), stderr
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    # Anything before it is what the flows logged while they ran (the ingest's quarantine warnings).
    assert all("| WARNING |" in line for line in lines[:-1]), stderr


def test_ctrl_c_stops_the_demo(tmp_path, prefect_home):
    demo = Command(["demo"], tmp_path / "home", prefect_home)
    try:
        demo.wait_for_a_running_flow()
        os.killpg(demo.proc.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C
        assert demo.stopped_within(STOP_WITHIN_S) == 130
        assert_one_line(demo.stderr, "SIGINT")
        assert unfinished(demo.db) == []
        assert query(demo.db, "SELECT count(*) FROM flow_run WHERE state_type = 'CRASHED'")[0][0] >= 1
        assert demo.session_gone(), "the local Prefect API outlived the command"
    finally:
        demo.kill_all()


def test_sigterm_stops_a_flow_command(tmp_path, prefect_home):
    ingest = Command(["ingest", "--timeframe", "1m", "--symbol", "SPY", "--start", "2011-01-03", "--end", "2011-03-31"],
                     tmp_path / "home", prefect_home)
    try:
        ingest.wait_for_a_running_flow()
        ingest.proc.send_signal(signal.SIGTERM)  # what a supervisor sends, to the command alone
        assert ingest.stopped_within(STOP_WITHIN_S) == 130
        assert_one_line(ingest.stderr, "SIGTERM")
        assert unfinished(ingest.db) == []
        assert ingest.session_gone(), "the local Prefect API outlived the command"
    finally:
        ingest.kill_all()
