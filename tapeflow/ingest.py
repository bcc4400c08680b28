"""Storing a checked bar batch: bars upserted, rejects quarantined, the run recorded, in
one transaction, so a crash leaves either all of it or none."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import polars as pl

from tapeflow.bar_frames import BAR_KEY, CheckedBars
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


def store_bar_batch(
    warehouse: Warehouse,
    checked: CheckedBars,
    *,
    run_id: str,
    source: str,
    params: dict[str, object],
    started_at: datetime,
) -> IngestCounts:
    """Upsert good bars, quarantine rejects and record the run; returns the counts."""
    now = datetime.now(timezone.utc)
    bars = checked.good.with_columns(pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("ingested_at"))
    with warehouse.write() as con:
        upserted = upsert(con, "bars", bars, BAR_KEY, bookkeeping=("ingested_at",))
        quarantine(con, checked.rejected, kind="bars", received_at=now)
        counts = IngestCounts(
            fetched=checked.good.height + checked.rejected.height,
            inserted=upserted.inserted,
            updated=upserted.updated,
            unchanged=upserted.unchanged,
            quarantined=checked.rejected.height,
        )
        con.execute(
            "INSERT OR REPLACE INTO ingest_runs VALUES (?, 'bars', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run_id, source, json.dumps(params, default=str), started_at, now,
                counts.fetched, counts.inserted, counts.updated, counts.unchanged, counts.quarantined,
            ],
        )
    return counts
