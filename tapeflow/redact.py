"""Keeping secrets out of text: URLs reduced to what identifies the host, nothing more."""

from __future__ import annotations

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
