"""Raw bar rows from vendor JSON, shared by the REST adapters: numbers exactly as JSON gave
them, bar starts from epoch stamps, one row for an answer that could not be read, and the
batch frame with daily bars placed on their session."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from tapeflow.model import Adjustment, Timeframe
from tapeflow.sources.base import daily_bounds, empty_raw_bars

PAYLOAD_CHARS = 20_000
"""How much of an unreadable answer the quarantine keeps."""
DAY = "_day"
"""Working column: the session date of a daily bar, replaced by its open and close."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def json_float(value: Any) -> float | None:
    """A JSON number as float; text or booleans become null, and check_bars says why."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def json_int(value: Any) -> int | None:
    """A JSON integer (or an integral float) within int64, else null."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return value
    return None


def epoch_start(value: Any, unit: timedelta, label: str) -> tuple[datetime | None, str | None]:
    """A bar start from an epoch stamp counted in `unit`, or why there is none."""
    count = json_int(value)
    if count is None:
        return None, f"{label} is missing or not an integer: {value!r}"
    try:
        return EPOCH + count * unit, None
    except OverflowError:
        return None, f"{label} is out of range: {value!r}"


def empty_row(source: str, symbol: str | None, timeframe: Timeframe) -> dict[str, Any]:
    return {"symbol": symbol, "timeframe": timeframe.value, "source": source, "adjustment": Adjustment.UNKNOWN.value}


def broken_row(source: str, symbol: str | None, timeframe: Timeframe, text: str, problem: str) -> dict[str, Any]:
    """The one raw row that stands for an answer (or bar) that could not be read."""
    return {**empty_row(source, symbol, timeframe), "payload": text[:PAYLOAD_CHARS], "problem": problem}


def raw_frame(rows: list[dict[str, Any]], timeframe: Timeframe) -> pl.DataFrame:
    """Row dicts as a raw batch; daily bars (dated in DAY) get their session's open and close."""
    schema = empty_raw_bars().schema
    frame = pl.DataFrame(rows, schema={**schema, DAY: pl.Date})
    if timeframe is Timeframe.DAY:
        bounds = daily_bounds(frame[DAY])
        both = pl.concat_str([pl.col("problem"), bounds["problem"]], separator="; ", ignore_nulls=True)
        frame = frame.with_columns(
            pl.when(frame[DAY].is_not_null()).then(bounds["ts"]).otherwise(pl.col("ts")).alias("ts"),
            pl.when(frame[DAY].is_not_null()).then(bounds["end_ts"]).otherwise(pl.col("end_ts")).alias("end_ts"),
            pl.when(both != "").then(both).alias("problem"),
        )
    return frame.select(schema.names())
