"""The reports folder over HTTP on 127.0.0.1, so that flow runs can link `<run_id>/report.html`:
a stdlib server on a thread of `tapeflow serve`, serving that folder and nothing above it."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # serve's terminal is for the stack's own lines


class ReportServer:
    """Serves `folder` on 127.0.0.1:`port` from a daemon thread until `stop()`."""

    def __init__(self, folder: Path, port: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        # SimpleHTTPRequestHandler maps every path inside `directory`, dropping `..` parts.
        handler = functools.partial(_QuietHandler, directory=str(folder.resolve()))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="report-server", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        """The base URL, ending in `/`."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
