"""Universe batches: the checks that split universe records and membership rows into rows to
store and rows to quarantine, and the one transaction that stores them.

A stored membership must say when it held (from_date .. to_date, New York days) and when it
became knowable (an aware instant); a universe must say its survivorship, since a report
repeats it next to the numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from tapeflow.ingest.bars import instants
from tapeflow.ingest.store import IngestCounts
from tapeflow.model import SYMBOL_PATTERN, SYMBOL_RULE
from tapeflow.schemas import UTC_TS
from tapeflow.sources.universe import Survivorship
from warehouse import Warehouse
from warehouse.quarantine import quarantine
from warehouse.upsert import upsert

RECORD_KEY = ("universe",)
MEMBER_KEY = ("universe", "symbol", "from_date")
SURVIVORSHIPS = tuple(s.value for s in Survivorship)


@dataclass(frozen=True)
class CheckedUniverses:
    """Records and members to store (the tables' columns, `recorded_at` aside), and the rows
    refused as (source, reason, payload)."""

    records: pl.DataFrame
    members: pl.DataFrame
    rejected: pl.DataFrame


def _missing(column: str) -> pl.Expr:
    return pl.col(column).is_null() | (pl.col(column).str.strip_chars() == "")


def _dates(column: pl.Series) -> pl.Series:
    return column.cast(pl.String).str.strip_chars().str.to_date("%Y-%m-%d", strict=False)


def _refused(frame: pl.DataFrame, columns: tuple[str, ...]) -> pl.DataFrame:
    """The rows with a reason, as the quarantine stores them: the row as it came, in JSON."""
    bad = frame.filter(pl.col("reason").is_not_null())
    payloads = [json.dumps(row, default=str) for row in bad.select(columns).iter_rows(named=True)]
    return pl.DataFrame({
        "source": bad["source"].fill_null("unknown").replace("", "unknown"),
        "reason": bad["reason"],
        "payload": pl.Series(payloads, dtype=pl.String),
    })


def _with_reasons(frame: pl.DataFrame, rules: list[tuple[pl.Expr, str]], key: tuple[str, ...]) -> pl.DataFrame:
    """`reason`: every broken rule joined, or null; a key repeated within the batch is refused after its first row."""
    reasons = [pl.when(bad.fill_null(False)).then(pl.lit(why)) for bad, why in rules]
    frame = frame.with_columns(pl.concat_str(reasons, separator="; ", ignore_nulls=True).alias("reason"))
    frame = frame.with_columns(pl.when(pl.col("reason") == "").then(None).otherwise("reason").alias("reason"))
    first = pl.int_range(pl.len()).over([*key, pl.col("reason").is_null()]) == 0
    return frame.with_columns(
        pl.when(pl.col("reason").is_null() & ~first).then(pl.lit("duplicate of an earlier row in the same batch"))
        .otherwise("reason").alias("reason"))


def check_universes(records: pl.DataFrame, members: pl.DataFrame) -> CheckedUniverses:
    """Split a batch of universe records and membership rows (text columns) into good and refused."""
    record_cols = ("universe", "description", "survivorship", "source")
    member_cols = ("universe", "symbol", "from_date", "to_date", "knowable_at", "source")
    records = records.select(pl.col(c).cast(pl.String) for c in record_cols)
    checked_records = _with_reasons(records, [
        (_missing("universe"), "universe must be named"),
        (_missing("description"), "description is missing: a report states it"),
        (pl.col("survivorship").is_null() | ~pl.col("survivorship").is_in(SURVIVORSHIPS),
         f"survivorship must be one of {', '.join(SURVIVORSHIPS)}"),
        (_missing("source"), "source must be named"),
    ], RECORD_KEY)
    good_records = checked_records.filter(pl.col("reason").is_null()).select(record_cols)

    raw = members.select(pl.col(c).cast(pl.String) for c in member_cols)
    knowable, knowable_problem = instants(raw, "knowable_at")
    parsed = raw.with_columns(
        pl.col("symbol").str.strip_chars(),
        _dates(raw["from_date"]).alias("_from"),
        _dates(raw["to_date"]).alias("_to"),
        knowable.alias("_knowable"),
        knowable_problem.alias("_knowable_problem"),
    )
    checked_members = _with_reasons(parsed, [
        (pl.col("universe").is_null() | ~pl.col("universe").is_in(good_records["universe"].implode()),
         "its universe has no good record in universes.csv"),
        (_missing("symbol"), "symbol is missing"),
        (~_missing("symbol") & ~pl.col("symbol").str.contains(SYMBOL_PATTERN), SYMBOL_RULE),
        (pl.col("_from").is_null(), "from_date is missing or not a YYYY-MM-DD date"),
        (~_missing("to_date") & pl.col("_to").is_null(), "to_date is not a YYYY-MM-DD date (leave it empty: still a member)"),
        (pl.col("_to") < pl.col("_from"), "to_date is before from_date"),
        (pl.col("_knowable_problem").is_not_null(), "knowable_at must be an ISO-8601 instant with its offset"),
        (_missing("source"), "source must be named"),
    ], MEMBER_KEY)
    good_members = checked_members.filter(pl.col("reason").is_null()).select(
        "universe", "symbol", pl.col("_from").alias("from_date"), pl.col("_to").alias("to_date"),
        pl.col("_knowable").cast(UTC_TS).alias("knowable_at"), "source")
    rejected = pl.concat([_refused(checked_records, record_cols), _refused(checked_members, member_cols)])
    return CheckedUniverses(good_records, good_members, rejected)


def store_universes(warehouse: Warehouse, checked: CheckedUniverses, *, run_id: str, source: str,
                    params: dict[str, object], started_at: datetime) -> IngestCounts:
    """Upsert the records and members, quarantine the refused rows and record the run, in one
    transaction; a record's `recorded_at` is when it was first stored."""
    now = datetime.now(UTC)
    records = checked.records.with_columns(pl.lit(now).cast(UTC_TS).alias("recorded_at"))
    with warehouse.write() as con:
        stored_records = upsert(con, "universes", records, RECORD_KEY, bookkeeping=("recorded_at",))
        stored_members = upsert(con, "universe_members", checked.members, MEMBER_KEY)
        quarantine(con, checked.rejected, kind="universe", received_at=now)
        counts = IngestCounts(
            inserted=stored_records.inserted + stored_members.inserted,
            updated=stored_records.updated + stored_members.updated,
            unchanged=stored_records.unchanged + stored_members.unchanged,
            fetched=records.height + checked.members.height + checked.rejected.height,
            quarantined=checked.rejected.height,
        )
        con.execute(
            # A retried task must not overwrite what the first, committed attempt recorded.
            "INSERT INTO ingest_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [run_id, "universe", source, json.dumps(params, default=str), started_at, now, counts.fetched,
             counts.inserted, counts.updated, counts.unchanged, counts.quarantined],
        )
    return counts
