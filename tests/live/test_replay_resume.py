"""A replay killed in its closing step resumes from its file through `tapeflow trade
--replay-day` and ends as an uncrashed (`--fresh`) replay does; a second run of a replay that
is running is refused at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tapeflow.cli.main import app
from tapeflow.config import load_settings
from tapeflow.live.launch import ReplayRunning, replay_session
from tests.session_kit import DAY
from warehouse import Warehouse, open_warehouse

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def fills(path: Path) -> list[tuple]:
    with Warehouse(path).read() as con:
        return con.execute("SELECT strftime(ts AT TIME ZONE 'America/New_York', '%H:%M'), side, qty, price, commission "
                           "FROM fills ORDER BY ts").fetchall()


def test_a_second_run_of_a_running_replay_is_refused_at_once(afternoon):
    settings = load_settings()
    first = replay_session(settings, open_warehouse(settings), "afternoon", DAY)
    try:
        with pytest.raises(ReplayRunning, match=f"{afternoon.name} is being replayed by process {os.getpid()}"):
            replay_session(settings, open_warehouse(settings), "afternoon", DAY, fresh=True)
        result = runner.invoke(app, ["trade", "afternoon", "--replay-day", DAY.isoformat()])
        assert result.exit_code == 2 and "is being replayed by process" in result.stderr
        assert "Traceback" not in result.output
    finally:
        first.release()
    assert afternoon.exists()  # the refused runs left the running one's file alone


@pytest.mark.usefixtures("prefect_harness", "columns_80")
def test_a_replay_killed_in_its_closing_step_resumes_and_ends_flat(afternoon):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    died = subprocess.run([sys.executable, "-m", "tests.crash_kit", "replay", DAY.isoformat()], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert died.returncode == -9, died.stderr[-2000:]
    assert [f[1] for f in fills(afternoon)] == ["buy"]  # the sell is working at the simulated broker, unfilled

    resumed = runner.invoke(app, ["trade", "afternoon", "--replay-day", DAY.isoformat()])
    assert resumed.exit_code == 0, resumed.output
    assert "recovered: kept the closing sell" in resumed.output and "recovered: took over" in resumed.output
    crashed_then_resumed = fills(afternoon)

    fresh = runner.invoke(app, ["trade", "afternoon", "--replay-day", DAY.isoformat(), "--fresh"])
    assert fresh.exit_code == 0, fresh.output
    assert "recovered" not in fresh.output
    # Within 80 columns, the session's id and its file each whole on a line of their own.
    sid = next(text for text in fresh.stdout.splitlines() if text.startswith("session: ")).removeprefix("session: ")
    whole = [f"session: {sid}", f"rows in: {afternoon}", f"against its backtest: tapeflow paper-gap {sid}"]
    assert sid.startswith("afternoon:") and sid.endswith(":sim:paper:2023-11-24")
    assert set(whole) <= set(fresh.stdout.splitlines()) and "…" not in fresh.stdout
    assert all(len(text) <= 80 for text in fresh.stdout.splitlines() if text not in whole)
    assert crashed_then_resumed == fills(afternoon)
    assert [(f[0], f[1]) for f in crashed_then_resumed] == [("12:31", "buy"), ("12:55", "sell")]
    with Warehouse(afternoon).read() as con:
        assert con.execute("SELECT count(*) FROM sim_orders").fetchall() == [(2,)]  # no stop: none asked
