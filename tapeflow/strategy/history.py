"""What a strategy may look at: bars, watchlist snapshots and scored news, cut at a decision time.

`History.until(t)` keeps only what was knowable at t: bars that had ended, snapshot rows
both published (`as_of`) and seen (`fetched_at`) by then, and the versions of headlines whose `knowable_at`
(published, fetched and scored; see tapeflow/news/features.py) had passed, with the time a
vendor's edit replaced them only if that edit was known by then. Backtest, look-ahead check, paper
and live all hand strategies a History; only where it comes from differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import polars as pl

from tapeflow.calendar.exchange import NEW_YORK
from tapeflow.model import check_aware
from tapeflow.schemas import BAR_SCHEMA, UTC_TS, instant

BAR_COLUMNS = {name: BAR_SCHEMA[name] for name in ("symbol", "ts", "end_ts", "open", "high", "low", "close", "volume")}
WATCHLIST_COLUMNS = {
    "source": pl.String(),
    "session": pl.String(),
    "as_of": UTC_TS,
    "fetched_at": UTC_TS,
    "ticker": pl.String(),
    "rank": pl.Int64(),
    "score": pl.Float64(),
}

NEWS_COLUMNS = {
    "symbol": pl.String(),
    "source": pl.String(),
    "id": pl.String(),
    "headline": pl.String(),
    "catalyst": pl.String(),
    "sentiment": pl.String(),
    "sentiment_score": pl.Float64(),
    "polarity": pl.Float64(),
    "published_at": UTC_TS,
    "knowable_at": UTC_TS,
    "superseded_at": UTC_TS,  # when a vendor's edit replaced this version; null: current (as far as known)
}


# Corporate actions as a backtest prices them (tapeflow/backtest/adjust.py): one row per
# action, knowable from `knowable_at`.
ACTION_COLUMNS = {
    "symbol": pl.String(),
    "kind": pl.String(),
    "ex_date": pl.Date(),
    "ratio": pl.Float64(),
    "amount": pl.Float64(),
    "price_factor": pl.Float64(),
    "knowable_at": UTC_TS,
    "source": pl.String(),
}

# What a backtest's fill model knew of each name's liquidity before a session
# (tapeflow/backtest/liquidity.py): average daily dollar volume and daily volatility, NaN unknown.
LIQUIDITY_COLUMNS = {
    "symbol": pl.String(),
    "session": pl.Date(),
    "adv_dollars": pl.Float64(),
    "sigma_daily": pl.Float64(),
}


# One empty frame of each kind, shared: a session builds a History every cycle, and building 30
# empty columns costs more than the rest of it. Nothing changes a frame in place.
NO_WATCHLIST = pl.DataFrame(schema=WATCHLIST_COLUMNS)
_NO_NEWS = pl.DataFrame(schema=NEWS_COLUMNS)
_NO_ACTIONS = pl.DataFrame(schema=ACTION_COLUMNS)
_NO_LIQUIDITY = pl.DataFrame(schema=LIQUIDITY_COLUMNS)


@dataclass(frozen=True)
class History:
    """Bars (one timeframe), watchlist snapshots, scored news and the corporate actions known
    so far, sorted by symbol and time."""

    bars: pl.DataFrame
    watchlist: pl.DataFrame = field(default_factory=lambda: NO_WATCHLIST)
    news: pl.DataFrame = field(default_factory=lambda: _NO_NEWS)
    actions: pl.DataFrame = field(default_factory=lambda: _NO_ACTIONS)
    liquidity: pl.DataFrame = field(default_factory=lambda: _NO_LIQUIDITY)

    def __post_init__(self) -> None:
        missing = [c for c in BAR_COLUMNS if c not in self.bars.columns]
        if missing:
            raise ValueError(f"bars lack columns {missing}")
        object.__setattr__(self, "bars", by_symbol_and_time(_conformed(self.bars, BAR_COLUMNS)))
        if not self.watchlist.is_empty():
            object.__setattr__(self, "watchlist", _conformed(self.watchlist, WATCHLIST_COLUMNS).sort("as_of", "rank"))
        news = self.news if "superseded_at" in self.news.columns else self.news.with_columns(
            pl.lit(None, dtype=UTC_TS).alias("superseded_at"))
        missing = [c for c in NEWS_COLUMNS if c not in news.columns]
        if missing:
            raise ValueError(f"news lacks columns {missing}")
        object.__setattr__(self, "news", _sorted(_conformed(news, NEWS_COLUMNS), "knowable_at", "symbol"))
        missing = [c for c in ACTION_COLUMNS if c not in self.actions.columns]
        if missing:
            raise ValueError(f"actions lack columns {missing}")
        object.__setattr__(self, "actions", _sorted(_conformed(self.actions, ACTION_COLUMNS), "symbol", "ex_date", "knowable_at"))
        object.__setattr__(self, "liquidity", _sorted(_conformed(self.liquidity, LIQUIDITY_COLUMNS), "symbol", "session"))

    @property
    def symbols(self) -> list[str]:
        return self.bars["symbol"].unique(maintain_order=True).to_list()

    def only(self, symbols: list[str], *, keep: bool = True) -> History:
        """Only (or, keep=False, all but) `symbols`' records."""
        def mine(frame: pl.DataFrame, column: str) -> pl.DataFrame:
            inside = pl.col(column).is_in(symbols)
            return frame.filter(inside if keep else ~inside)

        return History(bars=mine(self.bars, "symbol"), watchlist=mine(self.watchlist, "ticker"),
                       news=mine(self.news, "symbol"), actions=mine(self.actions, "symbol"),
                       liquidity=mine(self.liquidity, "symbol"))

    def until(self, at: datetime) -> History:
        """Only what was knowable at `at`."""
        at = check_aware("at", at)
        known = instant(at)
        return History(
            bars=self.bars.filter(pl.col("end_ts") <= known),
            watchlist=self.watchlist.filter((pl.col("as_of") <= known) & (pl.col("fetched_at") <= known)),
            # A replaced version stays (a decision taken on it stands); an edit still to come is unknown.
            news=self.news.filter(pl.col("knowable_at") <= known).with_columns(
                pl.when(pl.col("superseded_at") <= known).then(pl.col("superseded_at")).alias("superseded_at")),
            actions=self.actions.filter(pl.col("knowable_at") <= known),
            liquidity=self.liquidity.filter(pl.col("session") <= at.astimezone(NEW_YORK).date()),
        )


