"""`symbol_profile`: one ticker at a glance from the warehouse, each part with its knowable times."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer

from tapeflow.mcp.catalysts import recent_catalysts
from tapeflow.mcp.market import Symbol
from tapeflow.mcp.reading import Reader, json_rows
from tapeflow.mcp.records import Record

GAP = 0.04  # a daily open this far from the prior close counts as a gap
CAP = 10

# Over the daily bars ending within a year of the newest one.
_PRICE = """
    WITH d AS (SELECT * FROM bars WHERE symbol = $symbol AND timeframe = '1d'),
         last AS (SELECT * FROM d ORDER BY ts DESC LIMIT 1),
         recent AS (SELECT close * volume AS dollars FROM d ORDER BY ts DESC LIMIT 20)
    SELECT last.close AS last_close, last.ts AS last_bar, last.end_ts AS knowable_at, last.source,
           (SELECT max(high) FROM d WHERE d.ts > last.ts - INTERVAL 365 DAY) AS high_52w,
           (SELECT min(low) FROM d WHERE d.ts > last.ts - INTERVAL 365 DAY) AS low_52w,
           (SELECT avg(dollars) FROM recent) AS avg_dollar_volume_20d,
           (SELECT count(*) FROM recent) AS days_in_average
    FROM last
"""
_GAPS = f"""
    SELECT ts, end_ts AS knowable_at, prev_close, open, open / prev_close - 1 AS gap_pct, source FROM (
        SELECT ts, end_ts, open, source, lag(close) OVER (ORDER BY ts) AS prev_close
        FROM bars WHERE symbol = $symbol AND timeframe = '1d')
    WHERE abs(open / prev_close - 1) > {GAP}
    ORDER BY ts DESC LIMIT {CAP}
"""
_WATCHLISTS = f"""
    SELECT source, session, as_of, fetched_at, rank, score, count(*) OVER () AS appearances
    FROM watchlist_snapshots WHERE ticker = $symbol ORDER BY as_of DESC LIMIT {CAP}
"""
_ACTIONS = f"""
    SELECT source, kind, ex_date, ratio, amount, price_factor, new_symbol, knowable_at, fetched_at
    FROM corporate_actions WHERE symbol = $symbol ORDER BY ex_date DESC LIMIT {CAP}
"""
_FINDINGS = f"""
    SELECT check_name, timeframe, ts, ratio, detail, found_at AS knowable_at
    FROM data_findings WHERE symbol = $symbol ORDER BY ts DESC LIMIT {CAP}
"""


class SymbolProfile(Record):
    """Price, liquidity, gaps, watchlist history, catalysts, corporate actions and data findings."""

    symbol: str
    price: dict[str, Any] | None  # last daily close, 52-week range, 20-day average dollar volume
    gaps: list[dict[str, Any]]  # daily opens more than 4% from the prior close, newest first
    watchlist_appearances: int
    watchlist: list[dict[str, Any]]  # the latest appearances
    catalysts: list[dict[str, Any]]
    corporate_actions: list[dict[str, Any]]
    data_findings: list[dict[str, Any]]


def symbol_profile(reader: Reader, symbol: str) -> SymbolProfile:
    symbol = symbol.upper()
    with reader.connection() as con:
        def rows(query: str) -> list[dict[str, Any]]:
            return json_rows(con.sql(query, params={"symbol": symbol}).pl())

        price, gaps, watchlist = rows(_PRICE), rows(_GAPS), rows(_WATCHLISTS)
        actions, findings = rows(_ACTIONS), rows(_FINDINGS)
    appearances = watchlist[0]["appearances"] if watchlist else 0
    return SymbolProfile(
        symbol=symbol, price=price[0] if price else None, gaps=gaps, watchlist_appearances=appearances,
        watchlist=[{k: v for k, v in r.items() if k != "appearances"} for r in watchlist],
        catalysts=recent_catalysts(reader, symbol, None, None, 5).rows,
        corporate_actions=actions, data_findings=findings,
    )


def register(server: MCPServer, reader: Reader) -> None:
    @server.tool(name="symbol_profile", description=(
        "One ticker from the warehouse: last close and 52-week range, 20-day average dollar volume, recent gaps "
        "(>4%), watchlist appearances, recent catalysts, corporate actions and data-quality findings."))
    def _symbol_profile(symbol: Symbol) -> SymbolProfile:
        return symbol_profile(reader, symbol)
