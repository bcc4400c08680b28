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

from tapeflow.ingest.bar_table import OPTIONAL, REQUIRED, SHAPE, BarFileRefused, raw_batch, read_bar_table
from tapeflow.ingest.bars import check_bars
from tapeflow.model import MAX_DAY_SPAN, MINUTE_SPAN, Timeframe
from tapeflow.strategy.history import History

__all__ = ["BarFile", "BarFileRefused", "load_bar_file", "reason_counts"]

SHOWN_REASONS = 8
# The value a parse reason quotes, e.g. "(2024-01-02 14:30:00)": left out so that rows group by reason.
_QUOTED_VALUE = re.compile(r" \((?=[^)]*[\d'\"])[^)]*\)")


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
    frame = read_bar_table(path)
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
    checked = check_bars(raw_batch(frame, path, timeframe))
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
