"""`--bars FILE` through the real CLI: rows ingest would quarantine are left out and counted,
duplicates collapse or are refused, a file with nothing usable is refused in one line (exit 2,
no report), and backtest options are checked before anything runs."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from click.testing import Result
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from tapeflow.cli.main import app
from tapeflow.config import PROJECT_DATA
from tapeflow.sources import Window
from tapeflow.sources.replay import ReplaySource

runner = CliRunner()
SMA = ["sma_cross", "-p", "fast=5", "-p", "slow=20", "--costs", "none"]
FORMATS = ["csv", "parquet"]

# A fault put into a row, and the reason ingest's checks give for it (the first, where there are several).
FAULTS: dict[str, tuple[dict[str, float | pl.Expr], str]] = {
    "nan": ({"close": math.nan}, "close is not a finite number"),
    "+inf": ({"high": math.inf}, "high is not a finite number"),
    "-inf": ({"low": -math.inf}, "low is not a finite number"),
    "high below low": ({"high": pl.col("low") - 1}, "high is below low"),
    "zero price": ({"open": 0.0}, "open must be > 0"),
    "negative price": ({"close": -5.0}, "close must be > 0"),
    "negative volume": ({"volume": -100.0}, "volume must be >= 0"),
}
CONFLICT = "conflicting rows for the same (symbol, timeframe, ts) in one batch"
COPY = "duplicate of an earlier row in the same batch"


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    """A year of two symbols' daily bars as a user's file holds them: UTC-zoned ts, no end_ts."""
    raw = ReplaySource(PROJECT_DATA).bars(["AAPL", "MSFT"], "1d", Window.days(date(2009, 8, 21), date(2010, 8, 20)))
    return raw.filter(pl.col("problem").is_null()).select("symbol", "ts", "open", "high", "low", "close", "volume")


def write(frame: pl.DataFrame, path: Path) -> Path:
    frame.write_parquet(path) if path.suffix == ".parquet" else frame.write_csv(path)
    return path


def spoil(frame: pl.DataFrame, fault: str, rows: list[int] | None = None) -> pl.DataFrame:
    """`frame` with `fault` put into `rows` (default: every row)."""
    values, _ = FAULTS[fault]
    hit = pl.int_range(pl.len()).is_in(rows) if rows is not None else pl.lit(True)
    return frame.with_columns(
        pl.when(hit).then(v if isinstance(v, pl.Expr) else pl.lit(v, dtype=pl.Float64)).otherwise(pl.col(c)).alias(c)
        for c, v in values.items()
    )


def without(frame: pl.DataFrame, rows: list[int]) -> pl.DataFrame:
    return frame.filter(~pl.int_range(pl.len()).is_in(rows))


def backtest(path: Path, fills: Path, *extra: str) -> Result:
    return runner.invoke(app, ["backtest", *SMA, "--bars", str(path), "--fills-out", str(fills), *extra])


def assert_ran_like(result: Result, expected: Result, fills: Path, expected_fills: Path) -> None:
    """Both runs succeeded with the same fills (and some fills: the comparison means something)."""
    assert result.exit_code == 0 and expected.exit_code == 0, result.output + expected.output
    got, want = pl.read_parquet(fills), pl.read_parquet(expected_fills)
    assert want.height > 4
    assert_frame_equal(got, want)


def assert_refused(result: Result, home: Path, *texts: str) -> None:
    """Exit 2 with one line on stderr holding `texts`, nothing on stdout, no report written."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for text in texts:
        assert text in lines[0], lines[0]
    assert result.stdout == ""
    assert not (home / "reports").exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_rows_are_left_out_and_counted_and_the_rest_runs(fmt, bars, tmp_path, tapeflow_home):
    rows = list(range(60, 60 + len(FAULTS)))
    spoiled = bars
    for row, fault in zip(rows, FAULTS):
        spoiled = spoil(spoiled, fault, [row])
    result = backtest(write(spoiled, tmp_path / f"spoiled.{fmt}"), tmp_path / "fills.parquet")
    clean = backtest(write(without(bars, rows), tmp_path / f"clean.{fmt}"), tmp_path / "clean.parquet")
    assert_ran_like(result, clean, tmp_path / "fills.parquet", tmp_path / "clean.parquet")
    line = " ".join(result.stderr.split())
    assert line.startswith(f"quarantined {len(FAULTS)} of {bars.height} rows: ")
    for _, reason in FAULTS.values():
        assert f"1 {reason}" in line
    assert "quarantined" not in clean.stderr


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", ["exact", "conflicting"])
def test_duplicates_collapse_when_exact_and_are_all_refused_when_they_differ(kind, fmt, bars, tmp_path, tapeflow_home):
    rows = list(range(100, 110))
    copies = bars[rows]
    if kind == "conflicting":
        copies = copies.with_columns(pl.col("volume") + 1)  # still a valid bar: only the disagreement is wrong
    result = backtest(write(pl.concat([bars, copies]), tmp_path / f"doubled.{fmt}"), tmp_path / "fills.parquet")
    # Exact copies change nothing; a disagreement leaves the bar out, every version of it.
    expected = bars if kind == "exact" else without(bars, rows)
    clean = backtest(write(expected, tmp_path / f"clean.{fmt}"), tmp_path / "clean.parquet")
    assert_ran_like(result, clean, tmp_path / "fills.parquet", tmp_path / "clean.parquet")
    counted = f"10 {COPY}" if kind == "exact" else f"20 {CONFLICT}"
    assert f"quarantined {counted[:2]} of {bars.height + 10} rows: {counted}" in " ".join(result.stderr.split())


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_file_whose_every_row_is_bad_is_refused(fault, fmt, bars, tmp_path, tapeflow_home):
    result = backtest(write(spoil(bars, fault), tmp_path / f"bars.{fmt}"), tmp_path / "fills.parquet")
    assert_refused(result, tapeflow_home, f"no usable bars in {tmp_path / f'bars.{fmt}'}: all {bars.height} rows",
                   f"({bars.height} {FAULTS[fault][1]})", "fix or remove them")
    assert not (tmp_path / "fills.parquet").exists()


