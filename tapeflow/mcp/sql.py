"""`sql`: the read-only SQL of `tapeflow sql`, row-capped, under a time limit."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from tapeflow.mcp.reading import Reader, json_rows
from tapeflow.mcp.records import Rows

MAX_ROWS = 1000


def run_sql(reader: Reader, query: str, max_rows: int) -> Rows:
    """The last statement's rows, at most `max_rows` of them."""
    frame = reader.user_sql(query)
    shown = json_rows(frame.head(max_rows))
    return Rows(rows=shown, count=len(shown), truncated=frame.height > max_rows)


def register(server: MCPServer, reader: Reader) -> None:
    @server.tool(name="sql", description=(
        "Read-only DuckDB SQL over the warehouse (SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN); "
        "writes are refused, a query is stopped after its time limit; read tapeflow://schema for tables. "
        "Times are UTC."))
    def _sql(
        query: Annotated[str, Field(min_length=1, max_length=20_000)],
        max_rows: Annotated[int, Field(ge=1, le=MAX_ROWS)] = 200,
    ) -> Rows:
        return run_sql(reader, query, max_rows)
