"""`session_status`: the latest trading day's sessions, positions, account and alerts, as stored."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from mcp.server.mcpserver import MCPServer

from tapeflow.calendar.exchange import NEW_YORK
from tapeflow.mcp.reading import Reader, json_rows
from tapeflow.mcp.records import Record

CAP = 50
_DAY = "SELECT max(session_date) FROM trading_sessions"
_SESSIONS = f"""
    SELECT session_id, strategy, broker, mode, status, started_at, finished_at, reconciled, summary
    FROM trading_sessions WHERE session_date = $day ORDER BY started_at LIMIT {CAP}
"""
# The newest snapshot per broker and mode; its rows are the positions then (ts: when they were seen).
_POSITIONS = f"""
    SELECT broker, mode, ts, symbol, qty, avg_price FROM position_snapshots p
    WHERE ts = (SELECT max(ts) FROM position_snapshots q WHERE q.broker = p.broker AND q.mode = p.mode)
      AND qty <> 0
    ORDER BY broker, mode, symbol LIMIT {CAP}
"""
_ACCOUNTS = """
    SELECT broker, mode, ts, equity, cash, buying_power, last_equity, equity - last_equity AS day_pnl
    FROM account_snapshots a
    WHERE ts = (SELECT max(ts) FROM account_snapshots b WHERE b.broker = a.broker AND b.mode = a.mode)
    ORDER BY broker, mode
"""
_ALERTS = f"""
    SELECT ts, component, kind, severity, title, message, repeats FROM alerts
    WHERE $day IS NULL OR CAST(timezone('{NEW_YORK}', ts) AS DATE) >= $day
    ORDER BY ts DESC LIMIT {CAP}
"""
_KILL = "SELECT scope, engaged, reason, changed_at FROM kill_switch WHERE engaged ORDER BY scope"


class SessionStatus(Record):
    """What the warehouse says about trading now (or on the latest day that traded)."""

    session_date: date | None
    sessions: list[dict[str, Any]]
    positions: list[dict[str, Any]]
    accounts: list[dict[str, Any]]
    alerts: list[dict[str, Any]]  # alerts of that day, newest first
    kill_switch: list[dict[str, Any]]  # engaged scopes


def session_status(reader: Reader) -> SessionStatus:
    with reader.connection() as con:
        [(day,)] = con.execute(_DAY).fetchall()

        def rows(query: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
            return json_rows(con.sql(query, params=params or {}).pl())

        sessions = [{**r, "summary": json.loads(r["summary"]) if isinstance(r["summary"], str) else r["summary"]}
                    for r in rows(_SESSIONS, {"day": day})]
        return SessionStatus(
            session_date=day, sessions=sessions, positions=rows(_POSITIONS), accounts=rows(_ACCOUNTS),
            alerts=rows(_ALERTS, {"day": day}), kill_switch=rows(_KILL),
        )


def register(server: MCPServer, reader: Reader) -> None:
    @server.tool(name="session_status", description=(
        "Today's (or the latest) trading sessions with P&L summaries, open positions, account equity, that day's "
        "alerts and any engaged kill switch, as stored in the warehouse; read-only."))
    def _session_status() -> SessionStatus:
        return session_status(reader)
