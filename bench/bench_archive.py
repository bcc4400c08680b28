"""The Parquet bar archive: one month of minute bars read through `bars_all` (`bars_between`, as
a backtest reads them) while the month is in the DuckDB table and after it moved to the archive;
a year of daily bars read (`daily_bars_until`, as the scanner reads them) beside the minute
months, in the table and archived; and the archive run itself.

    .venv/bin/python bench/bench_archive.py [--symbols 200] [--days 21] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from tapeflow.model import Timeframe
from warehouse import Warehouse
from warehouse.archive import archive_bars
from warehouse.reads import bars_between, daily_bars_until

MONTHS = ("2024-01", "2024-02", "2024-03")
READ_MONTH = "2024-02"


def fill(warehouse: Warehouse, symbols: int, days: int) -> int:
    """`symbols` names x 390 minute bars on the first `days` weekdays-ish of each month, and a
    year of their daily bars; returns the minute rows stored."""
    with warehouse.write() as con:
        for month in MONTHS:
            con.execute(
                f"""INSERT INTO bars SELECT 'S' || lpad(s::VARCHAR, 4, '0'), '1m', t, t + INTERVAL 1 MINUTE,
                    20 + s % 50 + m / 1000, 21 + s % 50 + m / 1000, 19 + s % 50 + m / 1000, 20.5 + s % 50 + m / 1000,
                    1000 + m, NULL, NULL, 'raw', 'bench', now()
                    FROM range({symbols}) a(s), range({days}) d(day), range(390) b(m),
                    LATERAL (SELECT TIMESTAMPTZ '{month}-02 14:30:00+00' + to_days(day::INT) + to_minutes(m::BIGINT) AS t)""")
        con.execute(
            f"""INSERT INTO bars SELECT 'S' || lpad(s::VARCHAR, 4, '0'), '1d', t, t + INTERVAL 1 DAY,
                20, 21, 19, 20.5, 1e6, NULL, NULL, 'raw', 'bench', now()
                FROM range({symbols}) a(s), range(365) d(day),
                LATERAL (SELECT TIMESTAMPTZ '2023-01-01 00:00:00+00' + to_days(day::INT) AS t)""")
        [(rows,)] = con.execute("SELECT count(*) FROM bars WHERE timeframe = '1m'").fetchall()
    return rows


def median_s(work: Callable[[], object], runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def month_read(warehouse: Warehouse) -> Callable[[], pl.DataFrame]:
    lo, hi = datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)

    def read() -> pl.DataFrame:
        with warehouse.read() as con:
            return bars_between(con, "1m", lo, hi)
    return read


def daily_read(warehouse: Warehouse) -> Callable[[], pl.DataFrame]:
    def read() -> pl.DataFrame:
        with warehouse.read() as con:
            return daily_bars_until(con, datetime(2024, 1, 1, tzinfo=UTC))
    return read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=200)
    parser.add_argument("--days", type=int, default=21)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        warehouse = Warehouse(Path(tmp) / "bench.duckdb")
        rows = fill(warehouse, args.symbols, args.days)
        db_before = os.path.getsize(warehouse.path)
        table_month, in_table = median_s(month_read(warehouse), args.runs)
        table_daily, daily_in_table = median_s(daily_read(warehouse), args.runs)

        started = time.perf_counter()
        moved = archive_bars(warehouse, Timeframe.MINUTE, "2024-03")
        archive_s = time.perf_counter() - started
        archive_month, from_archive = median_s(month_read(warehouse), args.runs)
        daily_beside, daily_beside_archive = median_s(daily_read(warehouse), args.runs)
        archive_bars(warehouse, Timeframe.DAY, "2024-01")
        archived_daily, daily_archived = median_s(daily_read(warehouse), args.runs)

        assert isinstance(in_table, pl.DataFrame) and isinstance(from_archive, pl.DataFrame)
        assert in_table.equals(from_archive), "the archive read other bars than the table"
        assert isinstance(daily_in_table, pl.DataFrame)
        assert daily_in_table.equals(daily_beside_archive) and daily_in_table.equals(daily_archived)
        archived_bytes = sum(m.bytes for m in moved)
        db_bytes = os.path.getsize(warehouse.path)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, duckdb {duckdb.__version__}, polars {pl.__version__}")
    print(f"minute rows: {rows:,} ({args.symbols} symbols x {args.days} days x 390, months {', '.join(MONTHS)}); "
          f"{len(in_table):,} read for {READ_MONTH}; median of {args.runs}")
    print("| read | where | median | rows/s |")
    print("|---|---|---:|---:|")
    for what, where, seconds, n in (
            (f"one minute month ({READ_MONTH})", "table", table_month, len(in_table)),
            (f"one minute month ({READ_MONTH})", "archive", archive_month, len(from_archive)),
            ("a year of daily bars", "table, minutes in the table", table_daily, len(daily_in_table)),
            ("a year of daily bars", "table, minutes archived", daily_beside, len(daily_in_table)),
            ("a year of daily bars", "archive, minutes archived", archived_daily, len(daily_in_table))):
        print(f"| {what} | {where} | {seconds:.3f} s | {n / seconds:,.0f} |")
    print(f"archive/table, minute month: {archive_month / table_month:.2f}x; daily beside archived minutes: "
          f"{daily_beside / table_daily:.2f}x")
    print(f"archive run: {sum(m.moved for m in moved):,} rows in {archive_s:.2f} s "
          f"({sum(m.moved for m in moved) / archive_s:,.0f} rows/s), {archived_bytes / 1e6:.1f} MB of Parquet; "
          f"the DuckDB file: {db_before / 1e6:.1f} MB before, {db_bytes / 1e6:.1f} MB after")


if __name__ == "__main__":
    main()
