"""Corporate actions into the warehouse, then the price-jump check over the bars they touch."""

from __future__ import annotations

from datetime import UTC, date, datetime
from uuid import uuid4

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.hooks import alert_on_failure
from flows.parameters import UNSET, ActionSourceName, Symbols
from flows.secrets import vendor_settings
from tapeflow.model import Timeframe
from tasks.actions import check, check_price_jumps, fetch_actions, store
from tasks.freshness import note_fetch_failure


@flow(name="ingest-actions", on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def ingest_actions(
    source: ActionSourceName = "replay",
    symbols: Symbols = UNSET,
    start: date = date(2009, 8, 21),
    end: date = date(2010, 8, 20),
) -> dict[str, object]:
    """Fetch the actions with an ex-date in start..end, store the good ones, quarantine the
    rest, then re-run the price-jump check on the stored bars of those days.

    Args:
        source: Where the corporate actions come from (replay: the bundled data/actions/).
        symbols: Symbols to fetch; empty means all the source has.
        start: First ex-date (New York day).
        end: Last ex-date (New York day).
    """
    vendor_settings()  # a vendor's key kept in a Secret block reaches the fetch below
    started_at = datetime.now(UTC)
    params = {"source": source, "symbols": symbols, "start": start, "end": end}

    fetched = fetch_actions(source, symbols, start, end, return_state=True)
    if fetched.is_failed():
        note_fetch_failure(source, "corporate_actions", fetched.message or "fetch failed")
    checked = check(fetched.result())  # re-raises the fetch error: the run fails with its message
    counts = store(checked, flow_run.id or str(uuid4()), source, params, started_at)
    findings = sum(check_price_jumps(timeframe.value, start, end, symbols) for timeframe in Timeframe)

    get_run_logger().info(
        "%s corporate actions: fetched %d, stored %d (new %d, changed %d), unchanged %d, quarantined %d; "
        "%d price jumps left unexplained", source, counts.fetched, counts.stored, counts.inserted, counts.updated,
        counts.unchanged, counts.quarantined, findings)
    return {**counts.as_dict(), "findings": findings}
