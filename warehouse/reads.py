"""Reads the pipeline itself makes from the warehouse (users query with `tapeflow sql`)."""

from __future__ import annotations

from datetime import datetime

import duckdb
import polars as pl


def daily_bars_until(con: duckdb.DuckDBPyConnection, until: datetime) -> pl.DataFrame:
    """Every daily bar knowable at `until` (its end at or before it), for scans."""
    return con.sql(
        "SELECT symbol, ts, end_ts, open, high, low, close, volume FROM bars "
        "WHERE timeframe = '1d' AND end_ts <= $until ORDER BY symbol, ts",
        params={"until": until},
    ).pl()
