"""Keeping secrets out of text: URLs reduced to what identifies the host, known secret values
masked, and anything that looks like a credential (a bearer token, a key or token header,
field or query parameter) masked whatever its value."""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Iterable
from urllib.parse import urlsplit

MASK = "**********"
# A credential's name (header, JSON field, query parameter, form field), its separator and
# its value; the name stays, so a stored page still says what was there.
_NAMED = re.compile(
    r"""(?ix)
    (?P<name>["']?(?:[a-z0-9]+[-_])*(?:api[-_]?key|apikey|key[-_]?id|secret[-_]?key|secret|token|access[-_]?token|
        password|passwd|authorization|x[-_][a-z0-9-]*(?:key|token|secret))["']?)
    (?P<sep>\s*[:=]\s*["']?)
    (?P<value>(?:bearer\s+|basic\s+|token\s+)?[^\s"'&,;}<]+)
    """)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")


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
        text = text.replace(secret, MASK)
    return text


def redact_credentials(text: str) -> str:
    """`text` with the value of anything named like a credential masked, and every bearer or
    basic token: for text whose secrets are not known, e.g. a vendor page echoing a request."""
    text = _NAMED.sub(lambda m: f"{m['name']}{m['sep']}{MASK}", text)
    return _BEARER.sub(lambda m: f"{m[1]} {MASK}", text)


class _RequestLineFilter(logging.Filter):
    """urllib3 logs each request's path and query at DEBUG; keys and webhook tokens live there."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                "/…" if isinstance(arg, str) and arg.startswith("/") and len(arg) > 1 else arg for arg in record.args
            )
        return True


class _SecretLogFilter(logging.Filter):
    """Masks known secrets, and anything named like a credential, in a record's message and traceback."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: tuple[str, ...] = ()  # replaced whole, never changed in place: loggers run on many threads

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the format: the handler reports it, not the caller
            return True
        masked = self.mask(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and record.exc_info[1] is not None:
            # The traceback repeats the exception's text: it goes on as masked text only, so
            # that no handler renders the exception itself.
            shown = record.exc_text or "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text, record.exc_info = self.mask(shown), None
        return True

    def mask(self, text: str) -> str:
        return redact_credentials(redact_text(text, list(self.secrets)))


_SECRET_LOG_FILTER = _SecretLogFilter()


def guard_logs(logger_names: Iterable[str], secrets: Iterable[str]) -> None:
    """From now on, mask `secrets` and anything named like a credential in what these loggers
    record: for a vendor SDK that logs what its server said, which may quote our request."""
    _SECRET_LOG_FILTER.secrets = tuple(sorted({*_SECRET_LOG_FILTER.secrets, *(s for s in secrets if s)}))
    for name in logger_names:
        logger = logging.getLogger(name)
        if _SECRET_LOG_FILTER not in logger.filters:
            logger.addFilter(_SECRET_LOG_FILTER)


def guard_http_debug_logs() -> None:
    """Install the urllib3 request-line filter once per process."""
    logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _RequestLineFilter) for f in logger.filters):
        logger.addFilter(_RequestLineFilter())
