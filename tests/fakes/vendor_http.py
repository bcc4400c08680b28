"""Base for fake vendor REST servers on 127.0.0.1: routing, a request log, scripted faults.

A vendor fake subclasses `FakeVendor` and registers GET routes; tests then script what the
next requests meet: an HTTP status (429 with Retry-After, 5xx, 401), a delay longer than the
client's timeout, a malformed body, or an echo of the request itself (`echo_next`: what a
vendor's debug or error page does, credentials included). Every server stops on context exit
and, failing that, after `max_lifetime` seconds.

The echo pages are built here once (`request_text`, `echo_answer`, `echo_message`) for every
fake, the HTTP ones and the websocket ones alike.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable
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
    echo: str | None = None  # one of ECHO_KINDS: the answer quotes the request back


Handler = Callable[[Request], tuple[int, Any]]


@dataclass
class _Route:
    pattern: re.Pattern[str]
    handler: Callable[..., tuple[int, Any]]


class FakeVendor:
    """A threaded HTTP server with routes; subclasses add routes in `__init__` via `route()`."""

    def __init__(self, max_lifetime: float = 600.0) -> None:
        self.requests: list[Request] = []
        self.echoed = 0  # answers that quoted the request back
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

    def echo_next(self, kind: str, times: int = 1, path_prefix: str = "") -> None:
        """The next `times` requests are answered with a page quoting them back (`echo_answer`)."""
        if kind not in ECHO_KINDS:
            raise ValueError(f"echo kind must be one of {ECHO_KINDS}, got {kind!r}")
        with self._lock:
            self._faults += [Fault(echo=kind, path_prefix=path_prefix) for _ in range(times)]

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
                self.echoed += fault.echo is not None
        if fault is not None and fault.delay_s:
            time.sleep(fault.delay_s)
        headers: dict[str, str] = {}
        if fault is not None and fault.echo is not None:
            status, body = echo_answer(fault.echo, request_text("GET", http.path, http.headers.items()))
        elif fault is not None and fault.status is not None:
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


# -- echo: a vendor quoting the request back ---------------------------------------------------

ECHO_TAG = "echo-of-the-request"
ECHO_STATUS = 400
# malformed: an HTML page where JSON was due; shape: JSON that is no vendor's page, quoting the
# request where vendors put their error text; status: that JSON as an HTTP 400 error body.
ECHO_KINDS = ("malformed", "shape", "status")


def request_text(method: str, target: str, headers: Iterable[tuple[str, str]], body: str = "") -> str:
    """A request as its HTTP/1.1 text: request line (path and query), header lines, blank line, body."""
    return "\n".join([f"{method} {target} HTTP/1.1", *(f"{name}: {value}" for name, value in headers), "", body])


def echo_answer(kind: str, echoed: str) -> tuple[int, str]:
    """(status, body) of an answer quoting `echoed` back, as `kind` (one of ECHO_KINDS) says."""
    if kind == "malformed":
        return 200, f"<html><body><h1>{ECHO_TAG}</h1><pre>{echoed}</pre></body></html>"
    # Each field is where some vendor puts its error text (Polygon status/error, Finnhub s/error,
    # Marketaux error.code/message, Tiingo detail, Alpaca message), so every adapter quotes it.
    page = {
        "status": "ERROR", "s": "error", "error": {"code": ECHO_TAG, "message": echoed},
        "message": f"{ECHO_TAG}: {echoed}", "detail": f"{ECHO_TAG}: {echoed}",
    }
    return (ECHO_STATUS if kind == "status" else 200), json.dumps(page)


def echo_message(message: Any) -> str:
    """A websocket client's message quoted back, as an error or unknown-message text."""
    return f"{ECHO_TAG}: unrecognised message {json.dumps(message, default=str)}"


def paginate(items: list[Any], cursor: str | None, page_size: int) -> tuple[list[Any], str | None]:
    """Slice `items` at an integer cursor; returns the page and the next cursor (or None)."""
    start = int(cursor or 0)
    end = start + page_size
    return items[start:end], (str(end) if end < len(items) else None)


__all__ = [
    "ECHO_KINDS", "ECHO_STATUS", "ECHO_TAG", "Fault", "FakeVendor", "Request", "echo_answer", "echo_message",
    "paginate", "request_text",
]
