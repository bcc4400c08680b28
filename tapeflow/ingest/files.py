"""Bars from a user's own files (`ingest --files`): CSV, CSV.gz or Parquet, in the `--bars`
column layout or Polygon's flat-file aggregates, read into one batch for `check_bars`."""

from __future__ import annotations

import glob
import gzip
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

import polars as pl

from tapeflow.ingest.bar_table import BarFileRefused, raw_batch, read_bar_table
from tapeflow.ingest.bars import check_bars
from tapeflow.ingest.store import BARS, IngestCounts, store_batch
from tapeflow.model import MAX_DAY_SPAN, MINUTE_SPAN, Adjustment, Timeframe
from tapeflow.schemas import RAW_COLUMNS, UTC_TS
from warehouse import Warehouse

FILES_SOURCE = "files"
POLYGON_COLUMNS = ("ticker", "volume", "open", "close", "high", "low", "window_start", "transactions")
# Polygon's types; a file whose cells do not fit is read again as text so that each bad row is quarantined.
_POLYGON_TYPES: dict[str, pl.DataType] = {
    "ticker": pl.String(), "volume": pl.Float64(), "open": pl.Float64(), "close": pl.Float64(),
    "high": pl.Float64(), "low": pl.Float64(), "window_start": pl.Int64(), "transactions": pl.Float64(),
}
_LAYOUTS = "the --bars columns (symbol, ts, open, high, low, close, volume) or Polygon's flat files " \
           f"({','.join(POLYGON_COLUMNS)})"


class Layout(StrEnum):
    """Which columns a file carries, told from its header."""

    BARS = "bars"  # the column layout of `backtest --bars`
    POLYGON = "polygon"  # Polygon flat-file aggregates, window_start in nanoseconds since the epoch (UTC)


class FilesRefused(ValueError):
    """The files cannot be ingested; the message is one line naming the problem and the fix."""


def find_files(pattern: str) -> list[Path]:
    """The files a path or glob names, sorted; refused when it names none or a folder."""
    has_glob = any(ch in pattern for ch in "*?[")
    paths = sorted(Path(p) for p in glob.glob(pattern, recursive=True)) if has_glob else [Path(pattern)]
    paths = [p for p in paths if not (has_glob and p.is_dir())]
    if not paths:
        raise FilesRefused(f"no files match {pattern}: check the path or glob (quote it so the shell leaves it alone)")
    for path in paths:
        if not path.exists():
            raise FilesRefused(f"no file at {path}: check the path")
        if path.is_dir():
            raise FilesRefused(f"{path} is a folder: give a file or a glob such as '{path}/*.csv.gz'")
    return paths


def _is_parquet(path: Path, head: bytes) -> bool:
    return path.suffix == ".parquet" or head == b"PAR1"


def header(path: Path) -> list[str]:
    """The column names of a Parquet, CSV or gzipped CSV file."""
    try:
        with path.open("rb") as file:
            head = file.read(4)
        if _is_parquet(path, head):
            return list(pl.read_parquet_schema(path))
        opener = gzip.open if head[:2] == b"\x1f\x8b" else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as text:
            return [name.strip().strip('"') for name in text.readline().strip().split(",")]
    except (OSError, EOFError, pl.exceptions.PolarsError) as exc:
        why = getattr(exc, "strerror", None) or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise FilesRefused(f"cannot read {path} ({why}): give a readable CSV, CSV.gz or Parquet file") from None


def detect_layout(path: Path) -> Layout:
    """The file's layout, from its header; refused when it is neither."""
    names = set(header(path))
    if set(POLYGON_COLUMNS) <= names:
        return Layout.POLYGON
    if {"symbol", "ts", "open", "high", "low", "close", "volume"} <= names:
        return Layout.BARS
    shown = ", ".join(sorted(names)[:8]) or "no columns"
    raise FilesRefused(f"{path} has an unknown layout ({shown}): give {_LAYOUTS}")


