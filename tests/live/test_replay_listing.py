"""Replayed days are listed by `tapeflow sessions` beside the warehouse's own sessions, and
`tapeflow paper-gap` finds them in their replay files; both fit an 80-column terminal without
cutting an id or a path. A replay still running holds its file: the listing passes it by."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tapeflow.cli.main import app
from tapeflow.config import load_settings
from tapeflow.live.launch import replay_session
from tapeflow.live.session import SessionRules
from tests.session_kit import DAY
from warehouse import Warehouse, open_warehouse

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def fits(output: str, whole: list[str]) -> None:
    """Every line within 80 columns, except those that are one of `whole` (an id or a path
    printed on its own line, uncut); nothing ends in an ellipsis."""
    assert "…" not in output, output
    for text in output.splitlines():
        assert len(text) <= 80 or text.strip() in whole, text


@pytest.mark.usefixtures("columns_80")
def test_a_replayed_session_is_listed_and_its_gap_measured_within_80_columns(afternoon):
    settings = load_settings()
    main = open_warehouse(settings)
    with main.write() as con:  # a paper day of the warehouse's own, after the replayed one
        con.execute("INSERT INTO trading_sessions (session_id, strategy, params, params_hash, broker, mode, "
                    "session_date, status, started_at) VALUES ('opening_range:abc:alpaca:paper:2026-12-04', "
                    "'opening_range', '{}', 'abc', 'alpaca', 'paper', '2026-12-04', 'running', ?)",
                    [datetime(2026, 12, 4, 14, 25, tzinfo=UTC)])
    # A cycle of five minutes: the day replays in seconds, its entry goes out at 12:35.
    [report] = replay_session(settings, main, "afternoon", DAY, rules=SessionRules(cycle_s=300)).run()
    sid = report.session_id

    listed = runner.invoke(app, ["sessions"])
    assert listed.exit_code == 0, listed.output
    lines = [text.strip() for text in listed.stdout.splitlines()]
    assert lines[1:7] == ["opening_range:abc:alpaca:paper:2026-12-04", "warehouse: running, not reconciled; since 09:25",
                          sid, "replay: finished, reconciled; 2 orders, 2 fills, realized P&L 38; 09:25-13:00",
                          str(afternoon), "2 sessions"]
    fits(listed.stdout, [sid, str(afternoon)])

    as_json = runner.invoke(app, ["sessions", "--format", "json"])
    assert [(r["where"], r["path"], r["session_id"]) for r in json.loads(as_json.stdout)] == [
        ("warehouse", str(main.path), "opening_range:abc:alpaca:paper:2026-12-04"), ("replay", str(afternoon), sid)]

    gap = runner.invoke(app, ["paper-gap", sid])
    assert gap.exit_code == 0, gap.output
    assert f"paper gap of {sid}" in gap.stdout.splitlines() and f"rows in: {afternoon}" in gap.stdout.splitlines()
    assert "│ 12:31      │ 100 @ 10   │ 100 @ 10   │" in gap.stdout  # the entry: decided, filled on both sides
    assert "│ enter ACME │ 12:35      │ 12:31      │" in gap.stdout  # paper sent it at the next cycle
    assert "│ gap                     │ 0 " in gap.stdout
    fits(gap.stdout, [f"paper gap of {sid}", f"rows in: {afternoon}"])
    with Warehouse(afternoon).read() as con:  # stored beside the session, in the replay's file
        assert con.execute("SELECT session_id, gap FROM paper_gaps").fetchall() == [(sid, 0.0)]

    unknown = runner.invoke(app, ["paper-gap", "afternoon:nope:sim:paper:2023-11-24"])
    assert unknown.exit_code == 2 and unknown.stdout == "" and unknown.stderr.count("\n") == 1
    assert "no trading session 'afternoon:nope:sim:paper:2023-11-24'" in unknown.stderr
    assert "`tapeflow sessions` lists them" in unknown.stderr


def test_a_replay_file_in_use_is_passed_by_not_waited_for(settings, warehouse):
    busy = settings.home.resolve() / "replays" / "afternoon-2023-11-24.duckdb"
    with Warehouse(busy).write():
        pass  # a replay file, with its tables
    hold = ("import sys; from warehouse import Warehouse\nwith Warehouse(sys.argv[1]).held():\n"
            "    print('held', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(busy)], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        listed = runner.invoke(app, ["sessions"])
    finally:
        holder.communicate("", timeout=30)
    assert listed.exit_code == 0, listed.output
    assert listed.stderr == f"not read (in use by another process, a replay still running?): {busy}\n"
    assert "no trading sessions in the files that could be read" in listed.stdout
