"""The alert book: every alert is recorded in the `alerts` table with what became of it, and
one whose key was delivered within the dedup window is recorded but not sent again: it is
counted on the delivered row (`repeats`), and one summary tells of the repeats once the
window has closed.

The `delivered` column holds the channel an alert went to (`webhook:slack`, `log`), or
`suppressed: ...` / `failed: ...`. Only a real delivery starts a new window, so a failed
send is tried again on the next raise; a summary is tried once. Title, message and context
are scrubbed of every configured secret before they are sent or stored.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from tapeflow.ops.alerts import Alert, AlertChannel, LogChannel, Severity, channel_from_settings
from tapeflow.redact import redact_text
from warehouse.connection import Warehouse

if TYPE_CHECKING:
    from tapeflow.config import Settings

log = logging.getLogger("tapeflow.alerts")

DELIVERED = "delivered"
SUPPRESSED = "suppressed"
FAILED = "failed"
# A summary's kind, and its key's first part (its alert's key follows): a kind of its own, so
# checks reading their kind's last alert (a disconnect's recovery) never take a summary for it.
REPEATS = "repeats"
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


@dataclass(frozen=True)
class Delivery:
    """The last delivered alert of a key and the repeats suppressed in its window."""

    key: str
    at: datetime
    component: str
    kind: str
    title: str
    repeats: int
    last_repeat_at: datetime | None
    summarised_at: datetime | None

    @property
    def owes_summary(self) -> bool:
        return self.repeats > 0 and self.summarised_at is None


def summary_of(delivery: Delivery, at: datetime) -> Alert:
    """The one alert that tells of a closed window's suppressed repeats."""
    n, last = delivery.repeats, delivery.last_repeat_at or delivery.at
    return Alert(component=delivery.component, severity=Severity.INFO,
                 title=f"{n} repeat{'s' if n != 1 else ''} of {delivery.title} suppressed",
                 message=f"{n} repeat{'s' if n != 1 else ''} of {delivery.key} suppressed between "
                         f"{delivery.at.isoformat()} (when it was sent) and {last.isoformat()}",
                 context={"key": delivery.key, "repeats": n, "sent_at": delivery.at.isoformat(),
                          "last_repeat_at": last.isoformat()}, at=at)


def _channel_name(channel: AlertChannel) -> str:
    return str(getattr(channel, "name", type(channel).__name__))


# The columns `Delivery` is read from.
_DELIVERY = "alert_key, ts, component, kind, title, repeats, last_repeat_at, summarised_at"
_REAL_DELIVERY = "NOT starts_with(delivered, ?) AND NOT starts_with(delivered, ?)"


