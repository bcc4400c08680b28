"""Keeping secrets out of text: URLs reduced to what identifies the host, nothing more."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit


def redact_url(url: str) -> str:
    """Return ``scheme://host[:port]`` plus ``/…`` if anything followed; never path, query or userinfo."""
    try:
        parts = urlsplit(str(url))
        host = parts.hostname
        port = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return "<invalid url>"
    if not parts.scheme or not host:
        return "<invalid url>"
    if ":" in host:  # IPv6 literal needs its brackets back
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    has_rest = bool(parts.path.strip("/") or parts.query or parts.fragment)
    return f"{parts.scheme}://{netloc}" + ("/…" if has_rest else "")


def redact_text(text: str, secrets: list[str]) -> str:
    """`text` with every secret value replaced by `**********`."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "**********")
    return text


class _RequestLineFilter(logging.Filter):
    """urllib3 logs each request's path and query at DEBUG; keys and webhook tokens live there."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                "/…" if isinstance(arg, str) and arg.startswith("/") and len(arg) > 1 else arg for arg in record.args
            )
        return True


def guard_http_debug_logs() -> None:
    """Install the urllib3 request-line filter once per process."""
    logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _RequestLineFilter) for f in logger.filters):
        logger.addFilter(_RequestLineFilter())
