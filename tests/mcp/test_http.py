"""Streamable HTTP for remote agents: the bearer token, and the loopback-only rule without one."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from anyio.from_thread import BlockingPortal

from tests.mcp.conftest import TAPEFLOW, TOKEN, Agent, free_port, http_client, server_env, start_http

pytestmark = pytest.mark.slow  # starts servers


@pytest.fixture(scope="module")
def guarded_url(mcp_home: Path) -> Iterator[str]:
    """A server with TAPEFLOW_MCP_TOKEN set."""
    port = free_port()
    proc = start_http(mcp_home, port, TAPEFLOW_MCP_TOKEN=TOKEN)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_with_the_token_an_agent_reads(guarded_url: str, portal: BlockingPortal) -> None:
    with portal.wrap_async_context_manager(http_client(guarded_url, TOKEN)) as client:
        agent = Agent(portal, client)
        answer = agent.ok("sql", {"query": "SELECT count(*) AS n FROM bars WHERE symbol = 'AAPL'"})
        assert answer["rows"][0]["n"] > 20
        assert agent.ok("list_watchlist", {"limit": 2})["meta"]["count"] == 2
        assert "refused" in agent.error("sql", {"query": "DROP TABLE bars"})


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {TOKEN}", TOKEN])
def test_without_the_token_requests_get_401(guarded_url: str, authorization: str | None) -> None:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    response = httpx.post(guarded_url, json=body, headers=headers, timeout=10)
    assert response.status_code == 401
    assert TOKEN not in response.text


def test_without_a_token_loopback_serves(mcp_home: Path, portal: BlockingPortal) -> None:
    port = free_port()
    proc = start_http(mcp_home, port)
    try:
        with portal.wrap_async_context_manager(http_client(f"http://127.0.0.1:{port}/mcp", None)) as client:
            assert Agent(portal, client).ok("sql", {"query": "SELECT 1 AS one"})["rows"] == [{"one": 1}]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_non_loopback_host_without_a_token_is_refused(mcp_home: Path) -> None:
    done = subprocess.run([str(TAPEFLOW), "mcp", "serve", "--transport", "http", "--host", "0.0.0.0"],
                          env=server_env(mcp_home), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "TAPEFLOW_MCP_TOKEN" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
