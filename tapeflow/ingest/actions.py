"""Corporate-action batches: the checks that split what a source reported into actions to
store and rows to quarantine.

A stored action must be one a backtest can apply or at least name: a split carries its
share ratio, a cash distribution its amount (or the share of value the price keeps), and
every action the instant it became knowable, never later than when tapeflow first saw it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import polars as pl

from tapeflow.ingest.bars import instants
from tapeflow.model import SYMBOL_PATTERN, SYMBOL_RULE, ActionKind
from tapeflow.schemas import ACTION_KEY, ACTION_SCHEMA

KINDS = tuple(kind.value for kind in ActionKind)
SPLITS = (ActionKind.SPLIT.value, ActionKind.REVERSE_SPLIT.value)
CASH = (ActionKind.CASH_DIVIDEND.value, ActionKind.SPECIAL_DISTRIBUTION.value)


@dataclass(frozen=True)
class CheckedActions:
    """A batch split in two: `good` in ACTION_SCHEMA, `rejected` as (source, reason, payload)."""

    good: pl.DataFrame
    rejected: pl.DataFrame


def payload_hash(payload: str) -> str:
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _dates(column: pl.Series) -> tuple[pl.Series, pl.Series]:
    """ex_date as dates, plus a problem text per row (null when fine)."""
    if column.dtype == pl.Date:
        dates = column
    elif isinstance(column.dtype, pl.Datetime):
        dates = column.dt.date()
    else:
        dates = column.cast(pl.String).str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
    problem = pl.select(
        pl.when(pl.lit(dates).is_null()).then(pl.lit("ex_date is missing or not a YYYY-MM-DD date"))
    ).to_series()
    return dates.alias("ex_date"), problem


def _rules() -> list[tuple[pl.Expr, str]]:
    """(condition that is true for a bad row, reason)."""
    symbol, kind = pl.col("symbol"), pl.col("kind")
    ratio, amount, factor = pl.col("ratio"), pl.col("amount"), pl.col("price_factor")
    return [
        (symbol.is_null() | (symbol == ""), "symbol is missing"),
        ((symbol != "") & ~symbol.str.contains(SYMBOL_PATTERN), SYMBOL_RULE),
        (kind.is_null() | ~kind.is_in(KINDS), f"kind must be one of {', '.join(KINDS)}"),
        (kind.is_in(SPLITS) & (ratio.is_null() | ~ratio.is_finite() | (ratio <= 0)),
         "a split needs its ratio: new shares per old share, > 0"),
        ((kind == ActionKind.SPLIT.value) & (ratio < 1), "a split's ratio is above 1 (new shares per old); below 1 is a reverse split"),
        ((kind == ActionKind.REVERSE_SPLIT.value) & (ratio >= 1), "a reverse split's ratio is below 1 (0.1 for 1-for-10)"),
        (kind.is_in(CASH) & amount.is_null() & factor.is_null(), "a cash distribution needs its amount per share"),
        (amount.is_not_null() & (~amount.is_finite() | (amount <= 0)), "amount must be a positive number of dollars per share"),
        (factor.is_not_null() & (~factor.is_finite() | (factor <= 0) | (factor >= 1)),
         "price_factor must be within (0, 1): the share of its value a share keeps"),
        (pl.col("knowable_at") > pl.col("fetched_at"), "knowable_at is after fetched_at: an action cannot be known after it was seen"),
        (pl.col("source").is_null() | (pl.col("source") == ""), "source must be named"),
    ]


def check_actions(raw: pl.DataFrame) -> CheckedActions:
    """Split a source's corporate-action batch into storable rows and rejected rows with their reasons."""
    needed = [c for c in ACTION_SCHEMA if c != "payload_hash"]
    missing = [c for c in needed if c not in raw.columns]
    if missing:
        raise ValueError(f"corporate-action batch lacks columns {missing}")
    ex_date, date_problem = _dates(raw["ex_date"])
    knowable, knowable_problem = instants(raw, "knowable_at")
    fetched, fetched_problem = instants(raw, "fetched_at")
    source_problem = raw["problem"].cast(pl.String) if "problem" in raw.columns else pl.repeat(
        None, raw.height, dtype=pl.String, eager=True)
    plain = [c for c in ACTION_SCHEMA if c not in ("ex_date", "knowable_at", "fetched_at", "payload_hash")]
    frame = raw.select(needed).with_columns(
        ex_date, knowable, fetched,
        *(pl.col(c).cast(ACTION_SCHEMA[c], strict=False) for c in plain),
        pl.Series("payload_hash", [payload_hash(p or "") for p in raw["payload"].cast(pl.String).to_list()],
                  dtype=pl.String),
        source_problem.alias("_source"), date_problem.alias("_date"),
        knowable_problem.alias("_knowable"), fetched_problem.alias("_fetched"),
    )
    reasons = [pl.col("_source"), pl.col("_date"), pl.col("_knowable"), pl.col("_fetched")] + [
        pl.when(bad.fill_null(False)).then(pl.lit(reason)) for bad, reason in _rules()]
    frame = frame.with_columns(pl.concat_str(reasons, separator="; ", ignore_nulls=True).alias("reason"))
    frame = frame.with_columns(pl.when(pl.col("reason") == "").then(None).otherwise("reason").alias("reason"))
    # One action reported twice in a batch (a vendor page overlap) is stored once.
    ok = pl.col("reason").is_null()
    frame = frame.with_row_index("_row").with_columns(
        pl.when(ok & (pl.col("_row").rank("ordinal").over([*ACTION_KEY, pl.col("reason").is_null()]) > 1))
        .then(pl.lit("duplicate of an earlier row in the same batch")).otherwise("reason").alias("reason"))
    rejected = frame.filter(pl.col("reason").is_not_null()).select(
        pl.when(pl.col("source") != "").then("source").otherwise(pl.lit("unknown")).fill_null("unknown").alias("source"),
        "reason", pl.col("payload").fill_null(""))
    good = frame.filter(pl.col("reason").is_null()).select(*ACTION_SCHEMA)
    return CheckedActions(good=good, rejected=rejected)
