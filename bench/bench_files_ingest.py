"""`ingest --files` throughput on generated minute bars in Polygon's flat-file layout (Parquet
and CSV.gz), end to end (read + check + upsert), against DuckDB's own `INSERT OR REPLACE` of
the same file into a table with the same primary key, in the same process.

    .venv/bin/python bench/bench_files_ingest.py [--symbols 1000] [--bars 3000] [--runs 3]
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from tapeflow.ingest.files import ingest_files
from tapeflow.model import Timeframe
from warehouse import Warehouse
from warehouse.migrate import apply_migrations

START_NS = 1_704_205_800_000_000_000  # 2024-01-02 14:30 UTC


def generate(symbols: int, bars: int) -> pl.DataFrame:
    """`symbols` x `bars` consecutive minute bars, valid, in Polygon's columns."""
    rng = np.random.default_rng(7)
    n = symbols * bars
    close = 20 + rng.random(n) * 80
    open_ = close * (1 + (rng.random(n) - 0.5) * 0.01)
    spread = rng.random(n) * 0.2
    return pl.DataFrame({
        "ticker": np.repeat([f"S{i:04d}" for i in range(symbols)], bars),
        "volume": rng.integers(100, 100_000, n).astype(float),
        "open": open_,
        "close": close,
        "high": np.maximum(open_, close) + spread,
        "low": np.minimum(open_, close) - spread,
        "window_start": START_NS + np.tile(np.arange(bars, dtype=np.int64), symbols) * 60_000_000_000,
        "transactions": rng.integers(1, 500, n),
    })


def duckdb_insert_or_replace(path: Path, db: Path) -> int:
    """DuckDB alone: read the file and INSERT OR REPLACE into `bars` (same primary key), no checks."""
    con = duckdb.connect(str(db))
    apply_migrations(con)
    reader = "read_parquet" if path.suffix == ".parquet" else "read_csv"
    con.execute(
        f"""INSERT OR REPLACE INTO bars SELECT ticker, '1m', make_timestamptz(window_start // 1000),
            make_timestamptz(window_start // 1000 + 60000000), open, high, low, close, volume, NULL,
            transactions, 'raw', 'files', now() FROM {reader}('{path}')"""
    )
    (stored,) = con.execute("SELECT count(*) FROM bars").fetchone()
    con.close()
    return stored


def tapeflow_files(path: Path, db: Path) -> int:
    return ingest_files(Warehouse(db), [path], Timeframe.MINUTE, run_id="bench").stored


def timed(fn: Callable[[Path, Path], int], path: Path, runs: int) -> tuple[float, int]:
    times, stored = [], 0
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            stored = fn(path, Path(tmp) / "bench.duckdb")
            times.append(time.perf_counter() - start)
    return statistics.median(times), stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=1_000)
    parser.add_argument("--bars", type=int, default=3_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    frame = generate(args.symbols, args.bars)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"duckdb {duckdb.__version__}, polars {pl.__version__}")
    print(f"{frame.height:,} minute bars; median of {args.runs} runs, fresh DuckDB file each run")
    line = "{:<40} {:7.3f} s {:>11,.0f} rows/s"
    with tempfile.TemporaryDirectory() as tmp:
        parquet, csv_gz = Path(tmp) / "bars.parquet", Path(tmp) / "bars.csv.gz"
        frame.write_parquet(parquet)
        with gzip.open(csv_gz, "wb", compresslevel=1) as out:
            frame.write_csv(out)
        for path in (parquet, csv_gz):
            ours, ours_stored = timed(tapeflow_files, path, args.runs)
            peer, peer_stored = timed(duckdb_insert_or_replace, path, args.runs)
            assert ours_stored == peer_stored == frame.height, (ours_stored, peer_stored)  # the same work
            kind = "Parquet" if path.suffix == ".parquet" else "CSV.gz"
            print(line.format(f"tapeflow ingest --files ({kind})", ours, frame.height / ours))
            print(line.format(f"duckdb INSERT OR REPLACE ({kind})", peer, frame.height / peer))
            print(f"ratio tapeflow / duckdb ({kind}): {peer / ours:.2f}x")


if __name__ == "__main__":
    main()
