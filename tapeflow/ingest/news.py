"""The check that splits a raw news batch into items to store and rows to quarantine.

Batches are small (a few thousand headlines), so the check builds a `model.NewsItem` per row:
one set of rules, the model's, decides what is a valid item.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from tapeflow.model import InvalidRecord, NewsItem
from tapeflow.news.frames import payload_digest
from tapeflow.schemas import NEWS_SCHEMA, RAW_NEWS_SCHEMA


@dataclass(frozen=True)
class CheckedNews:
    """`good` in NEWS_SCHEMA; `rejected` as (source, reason, payload)."""

    good: pl.DataFrame
    rejected: pl.DataFrame


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
