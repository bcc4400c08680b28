"""Bar batches as polars frames: the shape sources produce, and the checks that split a
batch into rows to store and rows to quarantine.

The checks are the vectorised twin of `model.Bar`'s validation (a property test keeps the
two in agreement): a row is stored only if `Bar(**row)` would accept it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from tapeflow.model import (
    DAY_SPAN_RULE,
    MAX_DAY_SPAN,
    MINUTE_SPAN,
    MINUTE_SPAN_RULE,
    SYMBOL_PATTERN,
    SYMBOL_RULE,
    Adjustment,
    Timeframe,
    parse_instant,
)
from tapeflow.schemas import BAR_KEY, BAR_SCHEMA, PRICES, RAW_COLUMNS, UTC_TS


@dataclass(frozen=True)
class CheckedBars:
    """A batch split in two: `good` in BAR_SCHEMA, `rejected` as (source, reason, payload)."""

    good: pl.DataFrame
    rejected: pl.DataFrame


def instants(frame: pl.DataFrame, name: str) -> tuple[pl.Series, pl.Series]:
    """Column `name` as UTC instants, plus a problem text per row (null when fine)."""
    column = frame[name]
    if isinstance(column.dtype, pl.Datetime):
        if column.dtype.time_zone is None:
            problem = f"{name} is a naive timestamp: a time zone is required"
            return pl.Series(name, [None] * frame.height, dtype=UTC_TS), pl.repeat(
                problem, frame.height, dtype=pl.String, eager=True
            ).alias(name)
        converted = column.dt.convert_time_zone("UTC").cast(UTC_TS)
        return converted, _where(converted.is_null(), f"{name} is missing").alias(name)
    if column.dtype == pl.String or column.dtype == pl.Null:
        values, problems = [], []
        for text in column.cast(pl.String).to_list():
            value, why = parse_instant(name, text)
            values.append(value)
            problems.append(why)
        return pl.Series(name, values, dtype=UTC_TS), pl.Series(name, problems, dtype=pl.String)
    raise TypeError(f"{name} must be a datetime or ISO-8601 text column, got {column.dtype}")


def _rules() -> list[tuple[pl.Expr, str]]:
    """(condition that is true for a bad row, reason), in the order `model.Bar` checks them."""
    symbol = pl.col("symbol")
    rules: list[tuple[pl.Expr, str]] = [
        (symbol.is_null() | (symbol == ""), "symbol is missing"),
        ((symbol != "") & ~symbol.str.contains(SYMBOL_PATTERN), SYMBOL_RULE),
        (~pl.col("timeframe").is_in([t.value for t in Timeframe]).fill_null(False), "unknown timeframe"),
        (
            ~pl.col("adjustment").is_in([a.value for a in Adjustment]).fill_null(False),
            "unknown price adjustment",
        ),
        (pl.col("end_ts") <= pl.col("ts"), "bar end is not after its start"),
        (
            (pl.col("timeframe") == Timeframe.MINUTE.value) & (pl.col("end_ts") - pl.col("ts") != MINUTE_SPAN)
            & (pl.col("end_ts") > pl.col("ts")),
            MINUTE_SPAN_RULE,
        ),
        (
            (pl.col("timeframe") == Timeframe.DAY.value) & (pl.col("end_ts") - pl.col("ts") > MAX_DAY_SPAN),
            DAY_SPAN_RULE,
        ),
    ]
    for name in (*PRICES, "volume"):
        value = pl.col(name)
        rules.append((value.is_null(), f"{name} is missing or not a number"))
        rules.append((~value.is_finite(), f"{name} is not a finite number"))
    for name in PRICES:
        rules.append((pl.col(name) <= 0, f"{name} must be > 0"))
    rules += [
        (pl.col("volume") < 0, "volume must be >= 0"),
        (pl.col("high") < pl.col("low"), "high is below low"),
        (
            pl.all_horizontal(pl.col(p).is_finite() for p in PRICES)
            & (
                (pl.col("open") < pl.col("low"))
                | (pl.col("open") > pl.col("high"))
                | (pl.col("close") < pl.col("low"))
                | (pl.col("close") > pl.col("high"))
            ),
            "open/close outside the bar's range",
        ),
        (~pl.col("vwap").is_finite() | (pl.col("vwap") <= 0), "vwap must be a finite number > 0"),
        (pl.col("trade_count") < 0, "trade_count must be >= 0"),
        (pl.col("source").is_null() | (pl.col("source") == ""), "source must be named"),
    ]
    return rules


def _lost_in_parsing(raw: pl.DataFrame, name: str) -> pl.Series:
    """Optional values the vendor sent that are not numbers: refused, never nulled quietly."""
    given = raw[name]
    as_float = given.cast(pl.Float64, strict=False)
    problems = given.is_not_null() & as_float.is_null()
    reason = f"{name} is not a number"
    if name == "trade_count":
        problems = problems | (as_float.is_not_null() & (as_float != as_float.floor()))
        reason = "trade_count is not a whole number"
    return _where(problems, reason).alias(f"_{name}_problem")


def _where(mask: pl.Series, text: str) -> pl.Series:
    """`text` where `mask` is true, null elsewhere: a vectorised column of problems."""
    return pl.select(pl.when(pl.lit(mask)).then(pl.lit(text)).otherwise(pl.lit(None, dtype=pl.String))).to_series()


def check_bars(raw: pl.DataFrame, received_at: datetime | None = None) -> CheckedBars:
    """Split a source's batch into storable bars and rejected rows with their reasons.

    A bar that had not ended by `received_at` (default: now) is refused: it was still forming."""
    received_at = received_at or datetime.now(UTC)
    missing = [c for c in RAW_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"bar batch lacks columns {missing}")
    ts, ts_problem = instants(raw, "ts")
    received_at = received_at.astimezone(UTC)
    end_ts, end_problem = instants(raw, "end_ts")
    problem = raw["problem"].cast(pl.String) if "problem" in raw.columns else pl.repeat(None, raw.height, dtype=pl.String, eager=True)
    frame = raw.select(RAW_COLUMNS).with_columns(
        ts,
        end_ts,
        *(pl.col(c).cast(BAR_SCHEMA[c], strict=False) for c in BAR_SCHEMA if c not in ("ts", "end_ts")),
        ts_problem.alias("_ts_problem"),
        end_problem.alias("_end_problem"),
        problem.alias("_source_problem"),
        _lost_in_parsing(raw, "vwap"),
        _lost_in_parsing(raw, "trade_count"),
    )
    # A source that could not date a row has said why; "ts is missing" would only repeat it.
    undated_by_source = pl.col("_source_problem").is_not_null() & pl.col("ts").is_null()
    # (true for a bad row, its reason); the texts are built only for rows some check refuses.
    checks = [
        (pl.col("_source_problem").is_not_null(), pl.col("_source_problem")),
        (~undated_by_source & pl.col("_ts_problem").is_not_null(), pl.col("_ts_problem")),
        (~undated_by_source & pl.col("_end_problem").is_not_null(), pl.col("_end_problem")),
        (pl.col("_vwap_problem").is_not_null(), pl.col("_vwap_problem")),
        (pl.col("_trade_count_problem").is_not_null(), pl.col("_trade_count_problem")),
        *((bad.fill_null(False), pl.lit(reason)) for bad, reason in _rules()),
        ((pl.col("end_ts") > received_at).fill_null(False),
         pl.lit("bar had not ended when it was received (still forming)")),
    ]
    suspects = frame.select(pl.any_horizontal(bad for bad, _ in checks)).to_series().arg_true()
    reason = pl.repeat(None, frame.height, dtype=pl.String, eager=True)
    if suspects.len():
        texts = frame[suspects].select(
            pl.concat_str([pl.when(bad).then(text) for bad, text in checks], separator="; ", ignore_nulls=True)
        ).to_series()
        reason = reason.scatter(suspects, texts)
    frame = frame.with_columns(reason.alias("reason"))
    frame = frame.with_columns(pl.when(pl.col("reason") == "").then(None).otherwise("reason").alias("reason"))
    frame = _flag_duplicates(frame)

    rejected = frame.filter(pl.col("reason").is_not_null()).select(
        pl.col("source").fill_null("unknown"), "reason", "payload"
    )
    good = frame.filter(pl.col("reason").is_null()).select(list(BAR_SCHEMA))
    return CheckedBars(good=good, rejected=rejected)


def _flag_duplicates(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows sharing a key: exact copies keep the first; conflicting versions are all refused."""
    # Most batches have no shared key at all: the per-group comparison below is then skipped.
    # Distinct key hashes prove distinct keys (a collision only costs the slow path).
    hashes = frame.select(pl.struct(BAR_KEY).hash().n_unique()).item()
    if hashes == frame.height:
        return frame
    values = [c for c in BAR_SCHEMA if c not in BAR_KEY]
    valid = pl.col("reason").is_null()
    # Only rows that passed every other check take part: a bad row cannot shadow a good one.
    group = [*BAR_KEY, "_valid"]
    frame = frame.with_row_index("_row").with_columns(valid.alias("_valid")).with_columns(
        pl.len().over(group).alias("_copies"),
        pl.struct(values).n_unique().over(group).alias("_versions"),
        pl.col("_row").rank("ordinal").over(group).alias("_nth"),
    )
    frame = frame.with_columns(
        pl.when(valid & (pl.col("_copies") > 1) & (pl.col("_versions") > 1))
        .then(pl.lit("conflicting rows for the same (symbol, timeframe, ts) in one batch"))
        .when(valid & (pl.col("_copies") > 1) & (pl.col("_nth") > 1))
        .then(pl.lit("duplicate of an earlier row in the same batch"))
        .otherwise(pl.col("reason"))
        .alias("reason")
    )
    return frame.drop("_row", "_valid", "_copies", "_versions", "_nth")
