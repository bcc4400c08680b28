"""The quarantine: every rejected row, whole, with the reason it was refused."""

from __future__ import annotations

import hashlib
from datetime import datetime

import duckdb
import polars as pl

from tapeflow.redact import redact_credentials
from warehouse.upsert import upsert

QUARANTINE_COLUMNS = ("source", "kind", "payload_hash", "reason", "payload", "received_at", "copies")


def payload_hash(source: str, reason: str, payload: str) -> str:
    """Stable identity of a rejection; the reason is part of it, so a new reason is news."""
    return hashlib.sha256("\x1f".join((source, reason, payload)).encode()).hexdigest()


def quarantine(
    con: duckdb.DuckDBPyConnection, rejected: pl.DataFrame, *, kind: str, received_at: datetime
) -> int:
    """Store rejected rows (columns source, reason, payload); return how many were new.

    Identical rejections in one batch become one row whose `copies` says how many there were."""
    if rejected.is_empty():
        return 0
    # Whatever a vendor echoed back (its request's headers, its query string) stays out of the
    # warehouse, for every source alike.
    rejected = rejected.with_columns(pl.col("payload", "reason").map_elements(redact_credentials, return_dtype=pl.String))
    hashes = [payload_hash(*row) for row in rejected.select("source", "reason", "payload").iter_rows()]
    rows = (
        rejected.select("source", "reason", "payload")
        .with_columns(pl.lit(kind).alias("kind"), pl.Series("payload_hash", hashes))
        .group_by("source", "kind", "payload_hash", maintain_order=True)
        .agg(pl.col("reason").first(), pl.col("payload").first(), pl.len().cast(pl.Int32).alias("copies"))
        .with_columns(pl.lit(received_at).cast(pl.Datetime("us", "UTC")).alias("received_at"))
        .select(*QUARANTINE_COLUMNS)
    )
    return upsert(con, "quarantine", rows, ("source", "kind", "payload_hash"), bookkeeping=rows.columns).inserted
