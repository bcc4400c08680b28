"""Watchlist batches as polars frames: the shape watchlist sources produce, and the checks
that split a batch into snapshot rows to store and rows to quarantine.

The checks are the vectorised twin of `model.WatchlistRow`'s validation, plus the rules the
`watchlist_snapshots` table needs and the model does not state (see `_rules`); a property
test keeps the two in agreement.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from tapeflow.ingest.bars import instants
from tapeflow.model import SYMBOL_PATTERN, SYMBOL_RULE

# The instant parsing is bar_frames' own, so both batch kinds word time problems alike.
from tapeflow.schemas import (
    SESSIONS,
    WATCHLIST_KEY,
    WATCHLIST_RAW_COLUMNS,
    WATCHLIST_SCHEMA,
)

RANK_MAX = 2**31 - 1  # watchlist_snapshots.rank is an INTEGER: a larger rank would fail the insert


@dataclass(frozen=True)
class CheckedWatchlist:
    """A batch split in two: `good` in WATCHLIST_SCHEMA plus payload, `rejected` as (source, reason, payload)."""

    good: pl.DataFrame
    rejected: pl.DataFrame


def _ranks(column: pl.Series) -> pl.Series:
    """Ranks as Int64; a fractional or non-numeric rank becomes null (WatchlistRow wants an int)."""
    if column.dtype.is_integer():
        return column.cast(pl.Int64, strict=False)
    if column.dtype.is_float():
        # Tolerated for frames that lost their int dtype; a plain cast would truncate 1.5 to 1.
        whole = pl.when(pl.lit(column) == pl.lit(column).floor()).then(pl.lit(column).cast(pl.Int64, strict=False))
        return pl.select(whole.alias(column.name)).to_series()
    return pl.Series(column.name, [None] * len(column), dtype=pl.Int64)  # text "1" is not a rank


def _rules() -> list[tuple[pl.Expr, str]]:
    """(condition that is true for a bad row, reason), in the order `WatchlistRow` checks them,
    then the rules the warehouse needs that the model does not state."""
    ticker, rank, score = pl.col("ticker"), pl.col("rank"), pl.col("score")
    session, source, digest = pl.col("session"), pl.col("source"), pl.col("payload_hash")
    return [
        (ticker.is_null() | (ticker == ""), "ticker is missing"),
        ((ticker != "") & ~ticker.str.contains(SYMBOL_PATTERN), SYMBOL_RULE.replace("symbol", "ticker", 1)),
        (rank.is_null(), "rank is missing or not an integer"),
        (rank < 1, "rank must be an integer >= 1"),
        (score.is_null(), "score is missing or not a number"),
        (~score.is_finite(), "score is not a finite number"),
        (score.is_finite() & ((score < 0) | (score > 100)), "score must be within 0..100"),
        (pl.col("fetched_at") < pl.col("as_of"), "fetched_at is before as_of: a snapshot cannot be seen before it exists"),
        # Not in WatchlistRow: the table's session column, its INTEGER rank and NOT NULL columns.
        (session.is_null() | (session == ""), "session is missing"),
        ((session != "") & ~session.is_in(SESSIONS), f"session must be one of {', '.join(SESSIONS)}"),
        (rank > RANK_MAX, f"rank must be <= {RANK_MAX}"),
        (source.is_null() | (source == ""), "source must be named"),
        (digest.is_null() | (digest == ""), "payload_hash is missing"),
    ]


def check_watchlist(raw: pl.DataFrame) -> CheckedWatchlist:
    """Split a source's watchlist batch into storable rows and rejected rows with their reasons."""
    missing = [c for c in WATCHLIST_RAW_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"watchlist batch lacks columns {missing}")
    as_of, as_of_problem = instants(raw, "as_of")
    fetched_at, fetched_problem = instants(raw, "fetched_at")
    problem = (
        raw["problem"].cast(pl.String)
        if "problem" in raw.columns
        else pl.repeat(None, raw.height, dtype=pl.String, eager=True)
    )
    plain = [c for c in WATCHLIST_SCHEMA if c not in ("as_of", "fetched_at", "rank")]
    frame = raw.select(WATCHLIST_RAW_COLUMNS).with_columns(
        as_of,
        fetched_at,
        _ranks(raw["rank"]).alias("rank"),
        *(pl.col(c).cast(WATCHLIST_SCHEMA[c], strict=False) for c in plain),
        as_of_problem.alias("_as_of_problem"),
        fetched_problem.alias("_fetched_problem"),
        problem.alias("_source_problem"),
    )
    # A source that could not date a snapshot has said why; "as_of is missing" would only repeat it.
    undated_by_source = pl.col("_source_problem").is_not_null() & pl.col("as_of").is_null()
    reasons = [
        pl.col("_source_problem"),
        pl.when(~undated_by_source).then(pl.col("_as_of_problem")),
        pl.col("_fetched_problem"),
    ] + [pl.when(bad.fill_null(False)).then(pl.lit(reason)) for bad, reason in _rules()]
    frame = frame.with_columns(pl.concat_str(reasons, separator="; ", ignore_nulls=True).alias("reason"))
    frame = frame.with_columns(pl.when(pl.col("reason") == "").then(None).otherwise("reason").alias("reason"))
    frame = _flag_duplicates(frame)

    rejected = frame.filter(pl.col("reason").is_not_null()).select(
        pl.when(pl.col("source") != "").then("source").otherwise(pl.lit("unknown")).alias("source"), "reason", "payload"
    )
    # The row's own payload is stored with it: BullAlert's entry, or the scanner's components.
    good = frame.filter(pl.col("reason").is_null()).select(*WATCHLIST_SCHEMA, "payload")
    return CheckedWatchlist(good=good, rejected=rejected)


def _flag_duplicates(frame: pl.DataFrame) -> pl.DataFrame:
    """A ticker listed twice in one snapshot: same rank and score keeps the first; different
    rank or score refuses all copies (which one the source meant is unknowable)."""
    valid = pl.col("reason").is_null()
    # Only rows that passed every other check take part: a bad row cannot shadow a good one.
    # fetched_at and payload_hash are left out: the same snapshot fetched twice is one listing.
    group = [*WATCHLIST_KEY, "_valid"]
    frame = frame.with_row_index("_row").with_columns(valid.alias("_valid")).with_columns(
        pl.len().over(group).alias("_copies"),
        pl.struct("rank", "score").n_unique().over(group).alias("_versions"),
        pl.col("_row").rank("ordinal").over(group).alias("_nth"),
    )
    frame = frame.with_columns(
        pl.when(valid & (pl.col("_copies") > 1) & (pl.col("_versions") > 1))
        .then(pl.lit("conflicting rank/score for the same ticker in one snapshot"))
        .when(valid & (pl.col("_copies") > 1) & (pl.col("_nth") > 1))
        .then(pl.lit("duplicate of an earlier row in the same snapshot"))
        .otherwise(pl.col("reason"))
        .alias("reason")
    )
    return frame.drop("_row", "_valid", "_copies", "_versions", "_nth")
