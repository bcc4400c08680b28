"""Strategies: pure decision rules over a causal view of the market (no I/O, no Prefect)."""

from __future__ import annotations

from strategies.base import Param, Strategy
from strategies.news_catalyst import NewsCatalyst
from strategies.opening_range import OpeningRangeBreakout
from strategies.sma_cross import SmaCross
from strategies.watchlist_momentum import WatchlistMomentum

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (SmaCross, WatchlistMomentum, OpeningRangeBreakout, NewsCatalyst)
}


def get_strategy(name: str) -> type[Strategy]:
    """The strategy class called `name`, or ValueError listing the known ones."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}") from None


__all__ = ["STRATEGIES", "Param", "Strategy", "get_strategy"]
