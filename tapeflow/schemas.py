"""Frame schemas: the column names and dtypes of every batch and result frame, in one place.

Bars, watchlist snapshots and headlines as sources hand them over and as the warehouse stores
them; strategy signals; and the fills, trades and equity a backtest returns.
"""

from __future__ import annotations

import polars as pl

from tapeflow.model import WATCHLIST_SESSIONS

UTC_TS = pl.Datetime("us", "UTC")

BAR_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "timeframe": pl.String(),
    "ts": UTC_TS,
    "end_ts": UTC_TS,
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
    "vwap": pl.Float64(),
    "trade_count": pl.Int64(),
    "adjustment": pl.String(),
    "source": pl.String(),
}
"""Columns of a validated batch, in warehouse order (the table adds `ingested_at`)."""

RAW_COLUMNS = (*BAR_SCHEMA, "payload")
"""What a source hands over: BAR_SCHEMA columns, possibly null or unparsed, plus `payload`,
the vendor's row as JSON text, kept for the quarantine. An optional `problem` column
carries what the source itself found wrong while parsing (null when nothing)."""

BAR_KEY = ("symbol", "timeframe", "ts")
PRICES = ("open", "high", "low", "close")


SESSIONS = WATCHLIST_SESSIONS
"""The sessions a stored snapshot belongs to (`watchlist_snapshots.session`)."""

WATCHLIST_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "session": pl.String(),
    "as_of": UTC_TS,
    "ticker": pl.String(),
    "rank": pl.Int64(),
    "score": pl.Float64(),
    "fetched_at": UTC_TS,
    "payload_hash": pl.String(),
}
"""Columns of a validated batch, in the order of the `watchlist_snapshots` table."""

WATCHLIST_KEY = ("source", "session", "as_of", "ticker")
WATCHLIST_RAW_COLUMNS = (*WATCHLIST_SCHEMA, "payload")
"""What a watchlist source hands over: WATCHLIST_SCHEMA columns, possibly null, plus `payload`
(the vendor's row as JSON text) and a `problem` column (null when the source found nothing
wrong); `check_watchlist` also accepts a batch without `problem`."""

def empty_raw_watchlist() -> pl.DataFrame:
    """A raw watchlist batch with no rows, for sources that found nothing."""
    return pl.DataFrame(schema={**WATCHLIST_SCHEMA, "payload": pl.String(), "problem": pl.String()})


NEWS_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "id": pl.String(),
    "published_at": UTC_TS,
    "fetched_at": UTC_TS,
    "headline": pl.String(),
    "summary": pl.String(),
    "url": pl.String(),
    "tickers": pl.List(pl.String()),
    "category": pl.String(),
    "author": pl.String(),
    "payload_hash": pl.String(),
    "payload": pl.String(),
}
"""Columns of a checked batch, as the `news` table stores them."""

NEWS_KEY = ("source", "id")
RAW_NEWS_SCHEMA: dict[str, pl.DataType] = {
    **{k: v for k, v in NEWS_SCHEMA.items() if k != "payload_hash"},
    "problem": pl.String(),
}
"""What a news source hands over: one row per item the vendor sent, fields it could not read
left null, the vendor's item as JSON text in `payload`, and `problem` saying what was wrong
(null when the adapter found nothing wrong). Sources never drop or repair items."""



SIGNAL_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "at": UTC_TS,
    "action": pl.String(),  # enter | exit
    "reason": pl.String(),
    "qty": pl.Float64(),  # shares; null: the risk rules size the entry
    "order_type": pl.String(),  # market | limit | stop
    "time_in_force": pl.String(),  # day | gtc | opg | cls
    "limit_price": pl.Float64(),
    "stop_price": pl.Float64(),
}


