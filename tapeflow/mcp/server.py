"""The MCP server: every tool, resource and prompt, over one read-only warehouse reader."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

from tapeflow.config import Settings
from tapeflow.mcp import catalysts, market, profile, prompts, runs, schema, sessions, sql, watchlist
from tapeflow.mcp.reading import SQL_TIME_LIMIT_S, Reader
from warehouse import open_warehouse

INSTRUCTIONS = (
    "tapeflow's trading warehouse, read-only: watchlists, bars, catalysts, backtests, sessions. "
    "Every row carries when it became knowable and its source; times are UTC. "
    "Explain the data; never make buy, sell or hold calls."
)


def build_server(settings: Settings) -> MCPServer:
    """The server over `settings`' warehouse; nothing in it writes."""
    # An agent's query gets at most 10 s, less when TAPEFLOW_SQL_TIME_LIMIT_S says so.
    reader = Reader(open_warehouse(settings), sql_time_limit_s=min(SQL_TIME_LIMIT_S, settings.sql_time_limit_s))
    server = MCPServer("tapeflow", instructions=INSTRUCTIONS, log_level="WARNING")
    for part in (watchlist, catalysts, market, profile, runs, sessions, sql, schema):
        part.register(server, reader)
    prompts.register(server)
    return server