def _zero_bytes(bars: pl.DataFrame, path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _every_row_twice_and_different(bars: pl.DataFrame, path: Path) -> Path:
    return write(pl.concat([bars, bars.with_columns(pl.col("volume") + 1)]), path)


# (how the file is made, what the one line says: {path} the file, {rows} the bars it was made from).
FILE_FAULTS: dict[str, tuple[Callable[[pl.DataFrame, Path], Path], str]] = {
    "0 bytes": (_zero_bytes, "is empty (0 bytes): a bars file needs the columns symbol, ts, open"),
    "header only": (lambda b, p: write(b.head(0), p), "has a header but no rows"),
    "missing column": (lambda b, p: write(b.drop("volume"), p), "lacks the column volume: a bars file needs"),
    "naive timestamps": (lambda b, p: write(b.with_columns(pl.col("ts").dt.replace_time_zone(None)), p),
                         "ts in {path} has no time zone: give timestamps a time zone, e.g. 2024-01-02T14:30:00Z"),
    "every row conflicting": (_every_row_twice_and_different, "all {twice} rows were quarantined ({twice} " + CONFLICT + ")"),
}


@pytest.mark.parametrize("command", ["backtest", "check-lookahead"])
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("fault", list(FILE_FAULTS))
def test_a_file_with_nothing_usable_is_refused_in_one_line(fault, fmt, command, bars, tmp_path, tapeflow_home):
    make, message = FILE_FAULTS[fault]
    path = make(bars, tmp_path / f"bars.{fmt}")
    result = runner.invoke(app, [command, *SMA[:5], "--bars", str(path)])
    assert_refused(result, tapeflow_home, message.format(path=path, twice=2 * bars.height))


@pytest.mark.parametrize(("name", "content", "message"), [
    ("bars.csv", "folder", "is a folder: give --bars one Parquet or CSV file"),
    ("bars.csv", None, "no bars file at {path}: check the path"),
    ("bars.parquet", b"PAR1 but not really", "cannot read {path} as Parquet"),
    ("bars.csv", bytes(range(256)) * 4, "cannot read {path} as CSV"),
    ("bars.csv", b"\n\n", "holds no data"),
], ids=["folder", "missing", "not Parquet", "not text", "only newlines"])
def test_a_path_that_is_no_bars_file_is_refused_in_one_line(name, content, message, tmp_path, tapeflow_home):
    path = tmp_path / name
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    result = backtest(path, tmp_path / "fills.parquet")
    assert_refused(result, tapeflow_home, message.format(path=path))


def test_timestamps_with_an_offset_or_z_in_a_csv_are_read_as_instants(bars, tmp_path, tapeflow_home):
    text = bars.with_columns(pl.col("ts").dt.convert_time_zone("America/New_York").dt.strftime("%Y-%m-%dT%H:%M:%S%:z"))
    offsets = backtest(write(text, tmp_path / "offsets.csv"), tmp_path / "fills.parquet")
    utc = backtest(write(bars, tmp_path / "utc.parquet"), tmp_path / "utc_fills.parquet")
    assert "-04:00" in (tmp_path / "offsets.csv").read_text()
    assert_ran_like(offsets, utc, tmp_path / "fills.parquet", tmp_path / "utc_fills.parquet")


def test_a_symbol_the_file_lacks_is_refused(bars, tmp_path, tapeflow_home):
    result = backtest(write(bars, tmp_path / "bars.csv"), tmp_path / "fills.parquet", "--symbol", "ZZZ")
    assert_refused(result, tapeflow_home, "has no rows for --symbol ZZZ: it holds AAPL, MSFT")


@pytest.mark.parametrize("cash", ["-1000", "0", "nan", "inf"])
def test_cash_must_be_a_finite_amount_above_zero(cash, bars, tmp_path, tapeflow_home):
    on_file = backtest(write(bars, tmp_path / "bars.csv"), tmp_path / "fills.parquet", "--cash", cash)
    assert_refused(on_file, tapeflow_home, f"--cash must be a finite amount > 0, got {float(cash)}: e.g. --cash 100000")
    assert not (tmp_path / "fills.parquet").exists()
    on_warehouse = runner.invoke(app, ["backtest", "sma_cross", "--cash", cash])  # refused before Prefect starts
    assert_refused(on_warehouse, tapeflow_home, "--cash must be a finite amount > 0")


@pytest.mark.parametrize(("argv", "message"), [
    (["check-lookahead", "sma_cross", "--cuts", "0"], "--cuts must be at least 1, got 0: e.g. --cuts 20"),
    (["check-lookahead", "sma_cross", "--cuts", "-3"], "--cuts must be at least 1, got -3"),
    (["backtest", "sma_cross", "--costs", "cheap"],
     "unknown cost preset 'cheap'; known: retail-default, liquid-etf, large-cap, small-cap, flat-commission, none"),
    (["backtest", "sma_cross", "--start", "2011-01-03"], "--start must be on or before --end (2010-08-20), got 2011-01-03"),
    (["backtest", "sma_cross", "--stop-loss-pct", "1.5"],
     "--stop-loss-pct must be a fraction within (0, 1), got 1.5: e.g. --stop-loss-pct 0.02"),
])
def test_other_options_are_checked_before_anything_runs(argv, message, tapeflow_home):
    assert_refused(runner.invoke(app, argv), tapeflow_home, message)


def test_a_parameter_that_is_not_finite_is_refused(tapeflow_home):
    result = runner.invoke(app, ["backtest", "sma_cross", "-p", "fast=inf"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--param fast takes a finite number, got 'inf'" in " ".join(result.output.split())


def test_a_list_in_a_cell_is_refused(bars, tmp_path, tapeflow_home):
    path = write(bars.with_columns(pl.concat_list("open", "high").alias("open")), tmp_path / "bars.parquet")
    assert_refused(backtest(path, tmp_path / "fills.parquet"), tapeflow_home, "open in", "holds List(Float64) values")


def test_a_stop_loss_from_the_command_line_protects_each_entry(bars, tmp_path, tapeflow_home):
    path = write(bars, tmp_path / "bars.parquet")
    plain = backtest(path, tmp_path / "plain.parquet")
    stopped = backtest(path, tmp_path / "stopped.parquet", "--stop-loss-pct", "0.01")
    assert plain.exit_code == 0 and stopped.exit_code == 0, stopped.output
    ids = pl.read_parquet(tmp_path / "stopped.parquet")["order_id"]
    assert ids.str.contains("-stop").any()  # stops were placed and some filled
    assert not pl.read_parquet(tmp_path / "plain.parquet")["order_id"].str.contains("-stop").any()
