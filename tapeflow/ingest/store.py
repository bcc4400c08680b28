"""Storing a checked batch: good rows upserted, rejects quarantined, the run and the source's
freshness recorded, in one transaction, so a crash leaves either all of it or none."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import cast

import duckdb
import polars as pl

from tapeflow.schemas import ACTION_KEY, BAR_KEY, NEWS_KEY, UTC_TS
from warehouse import Warehouse
from warehouse.quarantine import quarantine
from warehouse.upsert import UpsertCounts, upsert


@dataclass(frozen=True)
class IngestCounts(UpsertCounts):
    """What one ingest run did: rows in, new, changed, already there, refused."""

    fetched: int
    quarantined: int

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "stored": self.stored}


@dataclass(frozen=True)
class Target:
    """Where one kind of checked batch goes, and which column says when a row was knowable."""

    kind: str
    table: str
    key: tuple[str, ...]
    bookkeeping: tuple[str, ...]
    knowable: str
    history: str | None = None


BARS = Target("bars", "bars", BAR_KEY, ("ingested_at",), "end_ts", history="bar_revisions")
# A re-fetched snapshot keeps the time it was first seen: that is what a backtest replays.
WATCHLIST = Target(
    "watchlist", "watchlist_snapshots", ("source", "session", "as_of", "ticker"), ("fetched_at", "payload_hash"), "as_of"
)

# An item fetched again keeps the moment it was first seen; a vendor's edit of its text or
# tickers replaces it (the earlier version goes to news_revisions) and is knowable from then.
NEWS = Target(
    "news", "news", NEWS_KEY, ("fetched_at", "payload", "payload_hash"), "published_at",
    history="news_revisions",
)


# A re-reported action keeps the moment it was first seen; a source's correction (another
# ratio or amount) replaces it.
ACTIONS = Target("corporate_actions", "corporate_actions", ACTION_KEY, ("fetched_at", "payload", "payload_hash"),
                 "knowable_at")


def _now() -> datetime:
    return datetime.now(UTC)


def store_batch(
    warehouse: Warehouse,
    target: Target,
    good: pl.DataFrame,
    rejected: pl.DataFrame,
    *,
    run_id: str,
    source: str,
    feed: str,
    params: dict[str, object],
    started_at: datetime,
) -> IngestCounts:
    """Upsert `good`, quarantine `rejected`, record the run and the feed's freshness."""
    now = _now()
    with warehouse.write() as con:
        if target is BARS:
            good = good.with_columns(pl.lit(now).cast(UTC_TS).alias("ingested_at"))
            good, conflicts = split_adjustment_conflicts(con, good)
            rejected = pl.concat([rejected, conflicts], how="vertical_relaxed")
        upserted = upsert(
            con, target.table, good, target.key, bookkeeping=target.bookkeeping, history=target.history
        )
        quarantine(con, rejected, kind=target.kind, received_at=now)
        counts = IngestCounts(
            inserted=upserted.inserted,
            updated=upserted.updated,
            unchanged=upserted.unchanged,
            fetched=good.height + rejected.height,
            quarantined=rejected.height,
        )
        con.execute(
            # A retried task must not overwrite what the first, committed attempt recorded.
            "INSERT INTO ingest_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [
                run_id, target.kind, source, json.dumps(params, default=str), started_at, now,
                counts.fetched, counts.inserted, counts.updated, counts.unchanged, counts.quarantined,
            ],
        )
        # polars types a max as any scalar; the knowable column is a UTC timestamp
        newest = cast("datetime | None", good[target.knowable].max()) if good.height else None
        _record_freshness(con, source, feed, now, newest, error=None)
    return counts


def record_failure(warehouse: Warehouse, *, source: str, feed: str, error: str) -> None:
    """Note a failed fetch in the feed's freshness record (the last good data stays)."""
    with warehouse.write() as con:
        _record_freshness(con, source, feed, _now(), None, error=error)


def _record_freshness(
    con: duckdb.DuckDBPyConnection, source: str, feed: str, at: datetime, newest: datetime | None, *, error: str | None
) -> None:
    success = at if error is None else None
    con.execute(
        """
        INSERT INTO source_freshness VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (source, kind) DO UPDATE SET
            last_attempt_at = excluded.last_attempt_at,
            last_success_at = coalesce(excluded.last_success_at, source_freshness.last_success_at),
            last_data_end = greatest(source_freshness.last_data_end, excluded.last_data_end),
            last_error = excluded.last_error
        """,
        [source, feed, at, success, newest, error],
    )


def split_adjustment_conflicts(con: duckdb.DuckDBPyConnection, bars: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Refuse bars whose price adjustment differs from what the warehouse holds for that
    symbol and timeframe: split-adjusted and raw prices must never mix silently."""
    if bars.is_empty():
        return bars, pl.DataFrame(schema={"source": pl.String, "reason": pl.String, "payload": pl.String})
    con.register("_incoming_pairs", bars.select("symbol", "timeframe", "adjustment").unique().to_arrow())
    try:
        stored = con.sql(
            "SELECT DISTINCT b.symbol, b.timeframe, b.adjustment AS stored_adjustment "
            "FROM bars b JOIN _incoming_pairs i USING (symbol, timeframe) WHERE b.adjustment <> i.adjustment"
        ).pl()
    finally:
        con.unregister("_incoming_pairs")
    if stored.is_empty():
        return bars, pl.DataFrame(schema={"source": pl.String, "reason": pl.String, "payload": pl.String})
    marked = bars.join(stored, on=["symbol", "timeframe"], how="left")
    clash = pl.col("stored_adjustment").is_not_null()
    conflicts = marked.filter(clash).select(
        "source",
        pl.format(
            "adjustment '{}' differs from the stored '{}' bars of {} {}: re-ingest the symbol's history in one adjustment",
            "adjustment", "stored_adjustment", "symbol", "timeframe",
        ).alias("reason"),
        pl.struct(pl.exclude("stored_adjustment", "ingested_at")).struct.json_encode().alias("payload"),
    )
    return marked.filter(~clash).drop("stored_adjustment"), conflicts
