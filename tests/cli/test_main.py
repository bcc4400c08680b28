"""`tapeflow clock` and `tapeflow ingest` from the command line."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tapeflow.cli.main import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("at", "phase", "next_open"),
    [
        ("2026-11-27T12:59:00-05:00", "regular", "Mon 2026-11-30 09:30 EST (14:30 UTC)"),  # the half day
        ("2026-11-27T13:00:00-05:00", "after_hours", "Mon 2026-11-30 09:30 EST (14:30 UTC)"),
        ("2026-11-26T10:00:00-05:00", "closed", "Fri 2026-11-27 09:30 EST (14:30 UTC)"),  # Thanksgiving
        ("2026-03-09T08:00:00-04:00", "pre_market", "Mon 2026-03-09 09:30 EDT (13:30 UTC)"),
    ],
)
def test_clock(at, phase, next_open):
    result = runner.invoke(app, ["clock", "--at", at])
    assert result.exit_code == 0, result.output
    assert f": {phase}\n" in result.stdout
    assert f"next regular open: {next_open}" in result.stdout


def test_clock_refuses_a_naive_instant():
    result = runner.invoke(app, ["clock", "--at", "2026-11-27T12:00:00"])
    assert result.exit_code == 2
    assert "needs a UTC offset" in result.stderr


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_ingest_command_runs_the_flow(warehouse):
    args = ["ingest", "--timeframe", "1d", "--symbol", "AAPL", "--symbol", "MSFT", "--start", "2010-08-16", "--end", "2010-08-20"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "ingest-bars replay 1d" in result.stdout
    with warehouse.read() as con:
        counts = con.execute("SELECT symbol, count(*) FROM bars GROUP BY 1 ORDER BY 1").fetchall()
        assert counts == [("AAPL", 4), ("MSFT", 4)]  # the panel lacks 2010-08-18 (data/NOTICE)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_snapshot_command_skips_a_holiday_and_says_why(warehouse):
    with warehouse.write():  # a warehouse exists: the scanner has something to rank on a session day
        pass
    result = runner.invoke(app, ["snapshot", "--source", "scanner", "--as-of", "2025-12-25T10:00:00-05:00"])
    assert result.exit_code == 0, result.output
    assert "2025-12-25 is not an XNYS session" in result.stdout


@pytest.mark.parametrize("argv, message", [
    (["trade", "nope"], "unknown strategy 'nope'; known: "),
    (["trade", "opening_range", "-p", "range_minutes=0"], "range_minutes must be within 1..120, got 0"),
    (["backtest", "sma_cross", "-p", "slow=2"], "slow must be within 3..500, got 2"),
    (["check-lookahead", "nope"], "unknown strategy 'nope'; known: "),
])
def test_a_wrong_strategy_or_parameter_is_refused_before_prefect_starts(argv, message, tapeflow_home):
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split())
