"""Reading a user's bars table (Parquet or CSV, the `--bars` column layout) into the shape a
source hands to `check_bars`; shared by `backtest --bars` and `ingest --files`."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from tapeflow.ingest.bars import instants
from tapeflow.model import MAX_DAY_SPAN, MINUTE_SPAN, Adjustment, Timeframe
from tapeflow.schemas import PRICES

REQUIRED = ("symbol", "ts", *PRICES, "volume")
OPTIONAL = ("end_ts", "timeframe", "vwap", "trade_count", "adjustment")
SHAPE = "a bars file needs the columns symbol, ts, open, high, low, close, volume (end_ts optional)"
ZONED = "give timestamps a time zone, e.g. 2024-01-02T14:30:00Z in a CSV or a UTC-zoned Parquet column"


class BarFileRefused(ValueError):
    """The file gives nothing to run on; the message is one line naming the problem and the fix."""


def read_bar_table(path: Path) -> pl.DataFrame:
    """The file as a frame, Parquet (by suffix or content) or CSV; refused in one line when it is neither."""
    if not path.exists():
        raise BarFileRefused(f"no bars file at {path}: check the path")
    if path.is_dir():
        raise BarFileRefused(f"{path} is a folder: give --bars one Parquet or CSV file")
    try:
        with path.open("rb") as file:
            head = file.read(4)
    except OSError as exc:
        raise BarFileRefused(f"cannot open {path} ({exc.strerror or type(exc).__name__}): check its permissions") from None
    if not head:
        raise BarFileRefused(f"{path} is empty (0 bytes): {SHAPE}, with a header and one row per bar")
    parquet = path.suffix == ".parquet" or head == b"PAR1"
    try:
        if parquet:
            return pl.read_parquet(path)
        # The whole file decides each column's type: a float after 100 whole numbers must not fail the read.
        return pl.read_csv(path, try_parse_dates=True, infer_schema_length=None)
    except pl.exceptions.NoDataError:
        raise BarFileRefused(f"{path} holds no data: {SHAPE}, with a header and one row per bar") from None
    except (pl.exceptions.PolarsError, OSError) as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BarFileRefused(f"cannot read {path} as {'Parquet' if parquet else 'CSV'} ({why}): "
                             "write it again as Parquet, or as CSV with a header row") from None


def _instants(frame: pl.DataFrame, name: str, path: Path) -> tuple[pl.Series, pl.Series]:
    """Column `name` as UTC instants, and why a value given did not parse (null otherwise);
    a column without a time zone refuses the file."""
    column = frame[name]
    if column.dtype == pl.Date or (isinstance(column.dtype, pl.Datetime) and column.dtype.time_zone is None):
        raise BarFileRefused(f"{name} in {path} has no time zone: {ZONED}")
    if not isinstance(column.dtype, pl.Datetime) and column.dtype not in (pl.String, pl.Null):
        raise BarFileRefused(f"{name} in {path} holds {column.dtype} values, not timestamps: {ZONED}")
    values, problems = instants(frame, name)
    # A value not given is check_bars's to name ("ts is missing"); a value given and unparsed is ours.
    return values, problems.zip_with(column.is_not_null(), pl.Series([None] * frame.height, dtype=pl.String))


def raw_batch(frame: pl.DataFrame, path: Path, timeframe: Timeframe) -> pl.DataFrame:
    """The file's rows in the shape a source hands to `check_bars`, instants parsed by ingest's own parser;
    `problem` says why an instant did not parse, which check_bars reports in place of "ts is missing"."""

    def given(name: str, default: object = None) -> pl.Expr:
        return (pl.col(name) if name in frame.columns else pl.lit(default)).alias(name)

    ts, problem = _instants(frame, "ts", path)
    batch = frame.select(
        pl.col("symbol").cast(pl.String),
        given("timeframe", timeframe.value).cast(pl.String),
        *(pl.col(c) for c in (*PRICES, "volume")),
        given("vwap"),
        given("trade_count"),
        given("adjustment", Adjustment.UNKNOWN.value),
        pl.lit(f"file:{path.name}").alias("source"),
        pl.lit(None, dtype=pl.String).alias("payload"),
    ).with_columns(ts.alias("ts"))
    if "end_ts" in frame.columns:
        end_ts, end_problem = _instants(frame, "end_ts", path)
        return batch.with_columns(end_ts.alias("end_ts"), problem.fill_null(end_problem).alias("problem"))
    # Only for the checks: a bar without an end is given the longest span its timeframe allows;
    # the History's ends are the next bars' starts (`_ends_at_next_start`).
    longest = pl.when(pl.col("timeframe") == Timeframe.MINUTE.value).then(pl.lit(MINUTE_SPAN)).otherwise(pl.lit(MAX_DAY_SPAN))
    return batch.with_columns((pl.col("ts") + longest).alias("end_ts"), problem.alias("problem"))
