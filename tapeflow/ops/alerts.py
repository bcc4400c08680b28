"""Alert channels: a webhook poster with retries (generic JSON, Slack or Discord bodies) and a
stdlib-logging fallback."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol, runtime_checkable
from urllib.parse import urlsplit

import requests

from tapeflow.model import check_aware
from tapeflow.redact import guard_http_debug_logs, redact_url

if TYPE_CHECKING:
    from tapeflow.config import Settings

__all__ = [
    "FORMATS",
    "SEVERITIES",
    "Alert",
    "AlertChannel",
    "AlertDeliveryError",
    "LogChannel",
    "Severity",
    "WebhookChannel",
    "channel_from_settings",
    "format_payload",
    "redact_url",
]


class Severity(StrEnum):
    """How loudly an alert speaks, quietest first."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


SEVERITIES: tuple[str, ...] = tuple(s.value for s in Severity)
FORMATS: tuple[str, ...] = ("generic", "slack", "discord")

# Receivers refuse (HTTP 400) bodies over their limits; an alert must still get through.
SLACK_HEADER_MAX = 150
SLACK_TEXT_MAX = 3000
DISCORD_CONTENT_MAX = 2000
DISCORD_TITLE_MAX = 256
DISCORD_DESCRIPTION_MAX = 4096
_DISCORD_COLOURS: Mapping[str, int] = MappingProxyType({"info": 0x3498DB, "warning": 0xF1C40F, "critical": 0xE74C3C})

# Upper bound on any single wait between attempts; a receiver asking for more
# than this should not stall a pipeline run.
MAX_RETRY_DELAY_S = 30.0

_LOG_LEVELS: Mapping[str, int] = MappingProxyType(
    {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}
)

# Module-level indirection so tests can skip real waits without patching time.sleep
# globally (which would also slow down or break unrelated threads).
_sleep = time.sleep


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Alert:
    """One alert event; ``at`` is normalised to aware UTC and severity (a Severity or its
    name) becomes a Severity."""

    component: str
    severity: Severity
    title: str
    message: str
    # Excluded from hashing because mappings are unhashable; still compared.
    context: Mapping[str, object] = field(default_factory=dict, hash=False)
    at: datetime = field(default_factory=_utc_now)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")
        # Frozen dataclass: bypass __setattr__ to store normalised values.
        object.__setattr__(self, "severity", Severity(self.severity))
        object.__setattr__(self, "at", check_aware("at", self.at))
        # Snapshot the caller's mapping so later mutation can't change a sent alert.
        object.__setattr__(self, "context", MappingProxyType(dict(self.context)))

    @property
    def text(self) -> str:
        """One-line human summary, as shown by Slack-style receivers."""
        return f"[{self.severity}] {self.title}: {self.message}"

    def to_payload(self) -> dict[str, object]:
        """JSON-ready body: component, severity, title, message, context, at (ISO-8601 UTC)."""
        return {
            "component": self.component,
            "severity": self.severity,
            "title": self.title,
            "message": self.message,
            "context": dict(self.context),
            "at": self.at.isoformat(),
        }


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _slack_escape(text: str) -> str:
    # Slack reads <...> as links and mentions (<!channel>): a vendor's message must not ping anyone.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def format_payload(alert: Alert, fmt: str = "generic") -> dict[str, object]:
    """The JSON body for a receiver: generic (all fields plus `text`), Slack or Discord."""
    if fmt == "generic":
        return {**alert.to_payload(), "text": alert.text}
    if fmt == "slack":
        details = f"*{alert.severity}* · {_slack_escape(alert.component)} · {alert.at.isoformat()}"
        return {
            "text": _clip(_slack_escape(alert.text), SLACK_TEXT_MAX),
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": _clip(alert.title or alert.severity, SLACK_HEADER_MAX)}},
                {"type": "section", "text": {"type": "mrkdwn", "text": _clip(_slack_escape(alert.message) or "-", SLACK_TEXT_MAX)}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": details}]},
            ],
        }
    if fmt == "discord":
        return {
            "content": _clip(alert.text, DISCORD_CONTENT_MAX),
            # No @everyone or role pings from text that vendors and users wrote.
            "allowed_mentions": {"parse": []},
            "embeds": [{
                "title": _clip(alert.title or alert.severity, DISCORD_TITLE_MAX),
                "description": _clip(alert.message or "-", DISCORD_DESCRIPTION_MAX),
                "color": _DISCORD_COLOURS[alert.severity],
                "timestamp": alert.at.isoformat(),
                "fields": [
                    {"name": "severity", "value": alert.severity, "inline": True},
                    {"name": "component", "value": _clip(alert.component, 1024), "inline": True},
                ],
            }],
        }
    raise ValueError(f"alert format must be one of {FORMATS}, got {fmt!r}")


@runtime_checkable
class AlertChannel(Protocol):
    """Anything that can deliver an :class:`Alert`."""

    def send(self, alert: Alert) -> None: ...


