"""A backtest's History from the warehouse: bars, and the watchlist snapshots and scored
headlines a strategy asks for, over one window."""

from __future__ import annotations

from datetime import datetime, timedelta

from tapeflow.backtest.liquidity import liquidity_of
from tapeflow.calendar.exchange import ny_day
from tapeflow.config import Settings
from tapeflow.news.features import replayed_news
from tapeflow.news.model_registry import current_model
from tapeflow.strategy.history import History
from warehouse import open_warehouse
from warehouse.reads import actions_between, bars_between, data_snapshot, watchlist_between


def history_between(settings: Settings, timeframe: str, symbols: list[str] | None, first: datetime, last: datetime, *,
                    watchlist: bool = False, watchlist_source: str | None = None,
                    news: bool = False) -> tuple[History, dict]:
    """Bars whose start lies in [first, last), with snapshots (from `watchlist_source`, or all
    sources) and headlines (under the current sentiment model) when asked, and a note of the data."""
    warehouse = open_warehouse(settings)
    model = None
    if news:

        model, _ = current_model(settings, warehouse)
    with warehouse.read() as con:
        bars = bars_between(con, timeframe, first, last, symbols)
        if bars.is_empty():
            final = last - timedelta(microseconds=1)  # `last` is exclusive
            raise ValueError(f"no {timeframe} bars in the warehouse for {ny_day(first)}..{ny_day(final)}: ingest them first")
        parts = {}
        if watchlist:
            parts["watchlist"] = watchlist_between(con, first, last, watchlist_source)
        if model is not None:

            parts["news"] = replayed_news(con, first, last, model)
        # Actions with an ex-date inside the window: only those change its prices or positions.
        parts["actions"] = actions_between(con, ny_day(first), ny_day(last - timedelta(microseconds=1)), symbols)
        # Each name's ADV and volatility before each session, as the simulated broker reads them.
        parts["liquidity"] = liquidity_of(con, bars)
        snapshot = data_snapshot(con, timeframe)
    if model is not None:
        snapshot = {**snapshot, "sentiment_model": model}
    return History(bars=bars, **parts), snapshot
