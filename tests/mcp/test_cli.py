"""`tapeflow mcp config` and the loopback rule, without starting a server."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from tapeflow.cli.main import app
from tapeflow.mcp.http import TokenRequired, check_exposure, is_loopback


def test_config_prints_the_desktop_block(tapeflow_home: Path) -> None:
    result = CliRunner().invoke(app, ["mcp", "config"])
    assert result.exit_code == 0, result.output
    server = json.loads(result.stdout)["mcpServers"]["tapeflow"]
    assert server["command"] == str(Path(sys.executable).parent / "tapeflow") and Path(server["command"]).is_file()
    assert server["args"] == ["mcp", "serve"]
    assert server["env"] == {"TAPEFLOW_HOME": str(tapeflow_home.resolve())}


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_hosts_need_no_token(host: str) -> None:
    assert is_loopback(host)
    check_exposure(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "example.com"])
def test_other_hosts_need_a_token(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(TokenRequired, match="TAPEFLOW_MCP_TOKEN"):
        check_exposure(host, None)
    check_exposure(host, SecretStr("t"))
