"""What a session may know at an instant: bars that have ended, watchlist snapshots fetched
by then and scored headlines knowable by then, read from the warehouse (where the ingest
flows put them)."""

from __future__ import annotations

from datetime import datetime, timedelta

from tapeflow.model import Bar, Timeframe
from tapeflow.news.features import LOOKBACK as NEWS_LOOKBACK
from tapeflow.news.features import NewsReading, news_view
from tapeflow.strategy.history import History
from warehouse.connection import Warehouse
from warehouse.reads import bars_ended, scored_news_between, watchlist_fetched_by


class WarehouseFeed:
    """Bars of one timeframe (and watchlist snapshots) from the warehouse, cut at `at`."""

    def __init__(self, warehouse: Warehouse, timeframe: Timeframe, symbols: list[str] | None = None,
                 lookback: timedelta | None = None, news: NewsReading | None = None) -> None:
        self.warehouse = warehouse
        self.news = news
        self.timeframe = Timeframe(timeframe)
        self.symbols = symbols
        # Enough for the built-in strategies: a week of minute bars, two years of daily ones
        # (the slowest moving average allowed is 500 sessions).
        self.lookback = lookback or (timedelta(days=7) if self.timeframe is Timeframe.MINUTE else timedelta(days=750))

    def history(self, at: datetime) -> History:
        """Everything knowable at `at`: bars ended by then, snapshots fetched by then, headlines
        published, fetched and scored by then."""
        with self.warehouse.write() as con:  # the session's own process may hold the file
            bars = bars_ended(con, self.timeframe.value, at - self.lookback, at, self.symbols)
            watchlist = watchlist_fetched_by(con, at - self.lookback, at)
            if self.news is None:
                return History(bars, watchlist)
            scored = scored_news_between(con, at - NEWS_LOOKBACK, at, self.news.model, self.news.tagger)
        return History(bars, watchlist, news_view(scored, self.news.scoring_latency)).until(at)

    def bars_ended(self, after: datetime, until: datetime) -> list[Bar]:
        """Bars that ended in (after, until], in time order: what the market did meanwhile."""
        with self.warehouse.write() as con:
            frame = bars_ended(con, self.timeframe.value, after, until, self.symbols).sort("end_ts", "symbol")
        return [Bar(symbol=r["symbol"], timeframe=self.timeframe, ts=r["ts"], end=r["end_ts"], open=r["open"],
                    high=r["high"], low=r["low"], close=r["close"], volume=r["volume"], source="warehouse")
                for r in frame.iter_rows(named=True)]

    def newest_bar_end(self, until: datetime) -> datetime | None:
        """The end of the newest bar knowable at `until`."""
        with self.warehouse.write() as con:
            (newest,) = con.execute("SELECT max(end_ts) FROM bars WHERE timeframe = ? AND end_ts <= ?",
                                    [self.timeframe.value, until]).fetchone()
        return newest
