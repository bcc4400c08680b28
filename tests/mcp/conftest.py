"""One warehouse for the MCP tests (a short daily ingest and a scanner snapshot, made by the
real CLI), and the real server driven through the SDK's client over stdio and HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tapeflow.config import PROJECT_DATA

TAPEFLOW = Path(sys.executable).parent / "tapeflow"
SNAPSHOT_AS_OF = "2010-05-07T09:00:00-04:00"
TOKEN = "mcp-T0KEN-q7z2"
SQL_LIMIT_S = "1"  # the server's SQL time limit here, so that a runaway query is stopped fast


def server_env(home: Path, **extra: str) -> dict[str, str]:
    """The server's environment: this warehouse, no stray TAPEFLOW_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPEFLOW_")}
    return {**env, "TAPEFLOW_HOME": str(home), "TAPEFLOW_DATA_DIR": str(PROJECT_DATA),
            "TAPEFLOW_SQL_TIME_LIMIT_S": SQL_LIMIT_S, "DO_NOT_TRACK": "1", **extra}


@pytest.fixture(scope="session")
def mcp_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse with six weeks of the daily panel and the scanner's list for 2010-05-07's morning."""
    home = tmp_path_factory.mktemp("mcp") / "home"
    env = server_env(home)
    for argv in (["ingest", "--timeframe", "1d", "--start", "2010-03-25", "--end", "2010-05-07"],
                 ["snapshot", "--source", "scanner", "--as-of", SNAPSHOT_AS_OF]):
        done = subprocess.run([str(TAPEFLOW), *argv], env=env, cwd=home.parent, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    return home


class Agent:
    """A connected MCP client, called synchronously from tests through a portal."""

    def __init__(self, portal: BlockingPortal, client: Client) -> None:
        self.portal, self.client = portal, client

    def call(self, tool: str, arguments: dict[str, Any] | None = None) -> Any:
        return self.portal.call(self.client.call_tool, tool, arguments or {})

    def ok(self, tool: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """A successful call's structured content."""
        result = self.call(tool, arguments)
        assert not result.is_error, result.content
        assert result.structured_content is not None
        return result.structured_content

    def error(self, tool: str, arguments: dict[str, Any] | None = None) -> str:
        """A failed call's message."""
        result = self.call(tool, arguments)
        assert result.is_error, result.structured_content
        return " ".join(c.text for c in result.content)


@pytest.fixture(scope="module")
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as portal:
        yield portal


@pytest.fixture(scope="module")
def stdio_agent(mcp_home: Path, portal: BlockingPortal) -> Iterator[Agent]:
    """`tapeflow mcp serve` spawned by the SDK's stdio client, as a desktop agent does."""
    params = StdioServerParameters(command=str(TAPEFLOW), args=["mcp", "serve"], env=server_env(mcp_home),
                                   cwd=str(mcp_home.parent))
    with portal.wrap_async_context_manager(Client(params, read_timeout_seconds=30)) as client:
        yield Agent(portal, client)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_http(home: Path, port: int, **extra: str) -> subprocess.Popen[str]:
    """`tapeflow mcp serve --transport http` on 127.0.0.1:port, ready when it accepts connections."""
    proc = subprocess.Popen([str(TAPEFLOW), "mcp", "serve", "--transport", "http", "--port", str(port)],
                            env=server_env(home, **extra), cwd=home.parent, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"the MCP HTTP server did not start: {proc.communicate()[0]}")


def http_client(url: str, token: str | None) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return Client(streamable_http_client(url, http_client=create_mcp_http_client(headers=headers)),
                  read_timeout_seconds=30)
