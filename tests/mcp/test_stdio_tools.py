"""The read-only tools over stdio, as a desktop agent calls them: happy paths, bad arguments,
the SQL guards (writes refused, row caps, the time limit) and a writer holding the warehouse."""

from __future__ import annotations

from pathlib import Path

import duckdb

from tapeflow.mcp.reading import BUSY
from tests.mcp.conftest import SNAPSHOT_AS_OF, Agent
from tests.warehouse_lock import lock_held

PRE_MARKET_SQL = """
    SELECT ticker, score FROM watchlist_snapshots
    WHERE session = 'pre_market'
      AND as_of = (SELECT max(as_of) FROM watchlist_snapshots
                   WHERE session = 'pre_market' AND as_of <= TIMESTAMPTZ '2010-05-07 09:00:00-04:00')
    ORDER BY rank LIMIT 100
"""


def test_tools_are_listed_with_output_schemas(stdio_agent: Agent) -> None:
    tools = {t.name: t for t in stdio_agent.portal.call(stdio_agent.client.list_tools).tools}
    assert {"list_watchlist", "bars", "sql"} <= set(tools)
    for tool in tools.values():
        assert tool.description and "\n" not in tool.description
        assert tool.output_schema is not None, tool.name


def test_watchlist_as_of_that_morning_matches_sql_over_the_snapshots(stdio_agent: Agent, mcp_home: Path) -> None:
    answer = stdio_agent.ok("list_watchlist", {"as_of": SNAPSHOT_AS_OF, "session": "pre_market", "limit": 100})
    with duckdb.connect(str(mcp_home / "tapeflow.duckdb"), read_only=True) as con:
        expected = con.sql(PRE_MARKET_SQL).fetchall()
    got = [(e["ticker"], e["score"]) for e in answer["data"]["watchlist"]]
    assert len(expected) >= 5 and got == expected
    meta = answer["meta"]
    assert meta["session"] == "pre_market" and meta["source"] == "scanner" and meta["count"] == len(expected)
    assert meta["as_of"].startswith("2010-05-07T13:00:00")
    first = answer["data"]["watchlist"][0]
    assert first["rank"] == 1 and first["source"] == "scanner" and first["fetched_at"]


def test_watchlist_is_point_in_time_and_capped(stdio_agent: Agent) -> None:
    before = stdio_agent.ok("list_watchlist", {"as_of": "2010-05-07T08:59:00-04:00", "session": "pre_market"})
    assert before["data"]["watchlist"] == [] and before["meta"]["as_of"] is None
    current = stdio_agent.ok("list_watchlist", {"limit": 3})  # now: the latest list of any session
    assert [e["rank"] for e in current["data"]["watchlist"]] == [1, 2, 3]
    assert stdio_agent.ok("list_watchlist", {"session": "market"})["data"]["watchlist"] == []


def test_watchlist_bad_arguments_are_tool_errors(stdio_agent: Agent) -> None:
    assert "session" in stdio_agent.error("list_watchlist", {"session": "lunch"})
    assert "limit" in stdio_agent.error("list_watchlist", {"limit": 101})
    assert "as_of" in stdio_agent.error("list_watchlist", {"as_of": "2010-05-07T09:00:00"})  # no offset


def test_bars_newest_window_oldest_first_with_knowable_time(stdio_agent: Agent) -> None:
    answer = stdio_agent.ok("bars", {"symbol": "aapl", "start": "2010-04-01T00:00:00Z", "limit": 5})
    rows = answer["rows"]
    assert answer["count"] == 5 and answer["truncated"] is True
    assert [r["ts"] for r in rows] == sorted(r["ts"] for r in rows)
    assert rows[-1]["ts"].startswith("2010-05-07")  # the newest five of the window
    assert all(r["symbol"] == "AAPL" and r["knowable_at"] > r["ts"] and r["source"] for r in rows)
    whole = stdio_agent.ok("bars", {"symbol": "AAPL", "start": "2010-05-03T00:00:00Z", "end": "2010-05-08T00:00:00Z"})
    assert whole["count"] == 5 and whole["truncated"] is False


def test_bars_bad_arguments_are_tool_errors(stdio_agent: Agent) -> None:
    assert "timeframe" in stdio_agent.error("bars", {"symbol": "AAPL", "timeframe": "5m"})
    assert "not after" in stdio_agent.error(
        "bars", {"symbol": "AAPL", "start": "2010-05-03T00:00:00Z", "end": "2010-05-01T00:00:00Z"})
    assert "symbol" in stdio_agent.error("bars", {"symbol": "AAPL; DROP TABLE bars"})
    assert "symbol" in stdio_agent.error("bars", {})


def test_sql_reads_and_caps_rows(stdio_agent: Agent) -> None:
    answer = stdio_agent.ok("sql", {"query": "SELECT symbol, count(*) AS n FROM bars GROUP BY symbol ORDER BY symbol",
                                    "max_rows": 7})
    assert answer["count"] == 7 and answer["truncated"] is True and set(answer["rows"][0]) == {"symbol", "n"}
    assert "max_rows" in stdio_agent.error("sql", {"query": "SELECT 1", "max_rows": 5000})


def test_sql_refuses_writes_and_reports_errors(stdio_agent: Agent) -> None:
    assert "refused" in stdio_agent.error("sql", {"query": "DELETE FROM bars"})
    assert "refused" in stdio_agent.error("sql", {"query": "SELECT 1; DROP TABLE watchlist_snapshots"})
    assert "no_such_table" in stdio_agent.error("sql", {"query": "SELECT * FROM no_such_table"})
    assert stdio_agent.ok("sql", {"query": "SELECT count(*) AS n FROM watchlist_snapshots"})["rows"][0]["n"] >= 5


def test_sql_over_the_time_limit_is_stopped(stdio_agent: Agent) -> None:
    message = stdio_agent.error("sql", {"query": "SELECT sum(a.range * b.range) FROM range(1000000) a, range(1000000) b"})
    assert "stopped after 1 s" in message and "nothing was changed" in message
    assert stdio_agent.ok("sql", {"query": "SELECT 1 AS one"})["rows"] == [{"one": 1}]  # the server goes on


def test_a_writer_holding_the_warehouse_gets_the_busy_answer(stdio_agent: Agent, mcp_home: Path) -> None:
    with lock_held(mcp_home / "tapeflow.duckdb", 60):
        for tool, arguments in (("list_watchlist", {}), ("sql", {"query": "SELECT 1"}), ("bars", {"symbol": "AAPL"})):
            assert stdio_agent.error(tool, arguments).endswith(BUSY)
    assert stdio_agent.ok("sql", {"query": "SELECT 1 AS one"})["rows"] == [{"one": 1}]
