"""The sessions a study would run on, read from the warehouse before it starts: the New York
days of the stored bars whose start lies in a window, as `sessions_of` finds them in a history."""

from __future__ import annotations

from datetime import date

import duckdb

from tapeflow.calendar.exchange import NEW_YORK, ny_day_bounds


def stored_sessions(con: duckdb.DuckDBPyConnection, timeframe: str, start: date, end: date,
                    symbols: list[str] | None = None) -> list[date]:
    """The New York days start..end on which the warehouse holds `timeframe` bars (of `symbols`, when given)."""
    query = (f"SELECT DISTINCT CAST(timezone('{NEW_YORK}', ts) AS DATE) AS day FROM bars_all "
             "WHERE timeframe = $tf AND ts >= $lo AND ts < $hi")
    params: dict[str, object] = {"tf": timeframe, "lo": ny_day_bounds(start)[0], "hi": ny_day_bounds(end)[1]}
    if symbols:
        query += " AND list_contains($symbols, symbol)"
        params["symbols"] = symbols
    return [day for (day,) in con.execute(query + " ORDER BY day", params).fetchall()]
