"""The alert book: every alert is recorded in the `alerts` table with what became of it, and
one whose key was delivered within the dedup window is recorded but not sent again.

The `delivered` column holds the channel an alert went to (`webhook:slack`, `log`), or
`suppressed: ...` / `failed: ...`. Only a real delivery starts a new window, so a failed
send is tried again on the next raise. Title, message and context are scrubbed of every
configured secret before they are sent or stored.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from tapeflow.ops.alerts import Alert, AlertChannel, LogChannel, channel_from_settings
from tapeflow.redact import redact_text
from warehouse.connection import Warehouse

if TYPE_CHECKING:
    from tapeflow.config import Settings

log = logging.getLogger("tapeflow.alerts")

DELIVERED = "delivered"
SUPPRESSED = "suppressed"
FAILED = "failed"
# A row is a real delivery unless its `delivered` text starts with one of these.
_NOT_SENT = (f"{SUPPRESSED}:", f"{FAILED}:")
# An alert never waits long on a busy warehouse (a long query may hold it): it is sent anyway,
# undeduplicated, and the failure to record it is logged.
BOOK_WAIT_S = 2.0


@dataclass(frozen=True)
class AlertOutcome:
    """What became of one raised alert: delivered, suppressed or failed, and whether it was recorded."""

    key: str
    kind: str
    status: str  # delivered | suppressed | failed
    detail: str  # what the alerts table's `delivered` column says
    recorded: bool

    @property
    def delivered(self) -> bool:
        return self.status == DELIVERED


def _channel_name(channel: AlertChannel) -> str:
    return str(getattr(channel, "name", type(channel).__name__))


class AlertBook:
    """Raise alerts through `channel`, deduplicated by key within `window`, recorded in `warehouse`."""

    def __init__(self, warehouse: Warehouse, channel: AlertChannel, window: timedelta = timedelta(minutes=30),
                 *, secrets: Sequence[str] = ()) -> None:
        if window < timedelta(0):
            raise ValueError(f"dedup window must be >= 0, got {window}")
        self.warehouse = warehouse
        self.channel = channel
        self.window = window
        self._secrets = [s for s in secrets if s]

    def __repr__(self) -> str:
        return f"AlertBook({self.warehouse!r}, channel={_channel_name(self.channel)!r}, window={self.window})"

    def raise_alert(self, alert: Alert, key: str, *, kind: str | None = None) -> AlertOutcome:
        """Send `alert` unless `key` was delivered within the window; record it either way.
        Never raises for a channel or warehouse failure: the outcome says what happened."""
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"an alert needs a non-empty key, got {key!r}")
        kind = kind or key.split(":", 1)[0]
        alert = self._scrubbed(alert)

        last = self._last_delivery(key)
        if last is not None and alert.at - last < self.window:
            status = SUPPRESSED
            detail = f"{SUPPRESSED}: delivered {last.isoformat()} within the {_human(self.window)} window"
            log.debug("alert %s suppressed (%s)", key, detail)
        else:
            try:
                self.channel.send(alert)
            except Exception as exc:
                status = FAILED
                detail = f"{FAILED}: {_channel_name(self.channel)}: {self._scrub(str(exc)) or type(exc).__name__}"
                log.error("could not deliver alert %s: %s", key, detail)
            else:
                status, detail = DELIVERED, _channel_name(self.channel)
        recorded = self._record(alert, key, kind, detail)
        return AlertOutcome(key=key, kind=kind, status=status, detail=detail, recorded=recorded)

    # -- the warehouse side -----------------------------------------------------------------

    def _last_delivery(self, key: str) -> datetime | None:
        try:
            with self.warehouse.waiting_at_most(BOOK_WAIT_S).write() as con:
                row = con.execute(
                    "SELECT max(ts) FROM alerts WHERE alert_key = ? AND NOT starts_with(delivered, ?) "
                    "AND NOT starts_with(delivered, ?)", [key, *_NOT_SENT]).fetchone()
        except Exception as exc:
            log.warning("alert %s: could not read past alerts (%s): sending without dedup", key, type(exc).__name__)
            return None
        return row[0] if row else None

    def _record(self, alert: Alert, key: str, kind: str, detail: str) -> bool:
        try:
            with self.warehouse.waiting_at_most(BOOK_WAIT_S).write() as con:
                # The same key at the same instant is the same event: kept once.
                con.execute("INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                            [key, alert.at, alert.component, kind, alert.severity, alert.title, alert.message, detail])
        except Exception as exc:
            log.error("could not record alert %s (%s): %s", key, type(exc).__name__, alert.text)
            return False
        return True

    # -- secrets ---------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        return redact_text(text, self._secrets)

    def _scrubbed(self, alert: Alert) -> Alert:
        if not self._secrets:
            return alert
        context = json.loads(self._scrub(json.dumps(dict(alert.context), default=str)))
        return dataclasses.replace(alert, component=self._scrub(alert.component), title=self._scrub(alert.title),
                                   message=self._scrub(alert.message), context=context)


def _human(window: timedelta) -> str:
    seconds = window.total_seconds()
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def book_from_settings(settings: Settings, warehouse: Warehouse) -> AlertBook:
    """The book the settings describe: their channel (the log if the webhook URL is unusable)
    and window, scrubbing their secrets."""
    channel: AlertChannel
    try:
        channel = channel_from_settings(settings)
    except ValueError as exc:  # a mistyped URL must not silence every alert
        log.error("alert webhook unusable (%s): alerts go to the log", exc)
        channel = LogChannel()
    return AlertBook(warehouse, channel, timedelta(seconds=settings.alert_dedup_window_s),
                     secrets=settings.secret_values())
