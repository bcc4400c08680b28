"""Headlines into the warehouse: fetch from a news source, store the good ones, quarantine the
rest, then tag (tickers, catalyst class) and score (sentiment) everything new."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.hooks import alert_on_failure
from flows.parameters import UNSET, OptionalNews, OptionalTime, Symbols
from flows.secrets import vendor_settings
from tapeflow.news import require_news_source
from tapeflow.sources import Window
from tasks.freshness import note_fetch_failure
from tasks.news import check, fetch_news, read_new, store


@flow(name="ingest-news", on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def ingest_news(
    source: OptionalNews = UNSET,
    symbols: Symbols = UNSET,
    start: OptionalTime = UNSET,
    end: OptionalTime = UNSET,
    lookback_minutes: int = 30,
) -> dict[str, object]:
    """Fetch headlines published in [start, end) (default: the last `lookback_minutes`), store,
    tag and score them. Re-running a window changes nothing already stored.

    Args:
        source: News vendor; blank means TAPEFLOW_NEWS_SOURCE (replay: the bundled headlines).
        symbols: Only headlines about these symbols; empty means all.
        start: Earliest publish time (UTC); blank means lookback_minutes before end.
        end: Publish time before which headlines are fetched (UTC); blank means now.
        lookback_minutes: Window length when start is blank.
    """
    source = require_news_source(source or vendor_settings().news_source)  # keys may live in Secret blocks
    started_at = datetime.now(UTC)
    end = end or started_at
    start = start or end - timedelta(minutes=lookback_minutes)
    params = {"source": source, "symbols": symbols, "start": start, "end": end}

    fetched = fetch_news(source, symbols, Window(start, end), return_state=True)
    if fetched.is_failed():
        note_fetch_failure(source, "news", fetched.message or "fetch failed")
    checked = check(fetched.result())  # re-raises the fetch error: the run fails with its message
    counts = store(checked, flow_run.id or str(uuid4()), source, "news", params, started_at)
    read = read_new()

    get_run_logger().info(
        "%s news: fetched %d, stored %d (new %d, changed %d), unchanged %d, quarantined %d; tagged %d, scored %d with %s",
        source, counts.fetched, counts.stored, counts.inserted, counts.updated, counts.unchanged,
        counts.quarantined, read["tagged"], read["scored"], read["model"],
    )
    return {**counts.as_dict(), **read}


@flow(name="score-news", on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def score_news() -> dict[str, object]:
    """Tag and score every stored headline the current tagger and model have not read (after
    training a new model, this scores the history again beside the old scores)."""
    return read_new()
