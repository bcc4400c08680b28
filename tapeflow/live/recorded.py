"""Where trading sessions are recorded: paper and live days in the main warehouse, replayed
days in their replay's own file under TAPEFLOW_HOME/replays/. Listing them all together, and
finding the file that holds one session."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from tapeflow.config import Settings
from warehouse.connection import Warehouse, WarehouseBusy

REPLAY_WAIT_S = 0.5  # a replay being run holds its file throughout: pass it by rather than wait for it
MAIN, REPLAY = "warehouse", "replay"  # the `where` of a session

_COLUMNS = """session_id, status, reconciled, started_at, finished_at,
    TRY_CAST(summary->>'orders_sent' AS BIGINT) AS orders, TRY_CAST(summary->>'fills' AS BIGINT) AS fills,
    TRY_CAST(summary->>'realized_pnl' AS DOUBLE) AS realized_pnl"""
SCHEMA = {"where": pl.String, "path": pl.String, "session_id": pl.String, "status": pl.String,
          "reconciled": pl.Boolean, "started_at": pl.Datetime("us", "UTC"), "finished_at": pl.Datetime("us", "UTC"),
          "orders": pl.Int64, "fills": pl.Int64, "realized_pnl": pl.Float64}


class SessionNotFound(LookupError):
    """No warehouse this installation keeps holds the session; the message names where it looked."""


@dataclass(frozen=True)
class Listing:
    sessions: pl.DataFrame  # SCHEMA's columns, newest first
    unread: list[tuple[Path, str]] = field(default_factory=list)  # files passed by, and why


def replays_dir(settings: Settings) -> Path:
    """TAPEFLOW_HOME/replays/: one warehouse file per replay (`launch.replay_path` names them)."""
    return Path(settings.home).resolve() / "replays"


def replay_files(settings: Settings, strategy: str | None = None) -> list[Path]:
    """The replay files (of one strategy, or all), the most recently written first."""
    pattern = f"{strategy}-*.duckdb" if strategy else "*.duckdb"
    return sorted(replays_dir(settings).glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)


def list_sessions(settings: Settings, main: Warehouse, limit: int) -> Listing:
    """The newest `limit` sessions of the main warehouse and every replay file together, by start."""
    frames, unread = [], []
    for where, source in [(MAIN, main), *((REPLAY, _replay(p)) for p in replay_files(settings))]:
        if where == MAIN and not main.path.exists():
            continue  # nothing ingested or traded yet
        try:
            with source.read() as con:
                rows = con.sql(f"SELECT {_COLUMNS} FROM trading_sessions ORDER BY started_at DESC LIMIT {int(limit)}").pl()
        except WarehouseBusy:
            unread.append((source.path, "in use by another process, a replay still running?"))
            continue
        except duckdb.Error as exc:  # not a warehouse, or one from before sessions were recorded
            unread.append((source.path, f"{type(exc).__name__}: {exc}".splitlines()[0]))
            continue
        frames.append(rows.with_columns(pl.lit(where).alias("where"), pl.lit(str(source.path)).alias("path")))
    every = pl.concat([pl.DataFrame(schema=SCHEMA), *(f.select(list(SCHEMA)).cast(SCHEMA) for f in frames)])
    return Listing(every.sort("started_at", descending=True).head(limit), unread)


def warehouse_of_session(settings: Settings, main: Warehouse, session_id: str) -> Warehouse:
    """The warehouse holding `session_id`: the main one, or the replay file it ran in (the most
    recently written, if the day was replayed more than once); else SessionNotFound."""
    passed = []
    for source in [main, *(_replay(p) for p in replay_files(settings, session_id.split(":", 1)[0]))]:
        if not source.path.exists():
            continue
        try:
            with source.read() as con:
                found = con.execute("SELECT 1 FROM trading_sessions WHERE session_id = ?", [session_id]).fetchone()
        except WarehouseBusy:
            passed.append(source.path.name)
            continue
        if found:
            return source if source is main else Warehouse(source.path, lock_timeout_s=settings.lock_timeout_s)
    busy = f" ({', '.join(passed)} in use by another process, not searched)" if passed else ""
    raise SessionNotFound(f"no trading session {session_id!r} in {main.path} or the replays in "
                          f"{replays_dir(settings)}{busy}: `tapeflow sessions` lists them")


def _replay(path: Path) -> Warehouse:
    return Warehouse(path, lock_timeout_s=REPLAY_WAIT_S)
