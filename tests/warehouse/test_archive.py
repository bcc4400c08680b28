"""The Parquet bar archive: months leave the table and read back the same through `bars_all`,
a second run changes nothing, a run stopped between the file and the delete neither loses nor
doubles a row, and a read of one timeframe or window opens no other partition's file."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.costs import cost_preset
from tapeflow.backtest.loading import history_between
from tapeflow.backtest.run import run_backtest
from tapeflow.calendar.exchange import ny_day_bounds
from tapeflow.model import Timeframe
from tapeflow.strategy.registry import get_strategy
from tests.parity_kit import store_bundled_bars
from warehouse import Warehouse
from warehouse.archive import archive_bars, archive_status, months_before, write_month
from warehouse.bars_view import partition_path
from warehouse.reads import bars_between, daily_bars_until
from warehouse.upsert import upsert

KEY = ("symbol", "timeframe", "ts")
FIRST, LAST = ny_day_bounds(date(2011, 1, 3))[0], ny_day_bounds(date(2011, 3, 31))[1]


@pytest.fixture
def stored(warehouse: Warehouse) -> Warehouse:
    """The bundled SPY minutes of 2011's first quarter and a year of SPY and AAPL days."""
    store_bundled_bars(warehouse, Timeframe.MINUTE, ["SPY"], date(2011, 1, 3), date(2011, 3, 31))
    store_bundled_bars(warehouse, Timeframe.DAY, ["SPY", "AAPL"], date(2009, 8, 21), date(2010, 8, 20))
    return warehouse


def everything(warehouse: Warehouse) -> pl.DataFrame:
    """Every bar `bars_all` reads, in key order."""
    with warehouse.read() as con:
        return con.sql("SELECT * EXCLUDE (month) FROM bars_all ORDER BY symbol, timeframe, ts").pl()


def table_rows(warehouse: Warehouse, timeframe: str) -> int:
    with warehouse.read() as con:
        return con.execute("SELECT count(*) FROM bars WHERE timeframe = ?", [timeframe]).fetchone()[0]


def digest(warehouse: Warehouse) -> dict[str, str]:
    return {str(m.path): hashlib.sha256(m.path.read_bytes()).hexdigest() for m in archive_status(warehouse.archive)}


def test_archived_months_leave_the_table_and_a_backtest_reads_the_same_bars(settings, stored):
    before = everything(stored)
    history, _ = history_between(settings, "1m", ["SPY"], FIRST, LAST)
    config = BacktestConfig(costs=cost_preset("retail-default"))
    run = run_backtest(get_strategy("opening_range")(), history, config)

    moved = archive_bars(stored, Timeframe.MINUTE, "2011-03")

    assert [(m.month, m.moved == m.rows) for m in moved] == [("2011-01", True), ("2011-02", True)]
    assert sum(m.moved for m in moved) == before.filter(pl.col("ts") < datetime(2011, 3, 1, tzinfo=UTC),
                                                       pl.col("timeframe") == "1m").height
    with stored.read() as con:
        [(oldest,)] = con.execute("SELECT min(ts) FROM bars WHERE timeframe = '1m'").fetchall()
    assert oldest >= datetime(2011, 3, 1, tzinfo=UTC)  # the table kept March only
    assert partition_path(stored.archive, "1m", "2011-01").is_file()
    assert_frame_equal(everything(stored), before)

    # The window reaches into the archived months: bars, liquidity and the run itself are unchanged.
    again, _ = history_between(settings, "1m", ["SPY"], FIRST, LAST)
    assert_frame_equal(again.bars, history.bars)
    assert_frame_equal(again.liquidity, history.liquidity)
    rerun = run_backtest(get_strategy("opening_range")(), again, config)
    assert_frame_equal(rerun.result.fills, run.result.fills)
    assert rerun.metrics == run.metrics


def test_archiving_twice_changes_nothing(stored):
    archive_bars(stored, Timeframe.MINUTE, "2011-03")
    archive_bars(stored, Timeframe.DAY, "2010-01")
    rows, files = everything(stored), digest(stored)
    assert len(files) == 7  # two minute months, five daily ones

    assert archive_bars(stored, Timeframe.MINUTE, "2011-03") == []
    assert archive_bars(stored, Timeframe.DAY, "2010-01") == []
    assert digest(stored) == files
    assert_frame_equal(everything(stored), rows)


