"""The `tapeflow://schema` resource: the warehouse's tables and columns, for writing `sql` queries."""

from __future__ import annotations

import json

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError

from tapeflow.mcp.reading import Reader

URI = "tapeflow://schema"
_COLUMNS = """
    SELECT table_name, column_name, data_type FROM information_schema.columns
    WHERE table_schema = 'main' ORDER BY table_name, ordinal_position
"""


def warehouse_schema(reader: Reader) -> dict[str, dict[str, str]]:
    """{table: {column: type}}; times are TIMESTAMP WITH TIME ZONE, stored in UTC."""
    tables: dict[str, dict[str, str]] = {}
    for row in reader.rows(_COLUMNS):
        tables.setdefault(row["table_name"], {})[row["column_name"]] = row["data_type"]
    return tables


def register(server: MCPServer, reader: Reader) -> None:
    @server.resource(URI, name="schema", mime_type="application/json", description=(
        "The warehouse's tables and their columns with DuckDB types (times are UTC), for the sql tool."))
    def _schema() -> str:
        try:
            return json.dumps(warehouse_schema(reader), indent=1)
        except ToolError as exc:  # busy or missing warehouse: a resource error carries the same line
            raise ResourceError(str(exc)) from None
