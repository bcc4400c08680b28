"""`list_watchlist`: BullAlert's REST endpoint, served point in time from watchlist_snapshots."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from pydantic import AwareDatetime, Field

from tapeflow.mcp.reading import Reader
from tapeflow.mcp.records import WatchlistData, WatchlistEntry, WatchlistMeta, WatchlistResponse, WatchlistSession
from tapeflow.schemas import SESSIONS

# The latest list at or before `at`; at one instant a later session wins (as BullAlert's does).
_LATEST = """
    SELECT source, session, as_of FROM watchlist_snapshots
    WHERE as_of <= $at AND ($session IS NULL OR session = $session) AND ($source IS NULL OR source = $source)
    ORDER BY as_of DESC, list_position($sessions, session) DESC, source
    LIMIT 1
"""
_ENTRIES = """
    SELECT rank, ticker, score, source, as_of, fetched_at FROM watchlist_snapshots
    WHERE source = $source AND session = $session AND as_of = $as_of
    ORDER BY rank, ticker LIMIT $limit
"""


def list_watchlist(
    reader: Reader, session: WatchlistSession, limit: int, as_of: datetime | None, source: str | None
) -> WatchlistResponse:
    """The watchlist knowable at `as_of` (default now) for `session`, ranked."""
    at = as_of or datetime.now(UTC)
    one = None if session in (WatchlistSession.CURRENT, WatchlistSession.ALL) else session.value
    with reader.connection() as con:
        latest = con.execute(_LATEST, {"at": at, "session": one, "source": source, "sessions": list(SESSIONS)}).fetchall()
        found = latest[0] if latest else None
        rows = [] if found is None else con.execute(
            _ENTRIES, {"source": found[0], "session": found[1], "as_of": found[2], "limit": limit}).fetchall()
    entries = [WatchlistEntry(rank=r[0], ticker=r[1], score=r[2], source=r[3], as_of=r[4], fetched_at=r[5]) for r in rows]
    meta = WatchlistMeta(
        session=found[1] if found else one, as_of=found[2] if found else None, count=len(entries),
        source=found[0] if found else source, requested_as_of=at,
    )
    return WatchlistResponse(data=WatchlistData(watchlist=entries), meta=meta)


def register(server: MCPServer, reader: Reader) -> None:
    @server.tool(name="list_watchlist", description=(
        "Momentum watchlist (rank, ticker, score 0-100) as stored point in time: the latest list "
        "knowable at as_of (ISO-8601 with offset; default now) for a session; BullAlert's response shape."))
    def _list_watchlist(
        session: WatchlistSession = WatchlistSession.CURRENT,
        limit: Annotated[int, Field(ge=1, le=100)] = 20,
        as_of: AwareDatetime | None = None,
        source: Annotated[str | None, Field(description="scanner, bullalert ...; default any")] = None,
    ) -> WatchlistResponse:
        return list_watchlist(reader, session, limit, as_of, source)
