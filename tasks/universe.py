"""Tasks for universes: read the universe files, check, store; and the universe a backtest runs in."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import polars as pl
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tapeflow.calendar.exchange import ny_day_bounds
from tapeflow.config import load_settings
from tapeflow.ingest.store import IngestCounts
from tapeflow.ingest.universe import CheckedUniverses, check_universes, store_universes
from tapeflow.sources.universe import Membership, Universe, load_membership, load_universe
from tapeflow.sources.universe_files import read_universe_files
from warehouse import open_warehouse
from warehouse.universes import universes_describing


@task(cache_policy=NO_CACHE)
def read_files(folder: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The records and member rows of the universe files in `folder`, as text."""
    return read_universe_files(Path(folder))


@task(cache_policy=NO_CACHE)
def check(records: pl.DataFrame, members: pl.DataFrame) -> CheckedUniverses:
    """Split the rows into rows to store and rows to quarantine."""
    checked = check_universes(records, members)
    for reason, n in checked.rejected.group_by("reason").len().iter_rows():
        get_run_logger().warning("quarantining %d universe rows: %s", n, reason)
    return checked


@task(retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE, tags=["duckdb-writer"])
def store(checked: CheckedUniverses, run_id: str, source: str, params: dict, started_at: datetime) -> IngestCounts:
    """Upsert records and members (a repeated load changes nothing), quarantine the rest."""
    warehouse = open_warehouse(load_settings(), on_busy=get_run_logger().warning)
    return store_universes(warehouse, checked, run_id=run_id, source=source, params=params, started_at=started_at)


@task(cache_policy=NO_CACHE)
def run_universe(universe: str | None, timeframe: str, symbols: list[str] | None, start: date,
                 end: date) -> tuple[Membership | None, Universe | None]:
    """The universe a run over New York days start..end applies (`universe` named: its membership),
    else the one recorded universe that describes the run's bars, for the report only (or none)."""
    with open_warehouse(load_settings()).read() as con:
        if universe is not None:
            return load_membership(con, universe, start, end), None
        described = universes_describing(con, timeframe, ny_day_bounds(start)[0], ny_day_bounds(end)[1], symbols)
        # Two universes fitting the same data would be a guess: the report then keeps its prose.
        return None, load_universe(con, described[0]) if len(described) == 1 else None
