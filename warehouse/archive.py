"""The Parquet bar archive: old months of one timeframe moved out of the `bars` table into
`<archive>/timeframe=<tf>/month=<YYYY-MM>/bars.parquet`, and what the archive holds.

A month moves in one write transaction: its rows (merged with the month's file, if archived
before, the table's row winning on the same key) are written to a temporary file, counted,
renamed into place, then deleted from the table. A run stopped after the rename leaves the rows
in both places, which `bars_all` reads once (the table's), and the next run merges them again:
nothing is lost and a second run changes nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

from tapeflow.model import Timeframe
from tapeflow.progress import tracked
from warehouse.bars_view import (
    FILE_NAME,
    define_bars_all,
    literal,
    month_bounds,
    partition_path,
    partitions,
    quoted,
    table_columns,
)
from warehouse.connection import Warehouse


class ArchiveError(RuntimeError):
    """A month's new file did not hold the rows it should; the table kept them all."""


@dataclass(frozen=True)
class MonthArchived:
    """One month moved: the rows the table gave up, and what the month's file holds now."""

    timeframe: Timeframe
    month: str
    moved: int
    rows: int
    bytes: int


@dataclass(frozen=True)
class ArchivedMonth:
    """One partition of the archive as it stands on disk."""

    timeframe: str
    month: str
    rows: int
    bytes: int
    path: Path


def months_before(con: duckdb.DuckDBPyConnection, timeframe: Timeframe, before: str) -> list[str]:
    """The UTC months ('YYYY-MM') before the month `before` in which the table holds `timeframe` bars."""
    cutoff, _ = month_bounds(before)
    return [month for (month,) in con.execute(
        "SELECT DISTINCT strftime(timezone('UTC', ts), '%Y-%m') AS month FROM main.bars "
        "WHERE timeframe = ? AND ts < ? ORDER BY month", [timeframe.value, cutoff]).fetchall()]


def archive_bars(warehouse: Warehouse, timeframe: Timeframe, before: str) -> list[MonthArchived]:
    """Move every month of `timeframe` bars before the month `before` ('YYYY-MM') to the
    archive, oldest first, one transaction a month."""
    with warehouse.read() as con:
        months = months_before(con, timeframe, before)
    done = []
    with tracked(f"archive {timeframe} bars before {before}", total=len(months)) as progress:
        for month in months:
            done.append(archive_month(warehouse, timeframe, month))
            progress.advance(detail=month)
    return done


def archive_month(warehouse: Warehouse, timeframe: Timeframe, month: str) -> MonthArchived:
    """Move one month of `timeframe` bars from the table into its Parquet file."""
    with warehouse.write() as con:
        moved, rows = write_month(con, warehouse.archive, timeframe, month)
        con.execute(f"DELETE FROM main.bars WHERE {_in_month(timeframe, month)}")
        define_bars_all(con, warehouse.archive)  # a connection held open sees the new month too
    path = partition_path(warehouse.archive, timeframe.value, month)
    return MonthArchived(timeframe, month, moved, rows, path.stat().st_size)


def write_month(con: duckdb.DuckDBPyConnection, root: Path, timeframe: Timeframe, month: str) -> tuple[int, int]:
    """Write the month's file: the table's rows of the month and the archived rows the table does
    not hold. Returns (rows from the table, rows in the file); the table keeps its rows."""
    path = partition_path(root, timeframe.value, month)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{FILE_NAME}.tmp")  # outside the partitions' pattern: never read
    # `timeframe` is the partition folder's, not the file's.
    columns = [quoted(c) for c in table_columns(con) if c != "timeframe"]
    in_month = _in_month(timeframe, month)
    rows = f"SELECT {', '.join(columns)} FROM main.bars WHERE {in_month}"
    if path.exists():
        rows += (f" UNION ALL SELECT {', '.join('a.' + c for c in columns)} FROM read_parquet({literal(str(path))}) a "
                 f"ANTI JOIN (SELECT symbol, ts FROM main.bars WHERE {in_month}) t USING (symbol, ts)")
    [(moved,)] = con.execute(f"SELECT count(*) FROM main.bars WHERE {in_month}").fetchall()
    [(expected,)] = con.execute(f"SELECT count(*) FROM ({rows})").fetchall()
    con.execute(f"COPY ({rows} ORDER BY symbol, ts) TO {literal(str(temp))} (FORMAT parquet, COMPRESSION zstd)")
    [(written,)] = con.execute(f"SELECT count(*) FROM read_parquet({literal(str(temp))})").fetchall()
    if written != expected:
        temp.unlink(missing_ok=True)
        raise ArchiveError(f"{timeframe} {month}: wrote {written} rows of {expected}; the table keeps them")
    _sync(temp)
    os.replace(temp, path)
    _sync(path.parent)  # the rename itself survives a power cut before the table lets go
    return moved, expected


def archive_status(root: Path) -> list[ArchivedMonth]:
    """Every partition under `root` with its row count (from the file's footer) and size."""
    found = partitions(root)
    if not found:
        return []
    with duckdb.connect() as con:
        counts = dict(con.execute("SELECT file_name, num_rows FROM parquet_file_metadata(?)",
                                  [[str(p.path) for p in found]]).fetchall())
    return [ArchivedMonth(p.timeframe, p.month, counts[str(p.path)], p.path.stat().st_size, p.path) for p in found]


def _in_month(timeframe: Timeframe, month: str) -> str:
    lo, hi = month_bounds(month)
    return (f"timeframe = {literal(timeframe.value)} AND ts >= {literal(lo.isoformat())}::TIMESTAMPTZ "
            f"AND ts < {literal(hi.isoformat())}::TIMESTAMPTZ")


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
