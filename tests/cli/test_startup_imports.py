"""`tapeflow sql` and `tapeflow backtest --bars` start on their own modules: each run for real in
a fresh process, neither loads Prefect, torch, transformers nor the rest of the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from tapeflow.config import PROJECT_DATA
from tapeflow.sources import Window
from tapeflow.sources.replay import ReplaySource
from warehouse import Warehouse

# Runs `tapeflow ARGS...` as the console script does, then writes its exit status and every
# module the process loaded to the file named first.
PROBE = ("import json, sys\n"
         "loaded, sys.argv = sys.argv[1], ['tapeflow', *sys.argv[2:]]\n"
         "from tapeflow.cli.entry import main\n"
         "code = 0\n"
         "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
         "with open(loaded, 'w') as fh:\n    json.dump({'code': code, 'modules': sorted(sys.modules)}, fh)\n")
NEVER = {"prefect", "torch", "transformers", "flows", "mcp", "tapeflow.cli.main"}


def started(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """The finished process of `tapeflow ARGS` and the modules it loaded."""
    loaded = tmp_path / "loaded.json"
    ran = subprocess.run([sys.executable, "-c", PROBE, str(loaded), *args], capture_output=True, text=True, timeout=120)
    assert loaded.exists(), ran.stderr
    record = json.loads(loaded.read_text())
    assert record["code"] == 0, ran.stderr
    return ran, set(record["modules"])


def heavy(modules: set[str], names: set[str]) -> set[str]:
    """Which of `names` (packages or modules) were loaded."""
    return {m for m in modules if m in names or m.split(".")[0] in names}


def test_sql_loads_neither_prefect_nor_the_engine_nor_the_rest_of_the_cli(tapeflow_home, warehouse: Warehouse, tmp_path):
    with warehouse.write():  # an empty warehouse, migrated
        pass
    ran, modules = started(tmp_path, "sql", "SELECT 41 + 1 AS answer")
    assert "42" in ran.stdout
    assert heavy(modules, NEVER | {"strategies", "exchange_calendars", "pandas", "matplotlib"}) == set()


def test_the_probe_sees_what_the_whole_cli_loads(tapeflow_home, tmp_path):
    """The control: a command that is not started alone loads the whole CLI, and the probe says so."""
    ran, modules = started(tmp_path, "strategies", "--format", "csv")
    assert "sma_cross" in ran.stdout
    assert {"tapeflow.cli.main", "strategies"} <= heavy(modules, {"tapeflow.cli.main", "strategies"})


@pytest.mark.slow  # the engine's calendar (pandas) and the report's charts (matplotlib): about 3 s
def test_a_bars_file_backtest_loads_neither_prefect_nor_torch_nor_the_rest_of_the_cli(tapeflow_home, tmp_path):
    bars = ReplaySource(PROJECT_DATA).bars(["AAPL"], "1d", Window.days(date(2009, 8, 21), date(2010, 8, 20)))
    path = tmp_path / "bars.parquet"
    bars.filter(pl.col("problem").is_null()).select("symbol", "ts", "open", "high", "low", "close", "volume").write_parquet(path)
    ran, modules = started(tmp_path, "backtest", "sma_cross", "--bars", str(path))
    assert "final equity" in ran.stdout and "report:" in ran.stdout
    assert heavy(modules, NEVER) == set()
