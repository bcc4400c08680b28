"""Frame schemas: the column names and dtypes of every batch and result frame, in one place.

Bars, watchlist snapshots and headlines as sources hand them over and as the warehouse stores
them; strategy signals; and the fills, trades and equity a backtest returns.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from tapeflow.model import WATCHLIST_SESSIONS

UTC_TS = pl.Datetime("us", "UTC")


def to_us(t: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch (the backtest's arrays' unit)."""
    return int(t.timestamp() * 1_000_000) if t.microsecond == 0 else int(t.timestamp()) * 1_000_000 + t.microsecond


def instant(at: datetime) -> pl.Expr:
    """An aware time as a UTC_TS literal, for comparing with a time column. `pl.lit(at)` builds a
    Series to convert the zone, which costs 100 us a call; a trading cycle makes several."""
    return pl.lit(to_us(at), dtype=pl.Int64).cast(UTC_TS)

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


ACTION_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "symbol": pl.String(),
    "kind": pl.String(),  # ActionKind
    "ex_date": pl.Date(),
    "ratio": pl.Float64(),
    "amount": pl.Float64(),
    "price_factor": pl.Float64(),
    "new_symbol": pl.String(),
    "knowable_at": UTC_TS,
    "fetched_at": UTC_TS,
    "payload": pl.String(),
    "payload_hash": pl.String(),
}
"""Columns of a checked corporate-action batch, in the order of the `corporate_actions` table.
A source hands over the same columns (possibly null or unparsed, `ex_date` as a date or
ISO text, `payload_hash` may be absent) plus an optional `problem` column."""

ACTION_KEY = ("source", "symbol", "kind", "ex_date")


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
    "action": pl.String(),  # model.Action: enter | exit
    "reason": pl.String(),
    "qty": pl.Float64(),  # shares; null: the risk rules size the entry
    "order_type": pl.String(),  # model.OrderType: market | limit | stop
    "time_in_force": pl.String(),  # model.TimeInForce: day | gtc | opg | cls
    "limit_price": pl.Float64(),
    "stop_price": pl.Float64(),
}
"""A strategy's decisions, one row each: the one decision type the backtest, the look-ahead check
and the trading session all read. The enum columns stay strings (a StrEnum equals its value);
`tapeflow.strategy.base.signal_frame` refuses a value that is not a member."""


FILLS_SCHEMA: dict[str, pl.DataType] = {
    "order_id": pl.String(),  # symbol-at-action[-n]; the engine's stop-loss legs end in -stop[-n]
    "symbol": pl.String(),
    "side": pl.String(),  # model.Side: buy | sell
    "ts": UTC_TS,
    "qty": pl.Float64(),
    "price": pl.Float64(),
    "commission": pl.Float64(),  # an order's commission and fees sit on its last fill
    "fees": pl.Float64(),
    "slippage": pl.Float64(),  # dollars: |price - price before slippage| x qty
}
"""The fills a backtest returns, in the order the engine applied them (the `backtest_fills` table adds run_id, seq)."""

TRADES_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "entry_ts": UTC_TS,
    "exit_ts": UTC_TS,
    "qty": pl.Float64(),
    "entry_price": pl.Float64(),
    "exit_price": pl.Float64(),
    "pnl": pl.Float64(),  # after costs
    "return_pct": pl.Float64(),
    "costs": pl.Float64(),
}
"""A backtest's round trips: flat to flat, per symbol (the `backtest_trades` table adds run_id, seq)."""

EQUITY_SCHEMA: dict[str, pl.DataType] = {
    "ts": UTC_TS,  # every bar end
    "cash": pl.Float64(),
    "positions": pl.Float64(),
    "equity": pl.Float64(),
    "exposure": pl.Float64(),  # gross position value / equity
}
"""A backtest's equity curve (the `backtest_equity` table adds run_id)."""


def conform(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """`frame`'s columns of `schema`, in its order and dtypes."""
    return frame.select(pl.col(name).cast(dtype) for name, dtype in schema.items())
