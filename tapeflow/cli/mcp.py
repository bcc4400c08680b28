"""`tapeflow mcp`: serve the warehouse read-only to LLM agents over MCP, and print the desktop config."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from tapeflow.cli.console import refuse
from tapeflow.config import load_settings
from tapeflow.mcp.desktop import Transport, desktop_config

mcp_app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


@mcp_app.command("serve")
def serve(
    transport: Annotated[Transport, typer.Option(help="stdio for desktop agents, http (streamable) for remote ones")]
    = Transport.STDIO,
    port: Annotated[int, typer.Option(min=1, max=65535, help="HTTP port")] = 8765,
    host: Annotated[str, typer.Option(help="HTTP host; beyond loopback needs TAPEFLOW_MCP_TOKEN")] = "127.0.0.1",
) -> None:
    """Serve the warehouse read-only over MCP until the agent disconnects or Ctrl-C."""
    from tapeflow.mcp import run  # deferred: the MCP SDK and uvicorn (about 0.4 s), for this command only

    try:
        run.serve(load_settings(), transport, host, port)
    except run.TokenRequired as exc:
        refuse(str(exc))


@mcp_app.command("config")
def config() -> None:
    """Print the JSON block Claude Desktop or Cursor reads to start this server (stdio)."""
    print(json.dumps(desktop_config(load_settings().home), indent=2))