def test_a_run_stopped_between_the_file_and_the_delete_loses_and_doubles_nothing(stored):
    before = everything(stored)
    with pytest.raises(RuntimeError, match="stopped"), stored.write() as con:
        write_month(con, stored.archive, Timeframe.MINUTE, "2011-01")
        raise RuntimeError("stopped before the delete")
    # The month is in its file and still in the table: the view reads it once.
    assert partition_path(stored.archive, "1m", "2011-01").is_file()
    assert table_rows(stored, "1m") == before.filter(pl.col("timeframe") == "1m").height
    after = everything(stored)
    assert after.select(KEY).is_duplicated().sum() == 0
    assert_frame_equal(after, before)

    # The next run merges the file with the table and lets the table go.
    [moved] = archive_bars(stored, Timeframe.MINUTE, "2011-02")
    assert moved.month == "2011-01" and moved.rows == moved.moved
    assert_frame_equal(everything(stored), before)


def test_the_tables_row_wins_over_the_archived_one_and_is_merged_into_the_month(stored):
    archive_bars(stored, Timeframe.MINUTE, "2011-02")
    archived = everything(stored)
    january = archived.filter(pl.col("timeframe") == "1m", pl.col("ts") < datetime(2011, 2, 1, tzinfo=UTC))
    corrected = january.head(3).with_columns(pl.col("close") + 1.0, pl.lit("fix").alias("source"))
    with stored.write() as con:  # a vendor's correction of bars already archived, ingested again
        upsert(con, "bars", corrected, KEY)

    seen = everything(stored)
    assert seen.height == archived.height and seen.select(KEY).is_duplicated().sum() == 0
    assert seen.filter(pl.col("source") == "fix").select(KEY, "close").equals(corrected.select(KEY, "close"))

    [moved] = archive_bars(stored, Timeframe.MINUTE, "2011-02")
    assert (moved.moved, moved.rows) == (3, january.height)
    assert table_rows(stored, "1m") == seen.filter(pl.col("timeframe") == "1m").height - january.height
    assert_frame_equal(everything(stored), seen)


def test_reads_open_only_the_partitions_of_their_timeframe_and_months(stored):
    archive_bars(stored, Timeframe.MINUTE, "2011-03")
    archive_bars(stored, Timeframe.DAY, "2010-01")
    days = everything(stored).filter(pl.col("timeframe") == "1d").height
    with stored.read() as con:
        daily = daily_bars_until(con, datetime(2011, 1, 1, tzinfo=UTC))
        march = bars_between(con, "1m", datetime(2011, 3, 1, tzinfo=UTC), LAST)
    # Spoil February's minutes: a read that opened them would fail now. (Defining the view reads
    # the first file of each timeframe, January's, for its columns.)
    partition_path(stored.archive, "1m", "2011-02").write_bytes(b"not parquet")
    with stored.read() as con:
        assert_frame_equal(daily_bars_until(con, datetime(2011, 1, 1, tzinfo=UTC)), daily)
        assert_frame_equal(bars_between(con, "1m", datetime(2011, 3, 1, tzinfo=UTC), LAST), march)
        with pytest.raises(Exception, match="(?i)parquet"):
            bars_between(con, "1m", FIRST, LAST)
    # Both reads held archived and live rows: the daily one read the daily partitions.
    assert daily["ts"].min() < datetime(2010, 1, 1, tzinfo=UTC) < daily["ts"].max()
    assert daily.height == days
    assert march.height > 0


def scanned(con, query: str) -> tuple[int, list[str]]:
    """How many Parquet scans a query's plan holds, and the partition folders they read."""
    [(_, plan)] = con.execute(f"EXPLAIN ANALYZE {query}").fetchall()
    return plan.count("READ_PARQUET"), re.findall(r"Scanning Files: \S+|timeframe=1\w/month=[\d-]+", plan)


def test_the_plan_scans_no_file_of_another_timeframe_or_month(stored):
    archive_bars(stored, Timeframe.MINUTE, "2011-03")
    archive_bars(stored, Timeframe.DAY, "2010-01")
    with stored.read() as con:
        scans, read = scanned(con, "SELECT count(*) FROM bars_all WHERE timeframe = '1d'")
        assert scans == 1 and read == [f"timeframe=1d/month=2009-{m}" for m in ("08", "09", "10", "11", "12")]
        scans, read = scanned(con, "SELECT count(*) FROM bars_all WHERE timeframe = '1m' AND month >= '2011-02'")
        assert scans == 1 and read == ["Scanning Files: 1/2", "timeframe=1m/month=2011-02"]


def test_a_warehouse_without_an_archive_reads_its_table(stored):
    assert archive_status(stored.archive) == []
    with stored.read() as con:
        assert con.execute("SELECT count(*) FROM bars_all").fetchone() == con.execute("SELECT count(*) FROM bars").fetchone()
        assert months_before(con, Timeframe.MINUTE, "2011-03") == ["2011-01", "2011-02"]
