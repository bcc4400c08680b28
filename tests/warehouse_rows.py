"""Valid bar rows as the warehouse stores them, for tests that fill a warehouse by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from tapeflow.schemas import BAR_SCHEMA

T0 = datetime(2011, 3, 1, 14, 30, tzinfo=UTC)


def bars(n: int, close: float = 10.0, symbol: str = "SPY") -> pl.DataFrame:
    """n valid one-minute bars from T0, in the validated schema."""
    starts = [T0 + timedelta(minutes=i) for i in range(n)]
    return pl.DataFrame(
        {
            "symbol": [symbol] * n,
            "timeframe": ["1m"] * n,
            "ts": starts,
            "end_ts": [t + timedelta(minutes=1) for t in starts],
            "open": [close] * n,
            "high": [close + 1] * n,
            "low": [close - 1] * n,
            "close": [close] * n,
            "volume": [100.0] * n,
            "vwap": [None] * n,
            "trade_count": [None] * n,
            "adjustment": ["raw"] * n,
            "source": ["test"] * n,
        },
        schema=BAR_SCHEMA,
    )


def stamped(frame: pl.DataFrame, at: datetime) -> pl.DataFrame:
    """The rows with `ingested_at` set to `at`."""
    return frame.with_columns(pl.lit(at).cast(pl.Datetime("us", "UTC")).alias("ingested_at"))