def _conformed(frame: pl.DataFrame, columns: dict[str, pl.DataType]) -> pl.DataFrame:
    """`frame`'s `columns` in their types, times in UTC; a frame already so is kept as it is
    (a session builds a History every cycle: each cast is a query)."""
    if frame.schema == columns:
        return frame
    return frame.select(
        pl.col(c).dt.convert_time_zone("UTC").cast(t) if isinstance(t, pl.Datetime) else pl.col(c).cast(t)
        for c, t in columns.items())


def _sorted(frame: pl.DataFrame, *by: str) -> pl.DataFrame:
    return frame if frame.height < 2 else frame.sort(*by)


def by_symbol_and_time(bars: pl.DataFrame) -> pl.DataFrame:
    """`bars` sorted by symbol then ts: checked first, which is cheaper than sorting millions
    of rows that already are (a History's, a Parquet file written in order)."""
    if bars.height > 1 and bars["symbol"].is_sorted():
        ts = bars["ts"].dt.epoch("us").to_numpy()
        back = np.flatnonzero(ts[1:] <= ts[:-1])  # sorted if each is where a new symbol starts
        symbol = bars["symbol"]
        if (symbol.gather(back) != symbol.gather(back + 1)).all():
            return bars
    return bars.sort("symbol", "ts")
