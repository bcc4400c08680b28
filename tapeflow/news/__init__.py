"""Layer 2: news sources, ticker extraction, catalyst classes and sentiment."""

from __future__ import annotations

from tapeflow.config import Settings
from tapeflow.news.base import NewsSource

NEWS_SOURCE_NAMES = ("replay", "alpaca", "polygon", "benzinga", "marketaux", "tiingo")


def require_news_source(name: str) -> str:
    """`name` if it is a known news source, else a ValueError listing the known ones."""
    if name not in NEWS_SOURCE_NAMES:
        raise ValueError(f"unknown news source {name!r}; known: {', '.join(NEWS_SOURCE_NAMES)}")
    return name


def news_source(name: str, settings: Settings) -> NewsSource:
    """The news source called `name`, configured from settings."""
    # Vendor modules load on demand, as for market data.
    name = require_news_source(name)
    if name == "replay":
        from tapeflow.news.replay import ReplayNews

        return ReplayNews(settings.data_dir / "news")
    if name == "alpaca":
        from tapeflow.news.alpaca import AlpacaNews

        return AlpacaNews(settings)
    if name == "polygon":
        from tapeflow.news.polygon import PolygonNews

        return PolygonNews(settings)
    if name == "benzinga":
        from tapeflow.news.benzinga import BenzingaNews

        return BenzingaNews(settings)
    if name == "marketaux":
        from tapeflow.news.marketaux import MarketauxNews

        return MarketauxNews(settings)
    from tapeflow.news.tiingo import TiingoNews

    return TiingoNews(settings)


__all__ = ["NEWS_SOURCE_NAMES", "NewsSource", "news_source", "require_news_source"]
