"""Reads the pipeline itself makes from the warehouse (users query with `tapeflow sql`).

Bars are read through `bars_all`, the table and the Parquet archive as one; a window's reads
name its months too, so that the archive's other months are never opened."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import duckdb
import polars as pl

from warehouse.bars_view import BARS_ALL

# A bar that ended in a window started at most this long before it (bars are at most a day long).
_LONGEST_BAR = timedelta(days=1)


def daily_bars_until(con: duckdb.DuckDBPyConnection, until: datetime) -> pl.DataFrame:
    """Every daily bar knowable at `until` (its end at or before it), for scans."""
    return con.sql(
        f"SELECT symbol, ts, end_ts, open, high, low, close, volume FROM {BARS_ALL} "
        "WHERE timeframe = '1d' AND end_ts <= $until ORDER BY symbol, ts",
        params={"until": until},
    ).pl()


def bars_between(
    con: duckdb.DuckDBPyConnection, timeframe: str, start: datetime, end: datetime, symbols: list[str] | None = None
) -> pl.DataFrame:
    """Bars of one timeframe whose start lies in [start, end), optionally for some symbols."""
    return _bars(con, timeframe, "ts >= $lo AND ts < $hi", start, end, symbols, first_start=start)


def bars_ended(
    con: duckdb.DuckDBPyConnection, timeframe: str, after: datetime, until: datetime, symbols: list[str] | None = None
) -> pl.DataFrame:
    """Bars of one timeframe that ended in (after, until]: what was knowable by `until`."""
    return _bars(con, timeframe, "end_ts > $lo AND end_ts <= $hi", after, until, symbols,
                 first_start=after - _LONGEST_BAR)


def warmup_start(con: duckdb.DuckDBPyConnection, timeframe: str, bars: int, before: datetime,
                 symbols: list[str] | None = None) -> tuple[datetime | None, int]:
    """Where history must start so that every symbol trading in the last `bars` bar times
    (distinct bar starts) that ended by `before` has its own last `bars` bars (a symbol with a
    missing bar reaches further back), and how many bar times there are; None when fewer are
    stored."""
    where = "timeframe = $tf AND end_ts <= $before" + (" AND list_contains($symbols, symbol)" if symbols else "")
    params: dict[str, object] = {"tf": timeframe, "before": before, "n": bars, **({"symbols": symbols} if symbols else {})}
    (first, have), = con.execute(
        f"SELECT min(ts), count(*) FROM (SELECT DISTINCT ts FROM {BARS_ALL} WHERE {where} ORDER BY ts DESC LIMIT $n)",
        params).fetchall()
    if have < bars:
        return None, have
    (start,), = con.execute(
        f"SELECT min(ts) FROM (SELECT symbol, ts, row_number() OVER (PARTITION BY symbol ORDER BY ts DESC) AS k "
        f"FROM {BARS_ALL} WHERE {where} AND symbol IN (SELECT DISTINCT symbol FROM {BARS_ALL} WHERE {where} AND ts >= $first)) "
        "WHERE k <= $n", {**params, "first": first}).fetchall()
    return min(start, first), have


def bars_opened(
    con: duckdb.DuckDBPyConnection, timeframe: str, after: datetime, until: datetime, symbols: list[str] | None = None
) -> pl.DataFrame:
    """Bars that started in (after, until] and had not ended by `until`: the market's open
    prints, for the simulated broker only (a strategy never sees a bar before its end)."""
    return _bars(con, timeframe, "ts > $lo AND ts <= $hi AND end_ts > $hi", after, until, symbols, first_start=after)


def _bars(con: duckdb.DuckDBPyConnection, timeframe: str, window: str, lo: datetime, hi: datetime,
          symbols: list[str] | None, *, first_start: datetime) -> pl.DataFrame:
    """The bars in `window`, none of which started before `first_start`: the months from its
    to `hi`'s are the archive's only partitions read."""
    query = (f"SELECT symbol, ts, end_ts, open, high, low, close, volume FROM {BARS_ALL} WHERE timeframe = $tf "
             f"AND {window} AND month >= $first_month AND month <= $last_month")
    params: dict[str, object] = {"tf": timeframe, "lo": lo, "hi": hi, **_months(first_start, hi)}
    if symbols:
        query += " AND list_contains($symbols, symbol)"
        params["symbols"] = symbols
    return con.sql(query + " ORDER BY symbol, ts", params=params).pl()


def _months(lo: datetime, hi: datetime) -> dict[str, object]:
    """The UTC months of bar starts from `lo` to `hi`, as the archive's partitions name them."""
    return {"first_month": _utc_month(lo), "last_month": _utc_month(hi)}


