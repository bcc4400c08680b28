"""Universes stored the way `ingest-universe` stores them (the same checks and transaction), for
tests that need one in a real warehouse."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl

from tapeflow.config import PROJECT_DATA
from tapeflow.ingest.store import IngestCounts
from tapeflow.ingest.universe import check_universes, store_universes
from tapeflow.sources.universe_files import UNIVERSE_DIR, read_universe_files
from warehouse import Warehouse

# (symbol, from_date, to_date or None, knowable_at)
Interval = tuple[str, date, date | None, datetime]


def universe_frames(name: str, intervals: list[Interval], *, survivorship: str = "point_in_time",
                    description: str = "a hand-made test universe", source: str = "test") -> tuple[pl.DataFrame, pl.DataFrame]:
    """One record and its member rows, as text, the way the universe files hold them."""
    records = pl.DataFrame([{"universe": name, "description": description, "survivorship": survivorship, "source": source}])
    members = pl.DataFrame(
        [{"universe": name, "symbol": symbol, "from_date": first.isoformat(), "to_date": last.isoformat() if last else None,
          "knowable_at": known.isoformat(), "source": source} for symbol, first, last, known in intervals],
        schema=dict.fromkeys(("universe", "symbol", "from_date", "to_date", "knowable_at", "source"), pl.String),
    )
    return records, members


def store_universe(warehouse: Warehouse, name: str, intervals: list[Interval], **record: str) -> IngestCounts:
    """Check and store one universe; every row must pass."""
    checked = check_universes(*universe_frames(name, intervals, **record))
    assert checked.rejected.is_empty(), checked.rejected.to_dicts()
    return store_universes(warehouse, checked, run_id=f"test-{name}-{datetime.now(UTC).timestamp()}", source="test",
                           params={}, started_at=datetime.now(UTC))


def store_bundled(warehouse: Warehouse) -> IngestCounts:
    """The bundled universe files (data/universes/), stored as the flow stores them."""
    checked = check_universes(*read_universe_files(PROJECT_DATA / UNIVERSE_DIR))
    assert checked.rejected.is_empty(), checked.rejected.to_dicts()
    return store_universes(warehouse, checked, run_id=f"test-bundled-{datetime.now(UTC).timestamp()}", source="test",
                           params={}, started_at=datetime.now(UTC))
