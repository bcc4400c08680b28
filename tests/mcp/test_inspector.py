"""An independent client: the official MCP Inspector, in CLI mode, spawns `tapeflow mcp serve`
over stdio, lists its tools and calls `list_watchlist` for the morning of 2010-05-07.

`.ci/run` installs the Inspector under .tools/ (npm); without it this says it was skipped:
    npm install --prefix .tools @modelcontextprotocol/inspector@2.12.0"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tapeflow.config import PROJECT_DIR
from tests.mcp.conftest import SNAPSHOT_AS_OF, TAPEFLOW, server_env

INSPECTOR = PROJECT_DIR / ".tools" / "node_modules" / ".bin" / "mcp-inspector"
TOOLS = {"list_watchlist", "recent_catalysts", "bars", "symbol_profile", "backtest_runs", "backtest_summary",
         "session_status", "sql"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not INSPECTOR.exists(), reason=f"no MCP Inspector at {INSPECTOR} (.ci/run installs it with npm)"),
]


def inspect(home: Path, *args: str) -> dict:
    """One Inspector call against a fresh stdio server; its JSON answer."""
    done = subprocess.run([str(INSPECTOR), "--cli", "-e", f"TAPEFLOW_HOME={home}", str(TAPEFLOW), "mcp", "serve",
                           *args], env=server_env(home), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_the_inspector_lists_the_tools_and_calls_list_watchlist(mcp_home: Path):
    listed = inspect(mcp_home, "--method", "tools/list")
    tools = {tool["name"]: tool for tool in listed["tools"]}
    assert tools.keys() >= TOOLS
    assert all(tool.get("description") and tool.get("inputSchema") for tool in tools.values())

    called = inspect(mcp_home, "--method", "tools/call", "--tool-name", "list_watchlist",
                     "--tool-arg", "session=pre_market", f"as_of={SNAPSHOT_AS_OF}", "limit=5")
    assert not called.get("isError"), called
    rows = called["structuredContent"]["data"]["watchlist"]
    assert len(rows) == 5 and all(row["ticker"] and row["as_of"] for row in rows)
