"""News batches as polars frames: the raw shape every news source hands over, and the check
that splits a batch into items to store and rows to quarantine.

Batches are small (a few thousand headlines), so the check builds a `model.NewsItem` per row:
one set of rules, the model's, decides what is a valid item.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

import polars as pl

from tapeflow.schemas import RAW_NEWS_SCHEMA
from tapeflow.sources.rows import PAYLOAD_CHARS


def news_row(
    source: str,
    *,
    id: Any = None,
    published_at: datetime | None = None,
    fetched_at: datetime | None = None,
    headline: Any = None,
    summary: Any = None,
    url: Any = None,
    tickers: list[str] | None = None,
    category: Any = None,
    author: Any = None,
    payload: Any = None,
    problem: str | None = None,
) -> dict[str, Any]:
    """One raw row; text fields that are not text become null (and the check says so)."""

    def text(value: Any) -> str | None:
        return value if isinstance(value, str) else None

    body = payload if isinstance(payload, str) else json.dumps(payload, sort_keys=True, default=str)
    return {
        "source": source,
        "id": str(id) if isinstance(id, (str, int)) and not isinstance(id, bool) and str(id) else None,
        "published_at": published_at,
        "fetched_at": fetched_at,
        "headline": text(headline),
        "summary": text(summary),
        "url": text(url),
        "tickers": tickers,
        "category": text(category),
        "author": text(author),
        "payload": body[:PAYLOAD_CHARS],
        "problem": problem,
    }


def raw_news(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Raw rows (from `news_row`) as a batch in RAW_NEWS_SCHEMA."""
    return pl.DataFrame(rows, schema=RAW_NEWS_SCHEMA)


def empty_raw_news() -> pl.DataFrame:
    return pl.DataFrame(schema=RAW_NEWS_SCHEMA)


def payload_digest(payload: str) -> str:
    return hashlib.sha256(payload.encode()).hexdigest()[:32]
