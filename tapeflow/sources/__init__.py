"""Layer 1: market data and watchlist sources behind one interface each."""

from __future__ import annotations

from tapeflow.config import Settings
from tapeflow.sources.base import MarketData, Window
from tapeflow.sources.replay import ReplaySource

SOURCE_NAMES = ("replay",)


def require_source(name: str) -> str:
    """`name` if it is a known market-data source, else a ValueError listing the known ones."""
    if name not in SOURCE_NAMES:
        raise ValueError(f"unknown market-data source {name!r}; known: {', '.join(SOURCE_NAMES)}")
    return name


def market_data(name: str, settings: Settings) -> MarketData:
    """The market-data source called `name`, configured from settings."""
    if require_source(name) == "replay":
        return ReplaySource(settings.data_dir)
    raise AssertionError(f"source {name!r} is listed but not wired")


__all__ = ["MarketData", "ReplaySource", "SOURCE_NAMES", "Window", "market_data", "require_source"]
