"""Base for fake vendor REST servers on 127.0.0.1: routing, a request log, scripted faults.

A vendor fake subclasses `FakeVendor` and registers GET routes; tests then script what the
next requests meet: an HTTP status (429 with Retry-After, 5xx, 401), a delay longer than the
client's timeout, or a malformed body. Every server stops on context exit and, failing that,
after `max_lifetime` seconds.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Request:
    """One request as the fake saw it."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class Fault:
    """What the next matching request meets instead of a normal answer."""

    status: int | None = None
    retry_after: str | None = None
    delay_s: float = 0.0
    body: str | None = None  # raw text, e.g. malformed JSON, served with 200 unless status is set
    path_prefix: str = ""


Handler = Callable[[Request], tuple[int, Any]]


@dataclass
class _Route:
    pattern: re.Pattern[str]
    handler: Callable[..., tuple[int, Any]]


class FakeVendor:
    """A threaded HTTP server with routes; subclasses add routes in `__init__` via `route()`."""

    def __init__(self, max_lifetime: float = 120.0) -> None:
        self.requests: list[Request] = []
        self._routes: list[_Route] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.max_lifetime = max_lifetime
        self._server: ThreadingHTTPServer | None = None
        self._timer: threading.Timer | None = None

    # -- scripting -----------------------------------------------------------------------

    def route(self, pattern: str, handler: Callable[..., tuple[int, Any]]) -> None:
        """`handler(request, **named_groups)` returns (status, JSON-able body or raw str)."""
        self._routes.append(_Route(re.compile(f"^{pattern}$"), handler))

    def fail_next(self, status: int, times: int = 1, retry_after: str | None = None, path_prefix: str = "") -> None:
        with self._lock:
            self._faults += [Fault(status=status, retry_after=retry_after, path_prefix=path_prefix) for _ in range(times)]

    def delay_next(self, seconds: float, times: int = 1) -> None:
        with self._lock:
            self._faults += [Fault(delay_s=seconds) for _ in range(times)]

    def malformed_next(self, body: str = '{"results": [ {"o": 1.0,', times: int = 1) -> None:
        with self._lock:
            self._faults += [Fault(body=body) for _ in range(times)]

    def hits(self, path_prefix: str = "") -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "fake not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeVendor:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._serve(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self._timer = threading.Timer(self.max_lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._timer is not None:
            self._timer.cancel()

    # -- serving -------------------------------------------------------------------------

    def _serve(self, http: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(http.path)
        request = Request(
            path=parts.path,
            query={k: v[-1] for k, v in parse_qs(parts.query).items()},
            headers={k.lower(): v for k, v in http.headers.items()},
        )
        with self._lock:
            self.requests.append(request)
            fault = next((f for f in self._faults if request.path.startswith(f.path_prefix)), None)
            if fault is not None:
                self._faults.remove(fault)
        if fault is not None and fault.delay_s:
            time.sleep(fault.delay_s)
        headers: dict[str, str] = {}
        if fault is not None and fault.status is not None:
            status = fault.status
            body = fault.body if fault.body is not None else {"error": f"scripted {fault.status}"}
            if fault.retry_after is not None:
                headers["Retry-After"] = fault.retry_after
        elif fault is not None and fault.body is not None:
            status, body = 200, fault.body
        else:
            status, body = self._dispatch(request)
        text = body if isinstance(body, str) else json.dumps(body)
        data = text.encode()
        try:
            http.send_response(status)
            for name, value in headers.items():
                http.send_header(name, value)
            http.send_header("Content-Type", "application/json")
            http.send_header("Content-Length", str(len(data)))
            http.end_headers()
            http.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test): nothing to answer

    def _dispatch(self, request: Request) -> tuple[int, Any]:
        for route in self._routes:
            match = route.pattern.match(request.path)
            if match:
                return route.handler(request, **match.groupdict())
        return 404, {"error": f"no route for {request.path}"}


def paginate(items: list[Any], cursor: str | None, page_size: int) -> tuple[list[Any], str | None]:
    """Slice `items` at an integer cursor; returns the page and the next cursor (or None)."""
    start = int(cursor or 0)
    end = start + page_size
    return items[start:end], (str(end) if end < len(items) else None)


__all__ = ["Fault", "FakeVendor", "Request", "paginate"]
