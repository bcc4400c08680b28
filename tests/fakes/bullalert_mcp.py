"""A fake BullAlert MCP server on 127.0.0.1: the official SDK's MCPServer over streamable HTTP,
serving the `list_watchlist` tool documented in `tapeflow.venues.bullalert_mcp`.

The lists come from a FakeBullAlert that is never started: the tool answers with exactly the
body its REST endpoint would send. Every HTTP request must carry the `x-ba-api-key` header (401
without). Faults: `http_fail_next` (429, 5xx), `tool_error_next`, `delay_next` (a slow tool, for the timeout),
`malformed_next` (raw text as the tool's answer) and `echo_next` (the answer quotes the request
back, headers included, for the secret-echo test).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, TextContent

from tests.fakes.bullalert import FakeBullAlert
from tests.fakes.vendor_http import ECHO_KINDS, ECHO_TAG, Request, echo_answer, request_text

KEY_HEADER = "x-ba-api-key"
PATH = "/mcp"

Scope = MutableMapping[str, Any]
Asgi = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def tool_error(message: str) -> CallToolResult:
    """A tool error as BullAlert sends one. Returned, not raised: the SDK would log a raised
    error's text, and the echo test must see only what tapeflow itself says."""
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


@dataclass
class ToolFault:
    """What the next tool call meets instead of a normal answer."""

    error: str | None = None  # the tool fails with this message
    delay_s: float = 0.0
    body: str | None = None  # raw text served as the answer
    echo: str | None = None  # one of ECHO_KINDS: the answer (or the error) quotes the request back


class FakeBullAlertMcp:
    """BullAlert's MCP endpoint, with the REST fake's stored lists and scriptable faults."""

    def __init__(self, api_key: str, max_lifetime: float = 600.0) -> None:
        self.api_key = api_key
        self.lists = FakeBullAlert(api_key)  # the store only: its HTTP server is never started
        self.calls: list[dict[str, Any]] = []  # the arguments of every tool call
        self.refused = 0  # HTTP requests refused for a missing or wrong key
        self.echoed = 0
        self.max_lifetime = max_lifetime
        self._faults: list[ToolFault] = []
        self._http_faults: list[tuple[int, str | None]] = []  # (status, Retry-After) for the next requests
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None
        self._port = 0

    # -- scripting -----------------------------------------------------------------------

    def add_snapshot(self, *args: Any, **kwargs: Any) -> Any:
        return self.lists.add_snapshot(*args, **kwargs)

    def http_fail_next(self, status: int, times: int = 1, retry_after: str | None = None) -> None:
        """The next `times` tool calls (with the key) are answered HTTP `status`, e.g. 429 or 503."""
        with self._lock:
            self._http_faults += [(status, retry_after)] * times

    def tool_error_next(self, message: str = "upstream scoring service unavailable", times: int = 1) -> None:
        self._push(ToolFault(error=message), times)

    def delay_next(self, seconds: float, times: int = 1) -> None:
        self._push(ToolFault(delay_s=seconds), times)

    def malformed_next(self, body: str = '{"data": {"watchlist": [', times: int = 1) -> None:
        self._push(ToolFault(body=body), times)

    def echo_next(self, kind: str, times: int = 1) -> None:
        """The next `times` calls quote the request back: "status" as a tool error, else as the answer."""
        if kind not in ECHO_KINDS:
            raise ValueError(f"echo kind must be one of {ECHO_KINDS}, got {kind!r}")
        self._push(ToolFault(echo=kind), times)

    def _push(self, fault: ToolFault, times: int) -> None:
        with self._lock:
            self._faults += [fault] * times

    @property
    def url(self) -> str:
        assert self._server is not None, "fake not started"
        return f"http://127.0.0.1:{self._port}{PATH}"

    # -- serving -------------------------------------------------------------------------

    async def _list_watchlist(self, ctx: Context, session: str = "current", limit: int = 100,
                              as_of: str | None = None) -> str | CallToolResult:
        arguments = {"session": session, "limit": limit, **({"as_of": as_of} if as_of is not None else {})}
        with self._lock:
            self.calls.append(arguments)
            fault = self._faults.pop(0) if self._faults else None
        if fault is not None and fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault is not None and fault.error is not None:
            return tool_error(fault.error)
        if fault is not None and fault.body is not None:
            return fault.body
        if fault is not None and fault.echo is not None:
            self.echoed += 1
            headers = dict(ctx.headers or {})
            _, page = echo_answer(fault.echo, request_text("POST", f"{PATH} list_watchlist", headers.items(),
                                                           json.dumps(arguments)))
            if fault.echo == "status":
                return tool_error(f"{ECHO_TAG}: {page}")
            return page
        query = {k: str(v) for k, v in arguments.items()}
        status, body = self.lists._watchlist(Request(PATH, query, {KEY_HEADER: self.api_key}))
        if status != 200:
            return tool_error(body["error"])
        return json.dumps(body)

    def _app(self) -> Asgi:
        server = MCPServer("BullAlert")
        server.tool(name="list_watchlist", description="BullAlert's momentum watchlist, live or as of an instant",
                    structured_output=False)(
            self._list_watchlist
        )
        inner = server.streamable_http_app(streamable_http_path=PATH, json_response=True, stateless_http=True)

        async def guarded(scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]) -> None:
            if scope["type"] == "http":
                headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
                if headers.get(KEY_HEADER) != self.api_key:
                    self.refused += 1
                    body = b'{"error": "invalid api key"}'
                    await send({"type": "http.response.start", "status": 401,
                                "headers": [(b"content-type", b"application/json")]})
                    await send({"type": "http.response.body", "body": body})
                    return
                calls_tool = headers.get("mcp-method") == "tools/call"  # not the client's version probe
                with self._lock:
                    fault = self._http_faults.pop(0) if self._http_faults and calls_tool else None
                if fault is not None:
                    extra = [(b"retry-after", fault[1].encode())] if fault[1] is not None else []
                    await send({"type": "http.response.start", "status": fault[0],
                                "headers": [(b"content-type", b"application/json"), *extra]})
                    await send({"type": "http.response.body", "body": b'{"error": "scripted"}'})
                    return
            await inner(scope, receive, send)

        return guarded

    def __enter__(self) -> FakeBullAlertMcp:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(self._app(), log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        started = threading.Event()
        for _ in range(500):  # until uvicorn says it listens (bounded: 5 s)
            if self._server.started:
                started.set()
                break
            started.wait(0.01)
        assert started.is_set(), "fake BullAlert MCP server did not start"
        self._timer = threading.Timer(self.max_lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.should_exit = True
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        if self._timer is not None:
            self._timer.cancel()


__all__ = ["FakeBullAlertMcp", "KEY_HEADER"]
