"""Scored headlines as a strategy sees them: when each became knowable, and per symbol the
latest catalyst that is still fresh at a decision time.

When is a headline knowable? Live, at the latest of its publication, its fetch and its
scoring, as they happened. A replay or backtest of a past day scores the stored headlines
after the fact (the text and model are the same, so the score is too), so there the scoring
takes `scoring_latency` after the later of publication and fetch: an assumption that backtest
reports state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import polars as pl

from tapeflow.model import check_aware
from tapeflow.news.tickers import TAGGER
from tapeflow.strategy.history import NEWS_COLUMNS, History
from warehouse.reads import scored_news_between

SCORING_LATENCY = timedelta(seconds=5)
"""Assumed time from fetch to score in replays (batched scoring of a few headlines on a CPU)."""
LOOKBACK = timedelta(days=2)
"""How far before a window headlines are read: older catalysts are stale for any strategy."""



@dataclass(frozen=True)
class NewsReading:
    """Which reading of the headlines a strategy gets: the sentiment model version, the tagger,
    and the scoring latency to assume (None: live, the real scoring times)."""

    model: str
    tagger: str
    scoring_latency: timedelta | None = None


FEATURE_SCHEMA = {
    "symbol": pl.String(), "catalyst": pl.String(), "sentiment": pl.String(), "sentiment_score": pl.Float64(),
    "polarity": pl.Float64(), "age_minutes": pl.Float64(), "headline": pl.String(), "published_at": NEWS_COLUMNS["published_at"],
}


def news_view(scored: pl.DataFrame, scoring_latency: timedelta | None) -> pl.DataFrame:
    """`warehouse.reads.scored_news_between` rows in History's news columns.

    `scoring_latency` None: knowable when published, fetched and scored (live); else when
    published and fetched, plus that latency (replays of scores computed later)."""
    if scoring_latency is None:
        knowable = pl.max_horizontal("published_at", "fetched_at", "scored_at")
    else:
        knowable = pl.max_horizontal("published_at", "fetched_at") + scoring_latency
    return scored.with_columns(knowable.alias("knowable_at")).select(list(NEWS_COLUMNS))


def fresh_catalysts(history: History, at: datetime, max_age: timedelta) -> pl.DataFrame:
    """Per symbol, the latest headline knowable at `at` and published at most `max_age` before it."""
    at = check_aware("at", at)
    news = history.until(at).news.filter(pl.col("superseded_at").is_null())  # the versions current at `at`
    fresh = news.filter(pl.col("published_at") >= at - max_age)
    latest = fresh.sort("published_at").group_by("symbol", maintain_order=True).last()
    age = (pl.lit(at) - pl.col("published_at")).dt.total_microseconds() / 60e6
    return latest.with_columns(age.alias("age_minutes")).select(list(FEATURE_SCHEMA)).sort("symbol")


def replayed_news(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, model: str) -> pl.DataFrame:
    """Headlines of [start - LOOKBACK, end) under `model`, knowable as a replay assumes."""
    scored = scored_news_between(con, start - LOOKBACK, end, model, TAGGER)
    return news_view(scored, SCORING_LATENCY)
