"""`bars`: stored OHLCV bars of one symbol, each with the moment it became knowable (its end)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import AwareDatetime, Field

from tapeflow.mcp.reading import Reader
from tapeflow.mcp.records import Rows
from tapeflow.model import Timeframe

Symbol = Annotated[str, Field(min_length=1, max_length=12, pattern=r"^[A-Za-z][A-Za-z0-9.\-]*$",
                              description="ticker, e.g. AAPL")]

# The newest `limit` bars of the window, returned oldest first.
_BARS = """
    SELECT * FROM (
        SELECT symbol, timeframe, ts, end_ts AS knowable_at, open, high, low, close, volume, vwap,
               adjustment, source, ingested_at
        FROM bars
        WHERE symbol = $symbol AND timeframe = $tf
          AND ($start IS NULL OR ts >= $start) AND ($end IS NULL OR ts < $end)
        ORDER BY ts DESC LIMIT $limit + 1)
    ORDER BY ts
"""


def bars(reader: Reader, symbol: str, timeframe: Timeframe, start: datetime | None, end: datetime | None,
         limit: int) -> Rows:
    """Bars starting in [start, end); the newest `limit` when more match."""
    if start is not None and end is not None and end <= start:
        raise ToolError(f"end {end.isoformat()} is not after start {start.isoformat()}")
    rows = reader.rows(_BARS, {"symbol": symbol.upper(), "tf": timeframe.value, "start": start, "end": end,
                               "limit": limit})
    truncated = len(rows) > limit
    rows = rows[1:] if truncated else rows  # the extra row, the oldest, only tells that more matched
    return Rows(rows=rows, count=len(rows), truncated=truncated)


def register(server: MCPServer, reader: Reader) -> None:
    @server.tool(name="bars", description=(
        "OHLCV bars of one symbol (timeframe 1d or 1m) starting in [start, end), oldest first, newest `limit` "
        "when more match; knowable_at is the bar's end (UTC)."))
    def _bars(
        symbol: Symbol,
        timeframe: Timeframe = Timeframe.DAY,
        start: AwareDatetime | None = None,
        end: AwareDatetime | None = None,
        limit: Annotated[int, Field(ge=1, le=1000)] = 200,
    ) -> Rows:
        return bars(reader, symbol, timeframe, start, end, limit)
