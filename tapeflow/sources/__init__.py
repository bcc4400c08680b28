"""Market data and watchlist sources: the interfaces, the window they are asked for, the
built-in replay and scanner, and the names of every source (vendors live in `tapeflow.venues`)."""

from __future__ import annotations

from tapeflow.sources.base import MarketData, WatchlistSource, Window, latest_bars

SOURCE_NAMES = ("replay", "alpaca", "polygon", "finnhub", "ibkr")
WATCHLIST_SOURCE_NAMES = ("scanner", "bullalert", "bullalert-mcp")


def require_source(name: str) -> str:
    """`name` if it is a known market-data source, else a ValueError listing the known ones."""
    if name not in SOURCE_NAMES:
        raise ValueError(f"unknown market-data source {name!r}; known: {', '.join(SOURCE_NAMES)}")
    return name


def require_watchlist_source(name: str) -> str:
    """`name` if it is a known watchlist source, else a ValueError listing the known ones."""
    if name not in WATCHLIST_SOURCE_NAMES:
        raise ValueError(f"unknown watchlist source {name!r}; known: {', '.join(WATCHLIST_SOURCE_NAMES)}")
    return name


__all__ = [
    "latest_bars", "MarketData", "SOURCE_NAMES", "WatchlistSource", "Window", "WATCHLIST_SOURCE_NAMES",
    "require_source", "require_watchlist_source",
]