class AlertDeliveryError(RuntimeError):
    """Raised when an alert could not be delivered; the message names the host only."""

    def __init__(self, message: str, *, target: str, attempts: int, status: int | None = None) -> None:
        super().__init__(message)
        self.target = target
        self.attempts = attempts
        self.status = status


def _retry_after_seconds(response: requests.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None  # HTTP-date form: not worth parsing for alerting; fall back to backoff
    if value != value or value < 0:  # NaN or negative
        return None
    return min(value, MAX_RETRY_DELAY_S)


class WebhookChannel:
    """POSTs alerts as JSON to a URL, in the generic, Slack or Discord shape (`fmt`)."""

    def __init__(
        self, url: str, timeout: float = 5.0, attempts: int = 3, backoff: float = 0.5, fmt: str = "generic"
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"alert format must be one of {FORMATS}, got {fmt!r}")
        target = redact_url(url)
        if target == "<invalid url>" or urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"webhook url must be an http(s) URL with a host, got {target}")
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        if backoff < 0:
            raise ValueError("backoff must be >= 0")
        self._url = url
        self._target = target.removesuffix("/…")
        self.timeout = float(timeout)
        self.attempts = int(attempts)
        self.backoff = float(backoff)
        self.fmt = fmt
        self._session = requests.Session()
        guard_http_debug_logs()

    def __repr__(self) -> str:
        return (f"WebhookChannel(target={self._target!r}, fmt={self.fmt!r}, attempts={self.attempts}, "
                f"timeout={self.timeout})")

    @property
    def name(self) -> str:
        """What the alerts table records as the channel: the kind, never the URL."""
        return f"webhook:{self.fmt}"

    def close(self) -> None:
        """Release pooled connections."""
        self._session.close()

    def __enter__(self) -> WebhookChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _delay(self, attempt: int, response: requests.Response | None) -> float:
        if response is not None:
            hinted = _retry_after_seconds(response)
            if hinted is not None:
                return hinted
        return min(self.backoff * (2 ** (attempt - 1)), MAX_RETRY_DELAY_S)

    def send(self, alert: Alert) -> None:
        """Deliver ``alert``; retries transient failures, raises AlertDeliveryError otherwise."""
        body = format_payload(alert, self.fmt)
        # default=str: a stray non-JSON value in context must not stop the alert going out.
        data = json.dumps(body, default=str).encode("utf-8")
        headers = {"Content-Type": "application/json"}

        failure = "no attempt made"
        status: int | None = None
        for attempt in range(1, self.attempts + 1):
            response: requests.Response | None = None
            try:
                # No redirects: a redirected POST would silently become a GET elsewhere.
                response = self._session.post(
                    self._url, data=data, headers=headers, timeout=self.timeout, allow_redirects=False
                )
            except requests.Timeout:
                failure, status = "timed out", None
            except requests.ConnectionError:
                failure, status = "connection failed", None
            except requests.RequestException as exc:
                # Anything else (bad URL, invalid header...) will not improve on retry.
                # Only the class name: requests' messages embed the full URL.
                raise AlertDeliveryError(
                    f"alert delivery to {self._target} failed: {type(exc).__name__}",
                    target=self._target,
                    attempts=attempt,
                ) from None
            else:
                with response:
                    code = response.status_code
                    if 200 <= code < 300:
                        return
                    status = code
                    failure = f"HTTP {code}"
                    if not (code == 429 or code >= 500):
                        raise AlertDeliveryError(
                            f"alert delivery to {self._target} rejected: HTTP {code}",
                            target=self._target,
                            attempts=attempt,
                            status=code,
                        )
            if attempt < self.attempts:
                _sleep(self._delay(attempt, response))

        # Raised outside any except block so no chained exception carries the URL.
        raise AlertDeliveryError(
            f"alert delivery to {self._target} failed after {self.attempts} attempt(s): {failure}",
            target=self._target,
            attempts=self.attempts,
            status=status,
        )


class LogChannel:
    """Writes alerts to the stdlib logger ``tapeflow.alerts`` at a level matching severity."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger if logger is not None else logging.getLogger("tapeflow.alerts")

    def __repr__(self) -> str:
        return f"LogChannel(logger={self.logger.name!r})"

    @property
    def name(self) -> str:
        return "log"

    def send(self, alert: Alert) -> None:
        """Log ``alert``; the full payload rides along as ``record.alert``."""
        self.logger.log(
            _LOG_LEVELS[alert.severity],
            "%s (component=%s)",
            alert.text,
            alert.component,
            extra={"alert": alert.to_payload()},
        )


def channel_from_settings(settings: Settings) -> AlertChannel:
    """The webhook when `TAPEFLOW_ALERT_WEBHOOK_URL` is set (body shaped by
    `TAPEFLOW_ALERT_FORMAT`), otherwise the log."""
    if settings.alert_webhook_url is not None:
        return WebhookChannel(settings.alert_webhook_url.get_secret_value(), fmt=settings.alert_format)
    return LogChannel()
