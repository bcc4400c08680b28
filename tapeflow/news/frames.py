"""News batches as polars frames: the raw shape every news source hands over, and the check
that splits a batch into items to store and rows to quarantine.

Batches are small (a few thousand headlines), so the check builds a `model.NewsItem` per row:
one set of rules, the model's, decides what is a valid item.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from tapeflow.bar_frames import UTC_TS
from tapeflow.model import InvalidRecord, NewsItem
from tapeflow.sources.rows import PAYLOAD_CHARS

NEWS_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "id": pl.String(),
    "published_at": UTC_TS,
    "fetched_at": UTC_TS,
    "headline": pl.String(),
    "summary": pl.String(),
    "url": pl.String(),
    "tickers": pl.List(pl.String()),
    "category": pl.String(),
    "author": pl.String(),
    "payload_hash": pl.String(),
    "payload": pl.String(),
}
"""Columns of a checked batch, as the `news` table stores them."""

NEWS_KEY = ("source", "id")
RAW_NEWS_SCHEMA: dict[str, pl.DataType] = {
    **{k: v for k, v in NEWS_SCHEMA.items() if k != "payload_hash"},
    "problem": pl.String(),
}
"""What a news source hands over: one row per item the vendor sent, fields it could not read
left null, the vendor's item as JSON text in `payload`, and `problem` saying what was wrong
(null when the adapter found nothing wrong). Sources never drop or repair items."""



@dataclass(frozen=True)
class CheckedNews:
    """`good` in NEWS_SCHEMA; `rejected` as (source, reason, payload)."""

    good: pl.DataFrame
    rejected: pl.DataFrame


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


def check_news(raw: pl.DataFrame) -> CheckedNews:
    """Split a raw batch into storable items and rejected rows with their reasons."""
    missing = [c for c in RAW_NEWS_SCHEMA if c not in raw.columns]
    if missing:
        raise ValueError(f"news batch lacks columns {missing}")
    good: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], int] = {}
    for row in raw.iter_rows(named=True):
        reason = row["problem"] or _invalid(row)
        if reason is None:
            key = (row["source"], row["id"])
            if key in seen and good[seen[key]]["payload"] == row["payload"]:
                continue  # the same item twice (asked for under two of its tickers): one item
            if key in seen:  # two different items under one id: keep the first, say so for the second
                reason = f"duplicate of item {row['id']!r} in the same batch, with a different payload"
            else:
                seen[key] = len(good)
                good.append({**{k: row[k] for k in NEWS_SCHEMA if k != "payload_hash"},
                             "tickers": sorted(set(row["tickers"] or [])),
                             "payload_hash": payload_digest(row["payload"] or "")})
        if reason is not None:
            rejected.append({"source": row["source"] or "unknown", "reason": reason, "payload": row["payload"] or ""})
    return CheckedNews(
        good=pl.DataFrame(good, schema=NEWS_SCHEMA).select(list(NEWS_SCHEMA)),
        rejected=pl.DataFrame(rejected, schema={"source": pl.String, "reason": pl.String, "payload": pl.String}),
    )


def _invalid(row: dict[str, Any]) -> str | None:
    """Why the row is not a valid NewsItem, or None."""
    for name in ("id", "published_at", "fetched_at", "headline"):
        if row[name] is None:
            return f"{name} is missing"
    try:
        NewsItem(
            source=row["source"] or "", id=row["id"], published_at=row["published_at"], fetched_at=row["fetched_at"],
            headline=row["headline"], summary=row["summary"] or "", url=row["url"] or "",
            tickers=tuple(row["tickers"] or ()), category=row["category"], author=row["author"] or "",
        )
    except InvalidRecord as exc:
        return str(exc)
    return None
