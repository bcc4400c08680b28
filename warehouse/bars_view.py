"""`bars_all`: the `bars` table and the Parquet bar archive read as one relation.

The archive folder is the machine's own (TAPEFLOW_ARCHIVE_DIR), so the view is a temporary one,
defined on every connection from the files present when it opens. It lists those files rather
than a glob, since DuckDB refuses a glob that matches nothing. An archived row that the table
also holds (a run stopped between writing a month and deleting its rows, or a bar re-ingested
later) is read from the table only: the table's row wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

BARS_ALL = "bars_all"
FILE_NAME = "bars.parquet"
PARTITIONS = f"timeframe=*/month=*/{FILE_NAME}"
# The view's partition column, filled from the bar's start in UTC on the table's side too.
MONTH = "strftime(timezone('UTC', ts), '%Y-%m')"
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


@dataclass(frozen=True)
class Partition:
    """One archived month of one timeframe: `<root>/timeframe=<tf>/month=<YYYY-MM>/bars.parquet`."""

    timeframe: str
    month: str
    path: Path


def partition_path(root: Path, timeframe: str, month: str) -> Path:
    """Where one month of one timeframe lives in the archive."""
    return root / f"timeframe={timeframe}" / f"month={month}" / FILE_NAME


def partitions(root: Path) -> list[Partition]:
    """The archived months present under `root`, by timeframe then month."""
    found = []
    for path in sorted(root.glob(PARTITIONS)):
        timeframe = path.parent.parent.name.removeprefix("timeframe=")
        month = path.parent.name.removeprefix("month=")
        if _MONTH.fullmatch(month):  # a folder of some other making is no partition
            found.append(Partition(timeframe, month, path))
    return found


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[start, end) of a 'YYYY-MM' month in UTC."""
    start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def define_bars_all(con: duckdb.DuckDBPyConnection, root: Path) -> None:
    """(Re)define `bars_all` on this connection: the table, plus the archive's files under `root`.
    A warehouse without a `bars` table yet gets no view."""
    columns = table_columns(con)
    if not columns:
        return
    listed = ", ".join(quoted(c) for c in columns)
    table = f"SELECT {listed}, {MONTH} AS month FROM main.bars"
    found = partitions(root)
    if not found:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {BARS_ALL} AS {table}")
        return
    branches = [table] + [_archived(tf, [p for p in found if p.timeframe == tf], columns)
                          for tf in sorted({p.timeframe for p in found})]
    con.execute(f"CREATE OR REPLACE TEMP VIEW {BARS_ALL} AS {' UNION ALL '.join(branches)}")


def _archived(timeframe: str, found: list[Partition], columns: list[str]) -> str:
    """One timeframe's archived rows that the table does not hold. Its timeframe is a constant,
    so a query of another timeframe drops the whole branch, the anti join's table scan with it.
    Only the table's rows in archived months can shadow an archived row: bounding the join's
    build side by them keeps it to the few rows a stopped run or a re-ingest left."""
    files = "[" + ", ".join(literal(str(p.path)) for p in found) + "]"
    lo = min(month_bounds(p.month)[0] for p in found)
    hi = max(month_bounds(p.month)[1] for p in found)
    picked = ", ".join(f"{literal(timeframe)} AS timeframe" if c == "timeframe" else f"a.{quoted(c)}" for c in columns)
    return (f"SELECT {picked}, a.month FROM read_parquet({files}, hive_partitioning = true, "
            "hive_types = {'timeframe': 'VARCHAR', 'month': 'VARCHAR'}) a "
            f"ANTI JOIN (SELECT symbol, ts FROM main.bars WHERE timeframe = {literal(timeframe)} "
            f"AND ts >= {literal(lo.isoformat())}::TIMESTAMPTZ AND ts < {literal(hi.isoformat())}::TIMESTAMPTZ) t "
            "USING (symbol, ts)")


def table_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The `bars` table's columns in order (none before the migrations ran)."""
    return [name for (name,) in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND table_name = 'bars' ORDER BY column_index").fetchall()]


def quoted(name: str) -> str:
    """An SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """An SQL string literal."""
    return "'" + text.replace("'", "''") + "'"
