"""Streamable HTTP for remote agents: a bearer token guard, and the loopback-only rule."""

from __future__ import annotations

import hmac
import ipaddress

import uvicorn
from mcp.server.mcpserver import MCPServer
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = {"localhost"}


class TokenRequired(ValueError):
    """An HTTP server on a non-loopback host without a token."""


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: SecretStr | None) -> None:
    """Refuse to serve beyond this machine without a token (TokenRequired)."""
    if token is None and not is_loopback(host):
        raise TokenRequired(
            f"refusing to serve MCP on {host} without a token: set TAPEFLOW_MCP_TOKEN, or use --host 127.0.0.1")


class BearerGuard:
    """ASGI middleware: a request without `Authorization: Bearer <token>` gets 401."""

    def __init__(self, app: ASGIApp, token: SecretStr) -> None:
        self.app = app
        self._expected = f"Bearer {token.get_secret_value()}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):  # constant time: no timing oracle on the token
                await send({"type": "http.response.start", "status": 401, "headers": [
                    (b"content-type", b"application/json"), (b"www-authenticate", b'Bearer realm="tapeflow"')]})
                await send({"type": "http.response.body", "body": b'{"error": "missing or wrong bearer token"}'})
                return
        await self.app(scope, receive, send)


def http_app(server: MCPServer, host: str, token: SecretStr | None) -> ASGIApp:
    """The server's streamable HTTP app at /mcp, behind the token when one is set."""
    app: ASGIApp = server.streamable_http_app(host=host)
    return app if token is None else BearerGuard(app, token)


def serve_http(server: MCPServer, host: str, port: int, token: SecretStr | None) -> None:
    """Serve until interrupted."""
    check_exposure(host, token)
    uvicorn.run(http_app(server, host, token), host=host, port=port, log_level="warning")
