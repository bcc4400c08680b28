"""Snapshot the momentum watchlist into the warehouse, point in time."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.hooks import alert_on_failure
from flows.parameters import UNSET, OptionalTime, OptionalWatchlist
from flows.secrets import vendor_settings
from tapeflow.calendar.windows import Skip, watchlist_session
from tapeflow.sources import require_watchlist_source
from tasks.freshness import note_fetch_failure
from tasks.watchlist import check, store, take_snapshot


@flow(name="snapshot-watchlist", on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def snapshot_watchlist(
    source: OptionalWatchlist = UNSET, as_of: OptionalTime = UNSET, limit: int = 20
) -> dict[str, object]:
    """Take one snapshot (BullAlert or the scanner) if the market is in pre-market or
    regular hours at `as_of` (default now); otherwise do nothing and say why.

    Args:
        source: Watchlist source; blank means TAPEFLOW_WATCHLIST_SOURCE.
        as_of: Moment of the snapshot (UTC); blank means now.
        limit: Most names kept, best first.
    """
    source = require_watchlist_source(source or vendor_settings().watchlist_source)  # keys may live in Secret blocks
    at = as_of or datetime.now(UTC)
    try:
        session = watchlist_session(at)
    except Skip as skip:
        get_run_logger().info("skipped: %s", skip)
        return {"skipped": str(skip)}
    started_at = datetime.now(UTC)
    params = {"source": source, "as_of": as_of, "limit": limit}

    taken = take_snapshot(source, session, as_of, limit, return_state=True)
    if taken.is_failed():
        note_fetch_failure(source, "watchlist", taken.message or "fetch failed")
    raw = taken.result()  # re-raises the source's error: the run fails with its message
    checked = check(raw)
    counts = store(checked, flow_run.id or str(uuid4()), source, params, started_at)

    get_run_logger().info("%s %s snapshot at %s: %s", source, session, at.isoformat(), counts.as_dict())
    return {"session": session, **counts.as_dict()}
