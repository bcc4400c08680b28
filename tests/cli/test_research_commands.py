"""`tapeflow walk-forward` and `tapeflow perturb`: a wrong argument is refused in one line
before Prefect is even imported; on a small warehouse each runs its flow, prints its tables
within 80 columns and records its runs."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from tapeflow.cli.main import app
from tapeflow.cli.research import fold_table, runs_table, sensitivity_table
from tapeflow.config import PROJECT_DATA
from tapeflow.ingest.bars import check_bars
from tapeflow.ingest.store import BARS, store_batch
from tapeflow.model import Timeframe
from tapeflow.progress import Step, listening
from tapeflow.sources import Window
from tapeflow.sources.replay import ReplaySource
from warehouse import Warehouse

TAPEFLOW = Path(sys.executable).parent / "tapeflow"
SYMBOLS = ["AAPL", "MSFT"]
runner = CliRunner()


def store_panel(warehouse: Warehouse, symbols: list[str], first: date, last: date) -> None:
    """The bundled panel's daily bars of `symbols`, checked and stored as an ingest stores them."""
    checked = check_bars(ReplaySource(PROJECT_DATA).bars(symbols, Timeframe.DAY, Window.days(first, last)))
    store_batch(warehouse, BARS, checked.good, checked.rejected, run_id="test", source="replay", feed="bars:1d",
                params={}, started_at=datetime.now(UTC))


