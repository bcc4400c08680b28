"""A user's bars file (`--bars`): read, its rows checked as ingest checks a batch, ready as a History.

Rows that ingest would quarantine are left out and counted; nothing is stored. A file that
leaves nothing to run on is refused with one line naming the problem and the fix.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from tapeflow.ingest.bars import check_bars, instants
from tapeflow.model import MAX_DAY_SPAN, MINUTE_SPAN, Adjustment, Timeframe
from tapeflow.schemas import PRICES
from tapeflow.strategy.history import History

REQUIRED = ("symbol", "ts", *PRICES, "volume")
OPTIONAL = ("end_ts", "timeframe", "vwap", "trade_count", "adjustment")
SHAPE = "a bars file needs the columns symbol, ts, open, high, low, close, volume (end_ts optional)"
ZONED = "give timestamps a time zone, e.g. 2024-01-02T14:30:00Z in a CSV or a UTC-zoned Parquet column"
SHOWN_REASONS = 8
# The value a parse reason quotes, e.g. "(2024-01-02 14:30:00)": left out so that rows group by reason.
_QUOTED_VALUE = re.compile(r" \((?=[^)]*[\d'\"])[^)]*\)")


class BarFileRefused(ValueError):
    """The file gives nothing to run on; the message is one line naming the problem and the fix."""


@dataclass(frozen=True)
class BarFile:
    """The usable bars of a file, with the rows left out as (source, reason, payload)."""

    history: History
    rows: int  # rows read, of the symbols asked for
    rejected: pl.DataFrame

    def quarantine_line(self) -> str | None:
        """`quarantined 3 of 120 rows: 2 high is below low, 1 ...`, or None when every row was kept."""
        if self.rejected.is_empty():
            return None
        return f"quarantined {self.rejected.height} of {self.rows} rows: {reason_counts(self.rejected)}"


def load_bar_file(path: str | Path, timeframe: Timeframe | str, symbols: Sequence[str] | None = None) -> BarFile:
    """The rows of `path` (of `symbols`, default all) that ingest would store, as a History of `timeframe` bars."""
    path = Path(path)
    timeframe = Timeframe(timeframe)
    frame = _read(path)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise BarFileRefused(f"{path} lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing)}: {SHAPE}")
    nested = [c for c in (*REQUIRED, *OPTIONAL) if c in frame.columns and frame[c].dtype.is_nested()]
    if nested:  # a list or struct in a cell is no value ingest could check
        raise BarFileRefused(f"{nested[0]} in {path} holds {frame[nested[0]].dtype} values: write one value per cell")
    if frame.is_empty():
        raise BarFileRefused(f"{path} has a header but no rows: {SHAPE}, one row per bar")
    if symbols:
        held = frame["symbol"].cast(pl.String).unique().sort().to_list()
        frame = frame.filter(pl.col("symbol").cast(pl.String).is_in(list(symbols)))
        if frame.is_empty():
            raise BarFileRefused(f"{path} has no rows for --symbol {', '.join(symbols)}: it holds {', '.join(map(str, held[:10]))}"
                                 + (", ..." if len(held) > 10 else ""))
    checked = check_bars(_raw_batch(frame, path, timeframe))
    good, rejected = checked.good, checked.rejected
    if "timeframe" in frame.columns:  # one History holds one timeframe: the strategy's
        other = good.filter(pl.col("timeframe") != timeframe.value)
        rejected = pl.concat([rejected, other.select(
            "source", pl.format("a {} bar, but the strategy trades {} bars", "timeframe", pl.lit(timeframe.value)).alias("reason"),
            pl.lit(None, dtype=pl.String).alias("payload"))])
        good = good.filter(pl.col("timeframe") == timeframe.value)
    if good.is_empty():
        raise BarFileRefused(f"no usable bars in {path}: all {frame.height} rows were quarantined "
                             f"({reason_counts(rejected)}); fix or remove them and run again")
    if "end_ts" not in frame.columns:
        good = _ends_at_next_start(good.drop("end_ts"), timeframe)
    return BarFile(history=History(bars=good), rows=frame.height, rejected=rejected)


def reason_counts(rejected: pl.DataFrame) -> str:
    """`2 high is below low, 1 close is not a finite number`: each row under its first reason, the commonest first."""
    counts = Counter(_QUOTED_VALUE.sub("", reason.split("; ")[0]) for reason in rejected["reason"].to_list())
    shown = [f"{n} {reason}" for reason, n in counts.most_common(SHOWN_REASONS)]
    rest = sum(n for _, n in counts.most_common()[SHOWN_REASONS:])
    return ", ".join(shown) + (f", {rest} for other reasons" if rest else "")


def _read(path: Path) -> pl.DataFrame:
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


def _raw_batch(frame: pl.DataFrame, path: Path, timeframe: Timeframe) -> pl.DataFrame:
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


def _ends_at_next_start(bars: pl.DataFrame, timeframe: Timeframe) -> pl.DataFrame:
    """`end_ts` for a file without one: the next bar's start, the last bar's its start plus the
    symbol's median spacing (a lone bar's: the timeframe's longest span)."""
    longest = MINUTE_SPAN if timeframe is Timeframe.MINUTE else MAX_DAY_SPAN
    bars = bars.sort("symbol", "ts")
    step = bars.group_by("symbol").agg(pl.col("ts").diff().median().fill_null(longest).alias("_step"))
    return (
        bars.join(step, on="symbol")
        .with_columns(pl.col("ts").shift(-1).over("symbol").fill_null(pl.col("ts") + pl.col("_step")).alias("end_ts"))
        .drop("_step")
    )
