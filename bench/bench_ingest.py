"""Ingest throughput: tapeflow's vectorised check + Arrow upsert against two peers run in
the same process on the same data (the bundled 122,574-row S&P 500 daily panel): each row
validated as a `Bar` record then bulk-upserted, and the row-at-a-time way (`Bar` per row,
`executemany` of INSERT ... ON CONFLICT, measured on a slice because it is slow).

    .venv/bin/python bench/bench_ingest.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import polars as pl

from tapeflow.config import PROJECT_DATA
from tapeflow.ingest.bars import check_bars
from tapeflow.model import Bar, InvalidRecord
from tapeflow.schemas import BAR_KEY, BAR_SCHEMA
from tapeflow.sources import Window
from tapeflow.sources.replay import ReplaySource
from warehouse.migrate import apply_migrations
from warehouse.upsert import upsert

WINDOW = Window.days(date(2009, 8, 21), date(2010, 8, 20))


def tapeflow_way(raw: pl.DataFrame, path: Path) -> int:
    checked = check_bars(raw)
    now = datetime.now(UTC)
    con = duckdb.connect(str(path))
    apply_migrations(con)
    stored = upsert(con, "bars", checked.good.with_columns(pl.lit(now).alias("ingested_at")), BAR_KEY,
                    bookkeeping=("ingested_at",)).stored
    con.close()
    return stored


def validated_rows(raw: pl.DataFrame, now: datetime) -> list[tuple]:
    """Each row through the `Bar` record, as code without a vectorised path would do."""
    rows = []
    for r in raw.iter_rows(named=True):
        if r["problem"] is not None:  # what the source itself flagged
            continue
        try:
            bar = Bar(symbol=r["symbol"], timeframe=r["timeframe"], ts=r["ts"], end=r["end_ts"], open=r["open"],
                      high=r["high"], low=r["low"], close=r["close"], volume=r["volume"], source=r["source"],
                      adjustment=r["adjustment"])
        except (InvalidRecord, TypeError, ValueError):
            continue
        rows.append((bar.symbol, bar.timeframe.value, bar.ts, bar.end, bar.open, bar.high, bar.low, bar.close,
                     bar.volume, None, None, bar.adjustment.value, bar.source, now))
    return rows


def records_then_bulk(raw: pl.DataFrame, path: Path) -> int:
    rows = validated_rows(raw, datetime.now(UTC))
    frame = pl.DataFrame(rows, schema=[*BAR_SCHEMA, "ingested_at"], orient="row")
    con = duckdb.connect(str(path))
    apply_migrations(con)
    stored = upsert(con, "bars", frame, BAR_KEY, bookkeeping=("ingested_at",)).stored
    con.close()
    return stored


def row_at_a_time(raw: pl.DataFrame, path: Path) -> int:
    rows = validated_rows(raw, datetime.now(UTC))
    con = duckdb.connect(str(path))
    apply_migrations(con)
    con.executemany(
        "INSERT INTO bars VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", rows
    )
    (stored,) = con.execute("SELECT count(*) FROM bars").fetchone()
    con.close()
    return stored


def timed(fn, raw: pl.DataFrame, runs: int) -> tuple[float, int]:
    times, stored = [], 0
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            stored = fn(raw, Path(tmp) / "bench.duckdb")
            times.append(time.perf_counter() - start)
    return statistics.median(times), stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--peer-rows", type=int, default=2_000,
                        help="rows for the row-at-a-time peer (it is slow); rates are compared per row")
    args = parser.parse_args()

    raw = ReplaySource(PROJECT_DATA).bars(None, "1d", WINDOW)
    peer_raw = raw.head(args.peer_rows)
    ours, ours_stored = timed(tapeflow_way, raw, args.runs)
    records, records_stored = timed(records_then_bulk, raw, args.runs)
    ours_small, ours_small_stored = timed(tapeflow_way, peer_raw, args.runs)
    rows, rows_stored = timed(row_at_a_time, peer_raw, args.runs)
    # Same rows stored by every way, or the timings compare different work.
    assert ours_stored == records_stored and ours_small_stored == rows_stored

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"duckdb {duckdb.__version__}, polars {pl.__version__}")
    print(f"median of {args.runs} runs, fresh DuckDB file each run")
    line = "{:<44} {:>7} rows: {:7.3f} s {:>11,.0f} rows/s"
    print(line.format("tapeflow: check_bars + Arrow upsert", raw.height, ours, raw.height / ours))
    print(line.format("peer: Bar() per row + Arrow upsert", raw.height, records, raw.height / records))
    print(line.format("tapeflow: check_bars + Arrow upsert", peer_raw.height, ours_small, peer_raw.height / ours_small))
    print(line.format("peer: Bar() per row + executemany", peer_raw.height, rows, peer_raw.height / rows))
    print(f"ratio vs per-row records, {raw.height} rows: {records / ours:.1f}x")
    print(f"ratio vs row-at-a-time inserts, {peer_raw.height} rows: {rows / ours_small:.0f}x")

if __name__ == "__main__":
    main()
