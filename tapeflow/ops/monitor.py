"""One monitor pass: collect findings (warehouse, then the broker, each opened briefly), raise
them through the alert book, and leave the monitor's heartbeat (the next pass's 'since')."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime

from tapeflow.brokers.base import BrokerError
from tapeflow.config import Settings
from tapeflow.model import check_aware
from tapeflow.ops.alert_book import DELIVERED, FAILED, SUPPRESSED, AlertBook
from tapeflow.ops.alerts import Severity
from tapeflow.ops.checks import (
    MONITOR_COMPONENT,
    Finding,
    MonitorConfig,
    broker_unreachable,
    check_broker,
    warehouse_findings,
)
from tapeflow.ops.watch_broker import open_watch_broker
from warehouse.connection import Warehouse


@dataclass(frozen=True)
class MonitorCounts:
    """What one pass found and what became of its alerts."""

    findings: int = 0
    critical: int = 0
    delivered: int = 0
    suppressed: int = 0
    failed: int = 0
    summaries: int = 0  # closed windows whose suppressed repeats were told

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def collect(settings: Settings, warehouse: Warehouse, now: datetime, *, broker: bool = True) -> list[Finding]:
    """Every check at `now`; with `broker`, the configured broker is opened, read and closed."""
    now = check_aware("now", now)
    config = MonitorConfig.from_settings(settings)
    findings = warehouse_findings(warehouse, now, config)
    if broker:
        findings += broker_check(settings, warehouse, now, config)
    return findings


def broker_check(settings: Settings, warehouse: Warehouse, now: datetime, config: MonitorConfig) -> list[Finding]:
    """Open the configured broker for reading, check it against the ledger, close it."""
    try:
        opened = open_watch_broker(settings, warehouse)
    except BrokerError as exc:  # cannot connect (or log in): that is the disconnect to report
        return [broker_unreachable(settings.broker, settings.mode.value, exc, now)]
    try:
        return check_broker(opened, warehouse, now, config)
    finally:
        opened.close()


def raise_findings(book: AlertBook, findings: list[Finding], now: datetime) -> MonitorCounts:
    """Raise each finding's alert under its key, then summarise the repeats of every window
    closed by `now`; count what was delivered, suppressed, failed and summarised."""
    status = [book.raise_alert(f.alert, f.key, kind=f.kind).status for f in findings]
    summaries = book.summarise_closed(check_aware("now", now))
    return MonitorCounts(findings=len(findings), critical=sum(f.severity == Severity.CRITICAL for f in findings),
                         delivered=status.count(DELIVERED), suppressed=status.count(SUPPRESSED),
                         failed=status.count(FAILED), summaries=len(summaries))


def record_pass(warehouse: Warehouse, now: datetime, counts: MonitorCounts) -> None:
    """The monitor's heartbeat at `now`; rejected orders are looked for after the newest one."""
    with warehouse.write() as con:
        con.execute("INSERT INTO heartbeats VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    [MONITOR_COMPONENT, check_aware("now", now), json.dumps(counts.as_dict())])
