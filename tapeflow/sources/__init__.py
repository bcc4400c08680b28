"""Layer 1: market data and watchlist sources behind one interface each."""

from __future__ import annotations

from tapeflow.config import Settings
from tapeflow.sources.base import MarketData, Window, latest_bars
from tapeflow.sources.replay import ReplaySource

SOURCE_NAMES = ("replay", "alpaca", "polygon", "finnhub", "ibkr")
WATCHLIST_SOURCE_NAMES = ("scanner", "bullalert")


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


def market_data(name: str, settings: Settings) -> MarketData:
    """The market-data source called `name`, configured from settings."""
    # Vendor modules load on demand: a replay run need not import alpaca-py or ib_async.
    name = require_source(name)
    if name == "replay":
        return ReplaySource(settings.data_dir)
    if name == "alpaca":
        from tapeflow.sources.alpaca import AlpacaSource

        return AlpacaSource(settings)
    if name == "polygon":
        from tapeflow.sources.polygon import PolygonSource

        return PolygonSource(settings)
    if name == "finnhub":
        from tapeflow.sources.finnhub import FinnhubSource

        return FinnhubSource(settings)
    from tapeflow.sources.ibkr import IbkrSource

    return IbkrSource(settings)


__all__ = ["latest_bars", "MarketData", "ReplaySource", "SOURCE_NAMES", "Window", "WATCHLIST_SOURCE_NAMES", "market_data", "require_source", "require_watchlist_source"]
