"""What the CLI needs without the MCP SDK: the transports, and the `mcpServers` block desktop
agents (Claude Desktop, Cursor) read to start this server."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Any


class Transport(StrEnum):
    """How an agent reaches the server; named here, light to import, for the CLI's options."""

    STDIO = "stdio"
    HTTP = "http"


def tapeflow_script() -> Path:
    """This environment's `tapeflow` script, beside the running interpreter."""
    return Path(sys.executable).parent / "tapeflow"


def desktop_config(home: Path) -> dict[str, Any]:
    """The JSON block: stdio via this venv's tapeflow, the warehouse at `home`."""
    return {"mcpServers": {"tapeflow": {
        "command": str(tapeflow_script().absolute()),
        "args": ["mcp", "serve"],
        "env": {"TAPEFLOW_HOME": str(home.resolve())},
    }}}
