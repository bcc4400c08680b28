"""Layer 1: market data and watchlist sources behind one interface each."""

from __future__ import annotations

from tapeflow.config import Settings
from tapeflow.sources.base import MarketData, Window
from tapeflow.sources.replay import ReplaySource

SOURCE_NAMES = ("replay",)


def market_data(name: str, settings: Settings) -> MarketData:
    """The market-data source called `name`, configured from settings."""
    if name == "replay":
        return ReplaySource(settings.data_dir)
    raise ValueError(f"unknown market-data source {name!r}; known: {', '.join(SOURCE_NAMES)}")


__all__ = ["MarketData", "ReplaySource", "SOURCE_NAMES", "Window", "market_data"]
