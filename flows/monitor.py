"""Watch the trading pipeline during the session and alert on what is wrong."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, get_run_logger

from flows.hooks import alert_on_failure
from flows.parameters import UNSET, OptionalTime
from flows.secrets import vendor_settings
from tapeflow.calendar.exchange import NEW_YORK
from tapeflow.ops.checks import in_session
from tasks.monitor import alert, look


@flow(name="monitor", on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def monitor(at: OptionalTime = UNSET, broker: bool = True) -> dict[str, object]:
    """Check heartbeats, data freshness, the broker, positions, rejections, the breaker and the
    kill switch at `at` (default now) while the regular session is open; raise alerts.

    Args:
        at: Moment checked (UTC); blank means now.
        broker: Also ask the broker for its account, positions and orders.
    """
    now = at or datetime.now(UTC)
    if not in_session(now):
        reason = f"{now.astimezone(NEW_YORK):%Y-%m-%d %H:%M %Z} is outside the regular session: nothing to watch"
        get_run_logger().info("skipped: %s", reason)
        return {"skipped": reason}
    vendor_settings()  # the broker check may need keys kept in Secret blocks
    findings = look(now, broker)
    counts = alert(findings, now)
    get_run_logger().info("monitor at %s: %s", now.isoformat(), counts.as_dict())
    return counts.as_dict()
