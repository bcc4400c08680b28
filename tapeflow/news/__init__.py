"""News: the source interface, ticker extraction, catalyst classes and sentiment (vendors live
in `tapeflow.venues`)."""

from __future__ import annotations

from tapeflow.news.base import NewsSource

NEWS_SOURCE_NAMES = ("replay", "alpaca", "polygon", "benzinga", "marketaux", "tiingo")


def require_news_source(name: str) -> str:
    """`name` if it is a known news source, else a ValueError listing the known ones."""
    if name not in NEWS_SOURCE_NAMES:
        raise ValueError(f"unknown news source {name!r}; known: {', '.join(NEWS_SOURCE_NAMES)}")
    return name


__all__ = ["NEWS_SOURCE_NAMES", "NewsSource", "require_news_source"]
