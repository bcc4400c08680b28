"""A throwaway local HTTP webhook receiver for tests, with scripted failures."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Received", "WebhookReceiver"]


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it; ``json`` is None if the body was not JSON."""

    method: str
    path: str
    headers: Mapping[str, str] = field(hash=False)
    json: Any = field(hash=False)
    body: bytes = b""
    status: int = 200  # what the receiver answered


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            parsed: Any = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            parsed = None
        status, extra_headers = self.server.receiver._record(
            method="POST", path=self.path, headers=dict(self.headers.items()), parsed=parsed, raw=raw
        )
        reply = json.dumps({"ok": 200 <= status < 300}).encode()
        self.send_response(status)
        for name, value in extra_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # never let a stuck handler keep the test process alive
    receiver: WebhookReceiver


class WebhookReceiver:
    """Context manager serving POSTs on 127.0.0.1; the first ``fail_first`` get ``fail_status``."""

    def __init__(
        self,
        fail_first: int = 0,
        fail_status: int = 503,
        retry_after: float | int | str | None = None,
        max_lifetime: float = 180.0,
        path: str = "/hook",
    ) -> None:
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.retry_after = retry_after
        self.max_lifetime = max_lifetime
        self.path = path
        self._received: list[Received] = []
        self._cond = threading.Condition()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None
        self._stop_lock = threading.Lock()
        self._stopped = False

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> WebhookReceiver:
        """Bind an ephemeral port and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("receiver already started")
        server = _Server(("127.0.0.1", 0), _Handler)
        server.receiver = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="webhook-receiver", daemon=True
        )
        self._thread.start()
        # Hard cap so a test that forgets to exit the context can't leave a server behind.
        self._timer = threading.Timer(self.max_lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        """Shut the server down; idempotent and safe to call from any thread."""
        with self._stop_lock:
            if self._stopped or self._server is None:
                return
            self._stopped = True
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inspection --------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("receiver not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base_url + self.path

    @property
    def running(self) -> bool:
        return self._server is not None and not self._stopped

    @property
    def received(self) -> list[Received]:
        """Snapshot of every request so far, failed ones included."""
        with self._cond:
            return list(self._received)

    @property
    def bodies(self) -> list[Any]:
        """Parsed JSON bodies of every request so far."""
        return [r.json for r in self.received]

    def wait_for(self, n: int, timeout: float = 5.0) -> list[Received]:
        """Block until at least ``n`` requests arrived; AssertionError on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._received) >= n, timeout=timeout):
                raise AssertionError(
                    f"expected {n} request(s) within {timeout}s, got {len(self._received)}"
                )
            return list(self._received)

    # -- called from handler threads ----------------------------------------------
    def _record(
        self, *, method: str, path: str, headers: dict[str, str], parsed: Any, raw: bytes
    ) -> tuple[int, dict[str, str]]:
        with self._cond:
            failing = len(self._received) < self.fail_first
            status = self.fail_status if failing else 200
            self._received.append(
                Received(method=method, path=path, headers=headers, json=parsed, body=raw, status=status)
            )
            self._cond.notify_all()
        extra: dict[str, str] = {}
        if failing and self.retry_after is not None:
            extra["Retry-After"] = str(self.retry_after)
        return status, extra
