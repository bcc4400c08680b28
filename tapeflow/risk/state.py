"""Risk state that outlives a process: the kill switch (per strategy or 'all') and the day's
loss lock. A restarted session reads both before it trades.

The kill switch must work whatever holds the warehouse (a long `tapeflow sql` keeps writers
off the file): engaging it writes a small side file beside the warehouse first, which sessions
read every cycle, then records it in the warehouse's `kill_switch` table if the file is free;
a session copies a newer side-file setting into the table once it can write. Per scope, the
newer of the two settings counts.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from warehouse.connection import Warehouse, WarehouseBusy

EVERYTHING = "all"
RECORD_WAIT_S = 0.2  # how long engaging the switch waits to record it in the warehouse


@dataclass(frozen=True)
class SwitchSetting:
    scope: str
    engaged: bool
    reason: str
    changed_at: datetime
    changed_by: str


def switch_file(warehouse: Warehouse) -> Path:
    """The side file beside the warehouse file: `tapeflow.kill_switch.json` for `tapeflow.duckdb`."""
    return warehouse.path.with_suffix(".kill_switch.json")


def set_kill_switch(warehouse: Warehouse, scope: str, engaged: bool, reason: str, by: str) -> bool:
    """Engage or release the kill switch for one strategy, or for all with scope 'all': at once
    in the side file, then in the warehouse. False if the warehouse was busy (a session, or the
    next command, records it there later)."""
    if engaged and not reason.strip():
        raise ValueError("say why the kill switch is engaged")
    switch = SwitchSetting(scope, engaged, reason, datetime.now(UTC), by)
    _write_side(warehouse, switch)
    try:
        with warehouse.waiting_at_most(RECORD_WAIT_S).write() as con:
            _record(con, _newer_than_stored(con, _read_side(warehouse)))
    except WarehouseBusy:
        return False
    return True


def kill_switch(warehouse: Warehouse, strategy: str) -> str | None:
    """Why `strategy` must stop (its own switch or the global one), or None. A side-file
    setting newer than the warehouse's is recorded there on the way."""
    side = _read_side(warehouse)
    with warehouse.write() as con:
        stored = _stored(con)
        newer = _newer(side, stored)
        _record(con, newer)
    return engaged_for({**stored, **{s.scope: s for s in newer}}, strategy)


def side_kill_switch(warehouse: Warehouse, strategy: str) -> str | None:
    """What the side file alone says: for a session that cannot open the warehouse right now."""
    return engaged_for(_read_side(warehouse), strategy)


def kill_switches(warehouse: Warehouse) -> list[SwitchSetting]:
    """Every scope's current setting, the newer of the side file's and the warehouse's."""
    switches = _read_side(warehouse)
    if warehouse.path.exists():
        try:
            with warehouse.waiting_at_most(RECORD_WAIT_S).read() as con:
                for scope, stored in _stored(con).items():
                    if scope not in switches or stored.changed_at > switches[scope].changed_at:
                        switches[scope] = stored
        except WarehouseBusy:
            pass  # the side file is what sessions read first
    return sorted(switches.values(), key=lambda s: s.scope)


def engaged_for(switches: dict[str, SwitchSetting], strategy: str) -> str | None:
    """The reason of the global switch or `strategy`'s, whichever is engaged (global first)."""
    for scope in (EVERYTHING, strategy):
        switch = switches.get(scope)
        if switch is not None and switch.engaged:
            return f"kill switch ({scope}): {switch.reason}"
    return None


def _stored(con: duckdb.DuckDBPyConnection) -> dict[str, SwitchSetting]:
    rows = con.execute("SELECT scope, engaged, reason, changed_at, changed_by FROM kill_switch").fetchall()
    return {r[0]: SwitchSetting(*r) for r in rows}


def _newer_than_stored(con: duckdb.DuckDBPyConnection, side: dict[str, SwitchSetting]) -> list[SwitchSetting]:
    return _newer(side, _stored(con))


def _newer(side: dict[str, SwitchSetting], stored: dict[str, SwitchSetting]) -> list[SwitchSetting]:
    """The side file's settings the warehouse lacks or holds an older one of."""
    return [s for s in side.values() if s.scope not in stored or s.changed_at > stored[s.scope].changed_at]


def _record(con: duckdb.DuckDBPyConnection, switches: list[SwitchSetting]) -> None:
    for s in switches:
        con.execute("INSERT INTO kill_switch VALUES (?, ?, ?, ?, ?) ON CONFLICT (scope) DO UPDATE SET "
                    "engaged = excluded.engaged, reason = excluded.reason, changed_at = excluded.changed_at, "
                    "changed_by = excluded.changed_by", [s.scope, s.engaged, s.reason, s.changed_at, s.changed_by])


def _read_side(warehouse: Warehouse) -> dict[str, SwitchSetting]:
    try:
        raw = json.loads(switch_file(warehouse).read_text())
    except FileNotFoundError:
        return {}
    return {scope: SwitchSetting(scope, v["engaged"], v["reason"], datetime.fromisoformat(v["changed_at"]), v["changed_by"])
            for scope, v in raw.items()}


def _write_side(warehouse: Warehouse, switch: SwitchSetting) -> None:
    """Read, change and replace the side file under a lock: two terminals never lose a setting."""
    path = switch_file(warehouse)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        switches = _read_side(warehouse)
        switches[switch.scope] = switch
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({s.scope: {"engaged": s.engaged, "reason": s.reason,
                                                   "changed_at": s.changed_at.isoformat(), "changed_by": s.changed_by}
                                         for s in switches.values()}, indent=1))
        os.replace(temporary, path)  # readers see the old file or the new one, never half of one


def lock_day(warehouse: Warehouse, scope: str, day: date, kind: str, reason: str) -> None:
    """Lock `scope` out of new entries for the rest of `day` (idempotent)."""
    with warehouse.write() as con:
        con.execute("INSERT INTO risk_locks VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [scope, day, kind, reason, datetime.now(UTC)])


def day_lock(warehouse: Warehouse, scope: str, day: date) -> str | None:
    with warehouse.write() as con:
        rows = con.execute("SELECT kind, reason FROM risk_locks WHERE scope IN (?, ?) AND session_date = ? LIMIT 1",
                           [scope, EVERYTHING, day]).fetchall()  # read out: the cycle's next statements follow
    return f"{rows[0][0]} lock: {rows[0][1]}" if rows else None
