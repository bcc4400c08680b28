"""A newcomer's ordinary mistakes, run as the real `tapeflow` command: each answers in one line
that names the problem, exits 2, prints no traceback and no DuckDB leak report, and starts no
Prefect (its home under TAPEFLOW_HOME is never created)."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

TAPEFLOW = str(Path(sys.executable).with_name("tapeflow"))

# (command line, words the one line must hold)
MISTAKES: list[tuple[list[str], str]] = [
    (["backtest", "sma_crossover"], "unknown strategy 'sma_crossover'"),
    (["backtest", "sma_cross", "-p", "fast=50", "-p", "slow=10"], "fast (50) must be shorter than slow (10)"),
    (["backtest", "sma_cross", "-p", "fast=abc"], "--param fast takes a number"),
    (["backtest", "sma_cross", "-p", "fats=10"], "fats"),
    (["backtest", "sma_cross", "--costs", "cheap"], "unknown cost preset 'cheap'"),
    (["backtest", "sma_cross", "--start", "2010-13-01"], "--start"),
    (["backtest", "sma_cross", "--start", "2010-08-20", "--end", "2010-01-04"], "--start must be on or before --end"),
    (["backtest", "sma_cross", "--cash", "-5"], "--cash must be"),
    (["backtest", "sma_cross"], "no warehouse at"),  # before `tapeflow demo` made one
    (["snapshot", "--source", "scanner"], "no warehouse at"),
    (["backtest"], "Missing argument"),
    (["backtest", "sma_cross", "--cost", "none"], "No such option: --cost"),
    (["check-lookahead", "nope"], "unknown strategy 'nope'"),
    (["trade", "no_such_strategy", "--replay-day", "2011-03-03"], "unknown strategy 'no_such_strategy'"),
    (["ingest", "--source", "alpaca"], "TAPEFLOW_ALPACA_API_KEY"),
    (["ingest", "--source", "yahoo"], "unknown market-data source 'yahoo'"),
    (["ingest", "--timeframe", "5m"], "--timeframe"),
    (["snapshot", "--source", "bullalert"], "TAPEFLOW_BULLALERT_API_KEY"),
    (["snapshot", "--as-of", "2010-05-07T09:00:00"], "--as-of needs a UTC offset"),
    (["actions", "ingest", "--source", "polygon"], "TAPEFLOW_POLYGON_API_KEY"),
    (["universe", "show", "nope"], "no universe 'nope'"),
    (["clock", "--at", "2026-11-27T12:00"], "--at needs a UTC offset"),
    (["strategies", "--format", "xml"], "--format"),
    (["nope"], "No such command 'nope'"),
    (["worker", "compute"], "set PREFECT_API_URL"),
    (["worker", "gpu"], "'gpu' is not one of 'warehouse', 'compute'"),
    (["serve", "--database", "mysql"], "'mysql' is not one of 'sqlite', 'postgres'"),
]


def _run(args: list[str], home: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAPEFLOW_", "PREFECT_"))}
    env.update(TAPEFLOW_HOME=str(home), COLUMNS="80", NO_COLOR="1", **settings)
    return subprocess.run([TAPEFLOW, *args], env=env, cwd=home.parent, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[subprocess.CompletedProcess[str], Path]]:
    """Every mistake run once, four at a time, each with a TAPEFLOW_HOME of its own."""
    root = tmp_path_factory.mktemp("mistakes")
    homes = [root / f"case{i}" / "home" for i in range(len(MISTAKES))]
    for home in homes:
        home.mkdir(parents=True)
    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(_run, [args for args, _ in MISTAKES], homes))
    return {" ".join(args): (result, home) for (args, _), result, home in zip(MISTAKES, done, homes)}


@pytest.mark.parametrize("args, says", MISTAKES, ids=[" ".join(a) for a, _ in MISTAKES])
def test_a_mistake_gets_one_line_and_exit_2_without_prefect(answers, args, says):
    result, home = answers[" ".join(args)]
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output and "leaked" not in output, output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], result.stderr
    assert not (home / "prefect").exists(), "Prefect was started for a mistake it need not see"


def test_an_unexpected_failure_is_one_line_and_its_trace_goes_to_the_log(tmp_path):
    """A failure no check foresaw (here: the warehouse path is a directory DuckDB cannot open)
    ends in one line naming the log; --debug shows the trace instead."""
    home = tmp_path / "home"
    (home / "tapeflow.duckdb").mkdir(parents=True)
    result = _run(["actions", "list"], home)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "--debug" in result.stderr and str(home / "logs" / "cli.log") in result.stderr
    assert "Traceback" in (home / "logs" / "cli.log").read_text()
    debug = _run(["actions", "list", "--debug"], home)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_a_bad_setting_is_one_line_naming_the_variable_and_its_values(tmp_path):
    result = _run(["nlp", "score"], tmp_path / "home", TAPEFLOW_SENTIMENT_RUNTIME="tensorrt")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("TAPEFLOW_SENTIMENT_RUNTIME=tensorrt: ") and "'onnx'" in line, line
