"""Start-up: `tapeflow sql`, `tapeflow backtest --bars` and `tapeflow --help` as fresh processes
(what a user times), against the same command lines through the whole CLI
(`python -m tapeflow.cli.main`, every command module loaded) and against Python's own start.

Each run times every case once, in turn, so background load falls on all of them alike; the
table shows the median of the runs. `--tree DIR` times the same cases on another source tree
(e.g. an older commit's `tapeflow/`, `warehouse/` and `strategies/`), put first on PYTHONPATH.

    .venv/bin/python bench/bench_startup.py --runs 5 [--tree OLD --tree NEW]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import polars as pl

from tapeflow.config import PROJECT_DATA
from tapeflow.sources import Window
from tapeflow.sources.replay import ReplaySource
from warehouse import Warehouse

TAPEFLOW = str(Path(sys.executable).parent / "tapeflow")  # the console script, as a user runs it
SYMBOLS = ["AAPL", "MSFT", "XOM"]


def bars_file(folder: Path) -> Path:
    """A year of three symbols' daily bars, as a user's Parquet file holds them."""
    bars = ReplaySource(PROJECT_DATA).bars(SYMBOLS, "1d", Window.days(date(2009, 8, 21), date(2010, 8, 20)))
    path = folder / "bars.parquet"
    bars.filter(pl.col("problem").is_null()).select("symbol", "ts", "open", "high", "low", "close", "volume").write_parquet(path)
    return path


def cases(bars: Path) -> dict[str, list[str]]:
    """Each case's command line: through `tapeflow` and through the whole CLI."""
    lines = {"sql": ["sql", "SELECT 1"], "backtest --bars": ["backtest", "sma_cross", "--bars", str(bars)],
             "--help": ["--help"]}
    found = {f"tapeflow {name}": [TAPEFLOW, *args] for name, args in lines.items()}
    found |= {f"whole CLI {name}": [sys.executable, "-m", "tapeflow.cli.main", *args] for name, args in lines.items()}
    return found | {"python -c pass": [sys.executable, "-c", "pass"]}


def timed(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one fresh process from start to exit; a failure stops the benchmark.
    CPU time (user + system) is what a busy machine inflates least."""
    start, cpu = time.perf_counter(), _children_cpu()
    # Run outside the project: `python -m` puts its working directory first on sys.path, ahead of --tree.
    ran = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - start, _children_cpu() - cpu
    if ran.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({ran.returncode}): {ran.stderr.strip()[-400:]}")
    return took


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tree", action="append", default=[], help="a source tree to time (repeatable); default this one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tapeflow-startup-") as tmp:
        folder = Path(tmp)
        (folder / "home").mkdir()
        with Warehouse(folder / "home" / "tapeflow.duckdb").write():  # migrated and empty: what sql opens
            pass
        env = {**os.environ, "TAPEFLOW_HOME": str(folder / "home"), "TAPEFLOW_DATA_DIR": str(PROJECT_DATA),
               "COLUMNS": "100"}
        trees = args.tree or [""]
        runs: dict[tuple[str, str], list[tuple[float, float]]] = {(tree, name): [] for tree in trees for name in cases(bars_file(folder))}
        for _ in range(args.runs):
            for tree in trees:
                tree_env = {**env, "PYTHONPATH": tree} if tree else env
                for name, command in cases(folder / "bars.parquet").items():
                    runs[tree, name].append(timed(command, tree_env, folder))
    print(f"median of {args.runs} fresh processes each, seconds: wall, CPU (user + system)")
    for tree in trees:
        print(f"\n{tree or 'this tree'}")
        median = {name: [statistics.median(t[i] for t in times) for i in (0, 1)]
                  for (where, name), times in runs.items() if where == tree}
        for name, (wall, cpu) in median.items():
            print(f"  {name:34s} {wall:6.3f} {cpu:6.3f}")
        for name in ("sql", "backtest --bars", "--help"):
            whole, alone = median[f"whole CLI {name}"], median[f"tapeflow {name}"]
            print(f"  whole CLI / tapeflow, {name:18s} {whole[0] / alone[0]:5.2f}x {whole[1] / alone[1]:5.2f}x")


if __name__ == "__main__":
    main()