def _span(timeframe: Timeframe) -> pl.Expr:
    # A daily bar's end is not in the file: the longest span a day bar may have, so it is never knowable early.
    return pl.lit(MINUTE_SPAN if timeframe is Timeframe.MINUTE else MAX_DAY_SPAN)


def _read_polygon(path: Path) -> pl.DataFrame:
    """A Polygon file, typed; as text when some cell does not fit its type (the checks then name the row)."""
    with path.open("rb") as file:
        parquet = _is_parquet(path, file.read(4))
    try:
        if parquet:
            return pl.read_parquet(path, columns=list(POLYGON_COLUMNS))
        return pl.read_csv(path, columns=list(POLYGON_COLUMNS), schema_overrides=_POLYGON_TYPES)
    except pl.exceptions.ComputeError:
        return pl.read_csv(path, columns=list(POLYGON_COLUMNS), infer_schema=False)


def _polygon_batch(path: Path, timeframe: Timeframe) -> pl.DataFrame:
    """Polygon aggregates as a raw batch: window_start (ns, UTC) is the bar start, transactions its trade count."""
    frame = _read_polygon(path)
    epoch = pl.col("window_start").cast(pl.Int64, strict=False)
    ts = pl.from_epoch(epoch, time_unit="ns").dt.replace_time_zone("UTC").cast(UTC_TS)
    unparsed = pl.col("window_start").is_not_null() & epoch.is_null()
    return frame.select(
        pl.col("ticker").cast(pl.String).alias("symbol"),
        pl.lit(timeframe.value).alias("timeframe"),
        ts.alias("ts"),
        (ts + _span(timeframe)).alias("end_ts"),
        *(pl.col(c) for c in ("open", "high", "low", "close", "volume")),
        pl.lit(None, dtype=pl.Float64).alias("vwap"),
        pl.col("transactions").alias("trade_count"),
        pl.lit(Adjustment.RAW.value).alias("adjustment"),  # flat files are not adjusted for splits
        pl.lit(f"file:{path.name}").alias("source"),
        pl.lit(None, dtype=pl.String).alias("payload"),
        pl.when(unparsed).then(pl.lit("window_start is not a nanosecond epoch")).alias("problem"),
    )


def _bars_batch(path: Path, timeframe: Timeframe) -> pl.DataFrame:
    """A file in the `--bars` layout, read and shaped by the reader `backtest --bars` uses."""
    try:
        frame = read_bar_table(path)
        return raw_batch(frame, path, timeframe)
    except BarFileRefused as refused:
        raise FilesRefused(str(refused)) from None


def read_files(paths: list[Path], timeframe: Timeframe) -> pl.DataFrame:
    """Every row of `paths` as one raw batch (RAW_COLUMNS plus `problem`), ready for `check_bars`."""
    batches = []
    for path in paths:
        layout = detect_layout(path)
        batch = _polygon_batch(path, timeframe) if layout is Layout.POLYGON else _bars_batch(path, timeframe)
        batches.append(batch.select(*RAW_COLUMNS, "problem"))
    return pl.concat(batches, how="vertical_relaxed")


def ingest_files(warehouse: Warehouse, paths: list[Path], timeframe: Timeframe, *, run_id: str) -> IngestCounts:
    """Read, check and store the bars of `paths` in one transaction, recorded as an ingest run of source `files`."""
    started_at = datetime.now(UTC)
    # A row's number stands in for its payload through the checks: only refused rows are written out as JSON.
    raw = read_files(paths, timeframe).drop("payload").with_row_index("payload")
    checked = check_bars(raw)
    rows = raw.drop("payload", "problem")[checked.rejected["payload"]]
    payloads = rows.select(pl.struct(pl.all()).struct.json_encode()).to_series().alias("payload")
    rejected = checked.rejected.with_columns(payloads)
    return store_batch(
        warehouse, BARS, checked.good, rejected, run_id=run_id, source=FILES_SOURCE,
        feed=f"bars:{timeframe.value}", params={"files": [str(p) for p in paths], "timeframe": timeframe.value},
        started_at=started_at,
    )