class AlertBook:
    """Raise alerts through `channel`, deduplicated by key within `window`, recorded in `warehouse`;
    the repeats a window suppressed are counted and summarised once it closes."""

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
        """Send `alert` unless `key` was delivered within the window (then count it as a repeat);
        record it either way. A closed window's repeats are summarised before the new alert goes.
        Never raises for a channel or warehouse failure: the outcome says what happened."""
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"an alert needs a non-empty key, got {key!r}")
        kind = kind or key.split(":", 1)[0]
        alert = self._scrubbed(alert)

        last = self._last_delivery(key)
        if last is not None and alert.at - last.at < self.window:
            detail = f"{SUPPRESSED}: delivered {last.at.isoformat()} within the {_human(self.window)} window"
            log.debug("alert %s suppressed (%s)", key, detail)
            recorded = self._record(alert, key, kind, detail, repeat_of=last)
            return AlertOutcome(key=key, kind=kind, status=SUPPRESSED, detail=detail, recorded=recorded)
        if last is not None and last.owes_summary:
            self._summarise(last, alert.at)
        status, detail = self._send(alert, key)
        recorded = self._record(alert, key, kind, detail)
        return AlertOutcome(key=key, kind=kind, status=status, detail=detail, recorded=recorded)

    def summarise_closed(self, now: datetime) -> list[AlertOutcome]:
        """Summarise the repeats of every window closed by `now` not yet summarised (the monitor
        calls this each pass, so a condition that stops still has its repeats told)."""
        try:
            with self.warehouse.waiting_at_most(BOOK_WAIT_S).write() as con:
                rows = con.execute(
                    f"SELECT {_DELIVERY} FROM alerts WHERE repeats > 0 AND summarised_at IS NULL AND ts <= ? "
                    f"AND {_REAL_DELIVERY} ORDER BY ts, alert_key", [now - self.window, *_NOT_SENT]).fetchall()
        except Exception as exc:
            log.warning("could not look for suppressed repeats (%s)", type(exc).__name__)
            return []
        outcomes = [self._summarise(Delivery(*row), now) for row in rows]
        return [o for o in outcomes if o is not None]

    # -- sending ---------------------------------------------------------------------------

    def _send(self, alert: Alert, key: str) -> tuple[str, str]:
        try:
            self.channel.send(alert)
        except Exception as exc:
            detail = f"{FAILED}: {_channel_name(self.channel)}: {self._scrub(str(exc)) or type(exc).__name__}"
            log.error("could not deliver alert %s: %s", key, detail)
            return FAILED, detail
        return DELIVERED, _channel_name(self.channel)

    def _summarise(self, delivery: Delivery, at: datetime) -> AlertOutcome | None:
        """Claim the window's summary (one process sends it), send it once, record it."""
        if not self._claim_summary(delivery, at):
            return None
        summary = self._scrubbed(summary_of(delivery, at))
        key = f"{REPEATS}:{delivery.key}"
        status, detail = self._send(summary, key)
        recorded = self._record(summary, key, REPEATS, detail)
        return AlertOutcome(key=key, kind=REPEATS, status=status, detail=detail, recorded=recorded)

    # -- the warehouse side -----------------------------------------------------------------

    def _last_delivery(self, key: str) -> Delivery | None:
        try:
            with self.warehouse.waiting_at_most(BOOK_WAIT_S).write() as con:
                row = con.execute(f"SELECT {_DELIVERY} FROM alerts WHERE alert_key = ? AND {_REAL_DELIVERY} "
                                  "ORDER BY ts DESC LIMIT 1", [key, *_NOT_SENT]).fetchone()
        except Exception as exc:
            log.warning("alert %s: could not read past alerts (%s): sending without dedup", key, type(exc).__name__)
            return None
        return Delivery(*row) if row else None

    def _claim_summary(self, delivery: Delivery, at: datetime) -> bool:
        try:
            with self.warehouse.waiting_at_most(BOOK_WAIT_S).write() as con:
                claimed = con.execute("UPDATE alerts SET summarised_at = ? WHERE alert_key = ? AND ts = ? "
                                      "AND summarised_at IS NULL RETURNING alert_key",
                                      [at, delivery.key, delivery.at]).fetchall()
        except Exception as exc:
            log.warning("alert %s: could not claim its repeats' summary (%s)", delivery.key, type(exc).__name__)
            return False
        return bool(claimed)

    def _record(self, alert: Alert, key: str, kind: str, detail: str, *, repeat_of: Delivery | None = None) -> bool:
        try:
            with self.warehouse.waiting_at_most(BOOK_WAIT_S).write() as con:
                # The same key at the same instant is the same event: kept once, counted once.
                inserted = con.execute(
                    "INSERT INTO alerts (alert_key, ts, component, kind, severity, title, message, delivered) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING alert_key",
                    [key, alert.at, alert.component, kind, alert.severity, alert.title, alert.message, detail]).fetchall()
                if inserted and repeat_of is not None:
                    con.execute("UPDATE alerts SET repeats = repeats + 1, last_repeat_at = greatest(coalesce("
                                "last_repeat_at, ?), ?) WHERE alert_key = ? AND ts = ?",
                                [alert.at, alert.at, repeat_of.key, repeat_of.at])
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
