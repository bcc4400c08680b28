"""Risk state that outlives a process, in the warehouse: the kill switch (per strategy or
'all') and the day's loss lock. A restarted session reads both before it trades."""

from __future__ import annotations

from datetime import UTC, date, datetime

from warehouse.connection import Warehouse

EVERYTHING = "all"


def set_kill_switch(warehouse: Warehouse, scope: str, engaged: bool, reason: str, by: str) -> None:
    """Engage or release the kill switch for one strategy, or for all with scope 'all'."""
    if engaged and not reason.strip():
        raise ValueError("say why the kill switch is engaged")
    with warehouse.write() as con:
        con.execute("INSERT INTO kill_switch VALUES (?, ?, ?, ?, ?) ON CONFLICT (scope) DO UPDATE SET "
                    "engaged = excluded.engaged, reason = excluded.reason, changed_at = excluded.changed_at, "
                    "changed_by = excluded.changed_by",
                    [scope, engaged, reason, datetime.now(UTC), by])


def kill_switch(warehouse: Warehouse, strategy: str) -> str | None:
    """Why `strategy` must stop (its own switch or the global one), or None."""
    with warehouse.write() as con:
        row = con.execute("SELECT scope, reason FROM kill_switch WHERE engaged AND scope IN (?, ?) ORDER BY scope = ? DESC",
                          [strategy, EVERYTHING, EVERYTHING]).fetchone()
    return f"kill switch ({row[0]}): {row[1]}" if row else None


def lock_day(warehouse: Warehouse, scope: str, day: date, kind: str, reason: str) -> None:
    """Lock `scope` out of new entries for the rest of `day` (idempotent)."""
    with warehouse.write() as con:
        con.execute("INSERT INTO risk_locks VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [scope, day, kind, reason, datetime.now(UTC)])


def day_lock(warehouse: Warehouse, scope: str, day: date) -> str | None:
    with warehouse.write() as con:
        row = con.execute("SELECT kind, reason FROM risk_locks WHERE scope IN (?, ?) AND session_date = ? LIMIT 1",
                          [scope, EVERYTHING, day]).fetchone()
    return f"{row[0]} lock: {row[1]}" if row else None