@pytest.fixture(scope="module")
def short_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TAPEFLOW_HOME whose warehouse holds two months of AAPL: 41 sessions."""
    home = tmp_path_factory.mktemp("short") / "home"
    store_panel(Warehouse(home / "tapeflow.duckdb"), ["AAPL"], date(2010, 6, 1), date(2010, 7, 30))
    return home


@pytest.mark.parametrize(("argv", "line"), [
    (["walk-forward", "nope"], "unknown strategy 'nope'; known: "),
    (["walk-forward", "sma_cross", "--train", "120", "--test", "40"],
     "--train/--test: the 41 stored sessions of 2009-08-21..2010-08-20 cannot hold one fold of 120 train + 40 test"),
    (["perturb", "sma_cross", "--pct", "1.5"], "--pct must be a fraction between 0 and 1, got 1.5"),
    (["perturb", "sma_cross", "--universe", "sp500-2010"], "--universe: no universe 'sp500-2010' in the warehouse"),
])
def test_the_command_refuses_in_one_line_without_importing_prefect(argv, line, short_home, tmp_path):
    prefect_home = tmp_path / "prefect"  # created by anything that imports Prefect, or readies it to start
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAPEFLOW_", "PREFECT_"))}
    env.update(TAPEFLOW_HOME=str(short_home), PREFECT_HOME=str(prefect_home))
    result = subprocess.run([str(TAPEFLOW), *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and line in result.stderr, result.stderr
    assert not prefect_home.exists()


@pytest.mark.parametrize(("argv", "line"), [
    (["walk-forward", "sma_cross", "-p", "slow=2,30"], "--param: slow must be within 3..500, got 2: e.g. -p slow=24,30,36"),
    (["walk-forward", "sma_cross", "-p", "fast=8,ten"], "--param fast takes numbers separated by commas, got '8,ten'"),
    (["walk-forward", "sma_cross", "-p", "fast=2,3,4,5,6,7,8,9", "-p", "slow=20,21,22,23,24,25,26,27,28"],
     "--param: the grid has 72 combinations and a walk-forward searches at most 64: name fewer values"),
    (["walk-forward", "sma_cross", "-p", "fast=40", "-p", "slow=30"], "--param: the strategy refused every combination "
                                                                       "of the grid (fast=40, slow=30 refused"),
    (["walk-forward", "sma_cross", "--test", "0"], "--test must be a number of sessions >= 1, got 0"),
    (["walk-forward", "sma_cross", "--costs", "cheap"], "--costs: unknown cost preset 'cheap'"),
    (["walk-forward", "sma_cross", "--symbol", "ZZZ"], "the warehouse holds no 1d bars of ZZZ on 2009-08-21..2010-08-20"),
    (["walk-forward", "sma_cross", "--start", "2001-01-02", "--end", "2001-12-31"],
     "the warehouse holds no 1d bars on 2001-01-02..2001-12-31: ingest them first, e.g. tapeflow ingest --timeframe 1d"),
    (["walk-forward", "sma_cross", "--objective", "sharp"], "--objective must be a metric ("),
    (["perturb", "sma_cross", "-p", "fast=40"], "fast (40) must be shorter than slow (30)"),
    (["perturb", "sma_cross", "--start", "2010-08-20", "--end", "2010-01-04"], "--start must be on or before --end"),
    (["perturb", "sma_cross", "--grid-steps", "-1"], "--grid-steps must be a whole number 0..10, got -1"),
    (["perturb", "sma_cross", "--cash", "0"], "--cash must be a finite amount > 0, got 0.0"),
    (["perturb", "news_catalyst"], "news_catalyst trades on scored headlines and no sentiment model is current"),
])
def test_every_wrong_argument_is_refused_before_prefect_starts(argv, line, short_home, tmp_path, monkeypatch):
    prefect_home = tmp_path / "prefect"  # where Prefect would be readied to start
    monkeypatch.setenv("TAPEFLOW_HOME", str(short_home))
    monkeypatch.setenv("PREFECT_HOME", str(prefect_home))
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and line in result.stderr, result.stderr
    assert not prefect_home.exists()


@pytest.fixture
def two_names(warehouse: Warehouse) -> Warehouse:
    store_panel(warehouse, SYMBOLS, date(2009, 8, 21), date(2010, 8, 20))
    return warehouse


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_walk_forward_prints_its_folds_and_records_them(two_names):
    args = ["walk-forward", "sma_cross", "-p", "fast=5,10", "-p", "slow=20,30", "-p", "qty=0", "--train", "100",
            "--test", "60", "--costs", "none"]
    steps: list[Step] = []
    with listening(steps.append):  # the folds run in the task runner's threads; the flow tells each as it ends
        result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    told = [(s.done, s.total, s.finished) for s in steps if s.work == "walk-forward sma_cross"]
    assert told == [(0, 2, False), (1, 2, False), (2, 2, False), (2, 2, True)]
    lines = result.stdout.splitlines()
    assert "2 folds (rolling): each chooses on 100 sessions, is judged on the 60 after" in lines
    assert "grid: fast 5, 10; slow 20, 30; held qty=0 (4 combinations), by sharpe" in lines
    folds = [line for line in lines if line.startswith("│    ")]
    assert [row.split("│")[1].strip() for row in folds] == ["0", "1"]
    assert all("fast=" in row and "slow=" in row and "qty" not in row for row in folds)  # only what the grid varied
    with two_names.read() as con:
        runs = con.execute("SELECT run_id, kind, fold, report_path FROM backtest_runs ORDER BY kind, fold").fetchall()
    assert [(kind, fold) for _, kind, fold, _ in runs] == [("walk_forward", None), ("walk_forward_fold", 0),
                                                           ("walk_forward_fold", 1)]
    run_id, report = runs[0][0], runs[0][3]
    assert f"run {run_id} recorded, with its 2 folds; report:" in lines
    assert lines[-1] == report and Path(report).exists()  # the path alone on the last line


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_perturb_prints_every_run_and_the_verdict_and_records_it(two_names):
    steps: list[Step] = []
    with listening(steps.append):
        result = runner.invoke(app, ["perturb", "sma_cross", "-p", "fast=10", "-p", "slow=30", "--grid-steps", "1",
                                     "--costs", "none"])
    assert result.exit_code == 0, result.output
    finished = {s.work: s for s in steps if s.finished}
    # The point, its 4 neighbours (fast, slow ±20%) and the grid's 4 corners: the grid's edges are the neighbours.
    assert finished["perturb sma_cross"].done == finished["perturb sma_cross"].total == 9
    assert "backtest sma_cross" in finished  # the point again, recorded with its verdict
    with two_names.read() as con:
        run_id, kind, verdict, runs = con.execute(
            "SELECT run_id, kind, metrics->>'verdict', json_array_length(metrics->'runs') FROM backtest_runs").fetchone()
    assert kind == "perturbation"
    assert f"verdict: {verdict}: " in result.stdout
    assert f"every run ({runs}): what moved from the point" in result.stdout
    assert result.stdout.splitlines()[-1] == f"recorded as run {run_id}"


def test_the_tables_fit_80_columns_with_every_number_whole():
    folds = [{"fold": i, "test_first": date(2009, 12, 30), "test_last": date(2010, 2, 26),
              "params": {"fast": 12, "slow": 36, "qty": 0}, "in_sample_calmar": 12.3456, "oos_calmar": -10.25,
              "oos_total_return": -0.1234, "oos_trades": 17} for i in range(3)]
    sensitivities = [{"param": "exit_minutes_before_close", "low_value": 4, "point_value": 5, "high_value": 6,
                      "objective_low": -10.125, "objective_point": 12.5, "objective_high": None, "worst_ratio": -0.81}]
    runs = [{"kind": kind, "fast": fast, "slow": slow, "qty": 0, "objective": -10.125, "total_return": -0.5,
             "passes": False} for kind, fast, slow in (("point", 10, 30), ("-pct", 8, 30), ("grid", 12, 36))]
    console = Console(width=80, record=True)
    for table in (fold_table(folds, "calmar", ["fast", "slow"]), sensitivity_table(sensitivities, "calmar", 0.2),
                  runs_table(runs, {"fast": 10, "slow": 30, "qty": 0}, "calmar", 0.2)):
        console.print(table)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for whole in ("2009-12-30..2010-02-26", "fast=12, slow=36", "12.346", "-10.250", "-0.123", "exit_minutes_before_close",
                  "4 / 5 / 6", "-10.125", "-0.810", "fast=8"):
        assert whole in text, whole
