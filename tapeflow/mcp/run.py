"""Start the server on a transport: stdio for desktop agents, streamable HTTP for remote ones."""

from __future__ import annotations

from tapeflow.config import Settings
from tapeflow.mcp.desktop import Transport
from tapeflow.mcp.http import TokenRequired, check_exposure, serve_http
from tapeflow.mcp.server import build_server

__all__ = ["TokenRequired", "Transport", "serve"]


def serve(settings: Settings, transport: Transport, host: str, port: int) -> None:
    """Serve until the agent disconnects or Ctrl-C; TokenRequired before anything starts."""
    if transport is Transport.HTTP:
        check_exposure(host, settings.mcp_token)
        serve_http(build_server(settings), host, port, settings.mcp_token)
    else:
        build_server(settings).run("stdio")
