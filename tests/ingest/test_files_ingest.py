"""`tapeflow ingest --files` through the real CLI and a real DuckDB warehouse: both layouts in
CSV, CSV.gz and Parquet stored with UTC starts and ends, bad rows quarantined with their
reasons, re-ingest changes nothing, a glob over several files, refusals in one line (exit 2)."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tapeflow.cli.main import app
from warehouse import Warehouse

runner = CliRunner()
START = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
START_NS = int(START.timestamp()) * 1_000_000_000
FORMATS = ["csv", "csv.gz", "parquet"]


def polygon(n: int = 3, ticker: str = "AAPL") -> pl.DataFrame:
    return pl.DataFrame({
        "ticker": [ticker] * n,
        "volume": [1000.0 + i for i in range(n)],
        "open": [10.0 + i for i in range(n)],
        "close": [10.5 + i for i in range(n)],
        "high": [11.0 + i for i in range(n)],
        "low": [9.5 + i for i in range(n)],
        "window_start": [START_NS + i * 60_000_000_000 for i in range(n)],
        "transactions": [5 + i for i in range(n)],
    })


def bars_layout(n: int = 3, symbol: str = "MSFT") -> pl.DataFrame:
    """The `--bars` layout, with ts given in New York time: stored as UTC."""
    frame = polygon(n, symbol).select(
        pl.col("ticker").alias("symbol"),
        pl.from_epoch("window_start", time_unit="ns").dt.replace_time_zone("UTC")
        .dt.convert_time_zone("America/New_York").alias("ts"),
        "open", "high", "low", "close", "volume",
    )
    return frame


def write(frame: pl.DataFrame, path: Path) -> Path:
    if path.name.endswith(".parquet"):
        frame.write_parquet(path)
    elif path.name.endswith(".gz"):
        with gzip.open(path, "wb") as out:
            frame.write_csv(out)
    else:
        frame.write_csv(path)
    return path


def broken(path: Path, content: bytes) -> str:
    path.write_bytes(content)
    return str(path)


def ingest(*args: str):
    return runner.invoke(app, ["ingest", "--timeframe", "1m", "--files", *args])


def stored(warehouse: Warehouse) -> pl.DataFrame:
    with warehouse.read() as con:
        return con.sql("SELECT * FROM bars ORDER BY symbol, ts").pl()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("layout", ["polygon", "bars"])
def test_each_layout_and_format_is_stored_in_utc(fmt: str, layout: str, tapeflow_home: Path, warehouse: Warehouse,
                                                 tmp_path: Path) -> None:
    frame = polygon() if layout == "polygon" else bars_layout()
    result = ingest(str(write(frame, tmp_path / f"bars.{fmt}")))
    assert result.exit_code == 0, result.output
    bars = stored(warehouse)
    assert bars.height == 3
    starts = [START + timedelta(minutes=i) for i in range(3)]
    assert bars["ts"].to_list() == starts
    assert bars["end_ts"].to_list() == [s + timedelta(minutes=1) for s in starts]
    assert bars["open"].to_list() == [10.0, 11.0, 12.0] and bars["high"].to_list() == [11.0, 12.0, 13.0]
    assert bars["timeframe"].unique().to_list() == ["1m"]
    if layout == "polygon":
        assert bars["trade_count"].to_list() == [5, 6, 7] and bars["adjustment"].unique().to_list() == ["raw"]
    with warehouse.read() as con:
        runs = con.sql("SELECT source, kind, fetched, inserted, quarantined FROM ingest_runs").fetchall()
    assert runs == [("files", "bars", 3, 3, 0)]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_bad_rows_are_quarantined_and_the_rest_stored(fmt: str, tapeflow_home: Path, warehouse: Warehouse,
                                                      tmp_path: Path) -> None:
    frame = polygon(4).with_columns(
        pl.when(pl.int_range(4) == 1).then(8.0).otherwise(pl.col("high")).alias("high"),  # below low
        pl.when(pl.int_range(4) == 2).then(-1.0).otherwise(pl.col("volume")).alias("volume"),
    )
    result = ingest(str(write(frame, tmp_path / f"bad.{fmt}")))
    assert result.exit_code == 0, result.output
    assert stored(warehouse)["ts"].to_list() == [START, START + timedelta(minutes=3)]
    with warehouse.read() as con:
        rows = con.sql("SELECT reason, payload FROM quarantine WHERE kind = 'bars' ORDER BY reason").fetchall()
        [(quarantined,)] = con.sql("SELECT quarantined FROM ingest_runs").fetchall()
    assert quarantined == 2
    assert [r[0].split("; ")[0] for r in rows] == ["high is below low", "volume must be >= 0"]
    assert json.loads(rows[0][1])["high"] == 8.0  # the refused row itself, for the user to fix


def test_text_in_a_number_column_quarantines_that_row(tapeflow_home: Path, warehouse: Warehouse,
                                                      tmp_path: Path) -> None:
    path = write(polygon(2), tmp_path / "text.csv")
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace("AAPL,1000.0", "AAPL,lots")
    path.write_text("\n".join(lines) + "\n")
    assert ingest(str(path)).exit_code == 0
    assert stored(warehouse).height == 1
    with warehouse.read() as con:
        [(reason,)] = con.sql("SELECT reason FROM quarantine").fetchall()
    assert "volume" in reason


def test_reingest_changes_nothing_and_a_glob_reads_every_file(tapeflow_home: Path, warehouse: Warehouse,
                                                              tmp_path: Path) -> None:
    write(polygon(3, "AAPL"), tmp_path / "a.csv.gz")
    write(bars_layout(2, "MSFT"), tmp_path / "b.parquet")
    pattern = str(tmp_path / "*.*")
    assert ingest(pattern).exit_code == 0
    first = stored(warehouse)
    assert first.group_by("symbol").len().sort("symbol").rows() == [("AAPL", 3), ("MSFT", 2)]
    assert ingest(pattern).exit_code == 0
    assert stored(warehouse).equals(first)
    with warehouse.read() as con:
        runs = con.sql("SELECT inserted, updated, unchanged FROM ingest_runs ORDER BY started_at").fetchall()
    assert runs == [(5, 0, 0), (0, 0, 5)]


@pytest.mark.parametrize(("make", "expected"), [
    (lambda d: str(d / "nothing-*.csv"), "no files match"),
    (lambda d: str(d / "missing.csv"), "no file at"),
    (lambda d: str(write(pl.DataFrame({"a": [1], "b": [2]}), d / "odd.csv")), "unknown layout"),
    (lambda d: str(write(bars_layout().with_columns(pl.col("ts").dt.replace_time_zone(None)), d / "naive.csv")),
     "no time zone"),
    (lambda d: broken(d / "x.csv.gz", b"\x1f\x8b\x08garbage"), "cannot read"),
    (lambda d: broken(d / "x.parquet", b"PAR1 not really"), "cannot read"),
])
def test_refusals_exit_2_in_one_line(make, expected: str, tapeflow_home: Path, tmp_path: Path) -> None:
    result = ingest(make(tmp_path))
    assert result.exit_code == 2, result.output
    assert expected in result.output and len(result.output.strip().splitlines()) == 1