def _utc_month(at: datetime) -> str:
    # A naive time is read as UTC, as DuckDB compares it with the stored times on a UTC connection.
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC).strftime("%Y-%m")


def watchlist_fetched_by(con: duckdb.DuckDBPyConnection, start: datetime, until: datetime) -> pl.DataFrame:
    """Watchlist rows with as_of from `start` that had been fetched by `until`."""
    return con.sql(
        "SELECT source, session, as_of, fetched_at, ticker, rank, score FROM watchlist_snapshots "
        "WHERE as_of >= $start AND fetched_at <= $until ORDER BY as_of, rank",
        params={"start": start, "until": until},
    ).pl()


def watchlist_between(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, source: str | None = None) -> pl.DataFrame:
    """Watchlist snapshot rows with as_of in [start, end), optionally from one source."""
    query = (
        "SELECT source, session, as_of, fetched_at, ticker, rank, score FROM watchlist_snapshots "
        "WHERE as_of >= $start AND as_of < $end"
    )
    params: dict[str, object] = {"start": start, "end": end}
    if source:
        query += " AND source = $source"
        params["source"] = source
    return con.sql(query + " ORDER BY as_of, rank", params=params).pl()


def data_snapshot(con: duckdb.DuckDBPyConnection, timeframe: str) -> dict[str, object]:
    """What the input looked like: row counts and the newest ingest, for the run record. It
    counts the table, not the archive: counting archived months would read every one of them."""
    [(bars, newest)] = con.execute(
        "SELECT count(*), max(ingested_at) FROM bars WHERE timeframe = ?", [timeframe]
    ).fetchall()
    [(snapshots,)] = con.execute("SELECT count(*) FROM watchlist_snapshots").fetchall()
    return {"bars": bars, "newest_ingest": newest.isoformat() if newest else None, "watchlist_rows": snapshots}


def scored_news_between(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, model: str, tagger: str
) -> pl.DataFrame:
    """One row per (headline version, ticker) published in [start, end), with its catalyst class
    and its sentiment under `model`: the current version of each item and the versions a
    vendor's edit replaced (until `superseded_at`, when the next version was fetched);
    versions not yet tagged or scored are not in it."""
    return con.sql(
        """
        WITH stored AS (
            SELECT source, id, headline, published_at, fetched_at, payload_hash, NULL::TIMESTAMPTZ AS replaced
            FROM news WHERE published_at >= $start AND published_at < $end
            UNION ALL
            SELECT source, id, headline, published_at, fetched_at, payload_hash, superseded_at AS replaced
            FROM news_revisions WHERE published_at >= $start AND published_at < $end),
        -- A version stops being current when the next one was fetched (the stored order breaks
        -- ties: revisions by when they were replaced, the current row last).
        versions AS (
            SELECT *, lead(fetched_at) OVER (PARTITION BY source, id ORDER BY fetched_at, replaced NULLS LAST)
                      AS superseded_at
            FROM stored)
        SELECT unnest(t.tickers) AS symbol, v.source, v.id, v.headline, t.catalyst,
               s.label AS sentiment, s.score AS sentiment_score, s.polarity, s.model,
               v.published_at, v.fetched_at, greatest(t.tagged_at, s.scored_at) AS scored_at, v.superseded_at
        FROM versions v
        JOIN news_tags t ON t.source = v.source AND t.id = v.id AND t.tagger = $tagger AND t.news_hash = v.payload_hash
        JOIN news_scores s ON s.source = v.source AND s.id = v.id AND s.model = $model AND s.news_hash = v.payload_hash
        ORDER BY v.published_at, symbol
        """,
        params={"start": start, "end": end, "model": model, "tagger": tagger},
    ).pl()


def actions_between(con: duckdb.DuckDBPyConnection, first: date, last: date,
                    symbols: list[str] | None = None) -> pl.DataFrame:
    """Corporate actions with an ex-date in first..last, one per (symbol, kind, ex-date): the
    report known earliest, since an action is knowable from the first time any source told it."""
    return con.sql(
        """
        SELECT symbol, kind, ex_date, ratio, amount, price_factor, knowable_at, source
        FROM corporate_actions
        WHERE ex_date BETWEEN $first AND $last AND ($all OR list_contains($symbols, symbol))
        QUALIFY row_number() OVER (PARTITION BY symbol, kind, ex_date ORDER BY knowable_at, source) = 1
        ORDER BY symbol, ex_date
        """,
        params={"first": first, "last": last, "all": symbols is None, "symbols": symbols or []},
    ).pl()
