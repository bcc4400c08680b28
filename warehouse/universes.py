"""Reads of the `universes` and `universe_members` tables: a universe's record, its membership
intervals, and who was a member on a day as far as was known at an instant."""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import polars as pl

from tapeflow.calendar.exchange import ny_day_bounds

# A symbol is a member on New York day d, known at instant t, when one of its intervals holds d
# and was knowable by t: the rule every read here and `tapeflow.sources.universe` apply.
MEMBER_ON = "from_date <= $day AND (to_date IS NULL OR $day <= to_date) AND knowable_at <= $at"


def universe_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every universe recorded, by name."""
    return [name for (name,) in con.execute("SELECT universe FROM universes ORDER BY universe").fetchall()]


def universe_record(con: duckdb.DuckDBPyConnection, universe: str) -> dict[str, object] | None:
    """The universe's row (universe, description, survivorship, source, recorded_at), or None."""
    rows = con.sql("SELECT * FROM universes WHERE universe = $u", params={"u": universe}).pl()
    return rows.row(0, named=True) if rows.height else None


def membership(con: duckdb.DuckDBPyConnection, universe: str, first: date | None = None,
               last: date | None = None) -> pl.DataFrame:
    """The universe's membership intervals (symbol, from_date, to_date, knowable_at) that overlap
    New York days first..last (None: unbounded), by symbol and start."""
    return con.sql(
        "SELECT symbol, from_date, to_date, knowable_at FROM universe_members WHERE universe = $u "
        "AND ($last IS NULL OR from_date <= $last) AND ($first IS NULL OR to_date IS NULL OR to_date >= $first) "
        "ORDER BY symbol, from_date",
        params={"u": universe, "first": first, "last": last},
    ).pl()


def members_on(con: duckdb.DuckDBPyConnection, universe: str, day: date, at: datetime | None = None) -> list[str]:
    """The symbols that were members on New York day `day`, as known at `at` (default: the end
    of that day), sorted."""
    known = at if at is not None else ny_day_bounds(day)[1]
    rows = con.execute(
        f"SELECT DISTINCT symbol FROM universe_members WHERE universe = $u AND {MEMBER_ON} ORDER BY symbol",
        {"u": universe, "day": day, "at": known},
    ).fetchall()
    return [symbol for (symbol,) in rows]


def universes_describing(con: duckdb.DuckDBPyConnection, timeframe: str, start: datetime, end: datetime,
                         symbols: list[str] | None = None) -> list[str]:
    """Universes that describe the bars starting in [start, end) (optionally of some symbols):
    recorded for the one source those bars came from, with every one of their symbols a member
    at some time. A report names such a universe when no universe was applied."""
    where = "timeframe = $tf AND ts >= $lo AND ts < $hi" + (" AND list_contains($symbols, symbol)" if symbols else "")
    params: dict[str, object] = {"tf": timeframe, "lo": start, "hi": end, **({"symbols": symbols} if symbols else {})}
    rows = con.execute(
        f"""
        WITH data AS (SELECT DISTINCT source, symbol FROM bars WHERE {where})
        SELECT u.universe FROM universes u
        WHERE (SELECT count(DISTINCT source) FROM data) = 1
          AND u.source = (SELECT any_value(source) FROM data)
          AND NOT EXISTS (SELECT 1 FROM data d WHERE NOT EXISTS (
                SELECT 1 FROM universe_members m WHERE m.universe = u.universe AND m.symbol = d.symbol))
        ORDER BY u.universe
        """,
        params,
    ).fetchall()
    return [name for (name,) in rows]
