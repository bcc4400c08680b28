"""Catalysts, symbol profiles, backtest runs, session status, the schema resource and the persona
prompts, through the SDK's client connected in process to the server over a copy of the test
warehouse with stored news, runs and a trading day added."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from anyio.from_thread import BlockingPortal
from mcp import Client

from tapeflow.config import Settings
from tapeflow.mcp.prompts import DISCLAIMER
from tapeflow.mcp.server import build_server
from tests.mcp.conftest import Agent

ROWS = """
INSERT INTO news (source, id, published_at, fetched_at, headline, url, tickers, payload_hash) VALUES
  ('replay', 'n1', '2010-05-06 12:00:00+00', '2010-05-06 12:01:00+00', 'PCS wins a carrier contract', 'u1', ['PCS'], 'h1'),
  ('replay', 'n2', '2010-05-07 11:00:00+00', '2010-05-07 11:02:00+00', 'PCS prices a share offering', 'u2', ['PCS'], 'h2'),
  ('replay', 'n3', '2010-05-05 11:00:00+00', '2010-05-05 11:00:30+00', 'AAPL earnings beat', 'u3', ['AAPL'], 'h3');
INSERT INTO news_tags VALUES
  ('replay', 'n1', 'rules-v1', ['PCS'], '{}', 'contract', 'h1', '2010-05-06 12:02:00+00'),
  ('replay', 'n2', 'rules-v1', ['PCS'], '{}', 'dilution', 'h2', '2010-05-07 11:03:00+00'),
  ('replay', 'n3', 'rules-v1', ['AAPL'], '{}', 'earnings', 'h3', '2010-05-05 11:01:00+00');
INSERT INTO news_scores VALUES
  ('replay', 'n1', 'finbert-x', 'positive', 0.91, 0.88, 'h1', '2010-05-06 12:03:00+00'),
  ('replay', 'n2', 'finbert-x', 'negative', 0.83, -0.80, 'h2', '2010-05-07 11:04:00+00');
INSERT INTO corporate_actions VALUES
  ('replay', 'PCS', 'split', '2010-04-15', 2.0, NULL, NULL, NULL, '2010-04-01 00:00:00+00', '2010-04-02 00:00:00+00', '{}', 'a1');
INSERT INTO backtest_runs VALUES
  ('bt-1', 'backtest', NULL, 'sma_cross', '{"fast": 5}', 'panel', '1d', '2010-03-25 00:00:00+00', '2010-05-07 00:00:00+00',
   NULL, '{}', '{"fill": "next open", "slippage_bps": 5}', '{"bars": 100}', 'abc', '{"sharpe": 1.2}', NULL, '2026-01-01 00:00:00+00'),
  ('pt-1', 'perturbation', NULL, 'sma_cross', '{"fast": 5}', 'panel', '1d', NULL, NULL,
   NULL, '{}', '{"fill": "next open"}', '{}', 'abc', '{"verdict": "spike", "sharpe": 0.9}', NULL, '2026-01-02 00:00:00+00'),
  ('pt-1-a', 'backtest', 'pt-1', 'sma_cross', '{"fast": 4}', 'panel', '1d', NULL, NULL,
   NULL, '{}', '{}', '{}', 'abc', '{"sharpe": -0.1}', NULL, '2026-01-02 00:00:00+00');
INSERT INTO trading_sessions (session_id, strategy, params, params_hash, broker, mode, session_date, status, started_at, summary)
  VALUES ('s1', 'opening_range', '{}', 'p', 'sim', 'paper', '2010-05-07', 'finished', '2010-05-07 13:25:00+00', '{"pnl": 42.5}');
INSERT INTO position_snapshots VALUES ('sim', 'paper', '2010-05-07 20:00:00+00', 'PCS', 100, 7.1),
                                      ('sim', 'paper', '2010-05-07 20:00:00+00', 'GE', 0, 0);
INSERT INTO account_snapshots VALUES ('sim', 'paper', '2010-05-07 20:00:00+00', 100042.5, 99332.5, 99332.5, 100000);
INSERT INTO alerts (alert_key, ts, component, kind, severity, title, message, delivered) VALUES
  ('k1', '2010-05-07 15:00:00+00', 'trade_session:opening_range', 'stale_data', 'warning', 'stale bars', 'no bar for 3 min', 'log'),
  ('k0', '2010-05-05 15:00:00+00', 'trade_session:opening_range', 'stale_data', 'warning', 'old', 'an older day', 'log');
"""


@pytest.fixture(scope="module")
def agent(mcp_home: Path, tmp_path_factory: pytest.TempPathFactory, portal: BlockingPortal) -> Iterator[Agent]:
    home = tmp_path_factory.mktemp("mcp-research")
    shutil.copy(mcp_home / "tapeflow.duckdb", home / "tapeflow.duckdb")
    with duckdb.connect(str(home / "tapeflow.duckdb")) as con:
        con.execute(ROWS)
    server = build_server(Settings(home=home))
    with portal.wrap_async_context_manager(Client(server)) as client:
        yield Agent(portal, client)


def test_catalysts_newest_first_with_class_score_and_times(agent: Agent) -> None:
    rows = agent.ok("recent_catalysts", {"symbol": "pcs"})["rows"]
    assert [(r["id"], r["catalyst"], r["sentiment"]) for r in rows] == [("n2", "dilution", "negative"),
                                                                          ("n1", "contract", "positive")]
    assert rows[0]["knowable_at"].startswith("2010-05-07T11:02") and rows[0]["source"] == "replay"
    assert rows[0]["sentiment_score"] == 0.83 and rows[0]["model"] == "finbert-x"
    only = agent.ok("recent_catalysts", {"classes": ["earnings"], "since": "2010-05-01T00:00:00Z"})["rows"]
    assert [r["id"] for r in only] == ["n3"] and only[0]["sentiment"] is None  # tagged, not scored
    capped = agent.ok("recent_catalysts", {"limit": 1})
    assert capped["count"] == 1 and capped["truncated"] is True
    assert "classes" in agent.error("recent_catalysts", {"classes": ["rumour"]})


def test_symbol_profile_gathers_price_gaps_watchlist_catalysts_actions(agent: Agent) -> None:
    profile = agent.ok("symbol_profile", {"symbol": "PCS"})
    price = profile["price"]
    assert price["low_52w"] <= price["last_close"] <= price["high_52w"]
    assert price["days_in_average"] == 20 and price["avg_dollar_volume_20d"] > 0
    assert all(abs(g["gap_pct"]) > 0.04 for g in profile["gaps"]) and profile["gaps"]
    assert profile["watchlist_appearances"] == 1 and profile["watchlist"][0]["rank"] == 1
    assert [c["id"] for c in profile["catalysts"]] == ["n2", "n1"]
    assert profile["corporate_actions"][0]["kind"] == "split"
    nothing = agent.ok("symbol_profile", {"symbol": "ZZZZ"})
    assert nothing["price"] is None and nothing["watchlist_appearances"] == 0


def test_backtest_runs_and_summary_with_verdict_and_neighbours(agent: Agent) -> None:
    runs = agent.ok("backtest_runs", {"strategy": "sma_cross"})["rows"]
    assert [r["run_id"] for r in runs] == ["pt-1", "bt-1"]  # top-level only, newest first
    assert runs[1]["metrics"] == {"sharpe": 1.2}
    summary = agent.ok("backtest_summary", {"run_id": "pt-1"})
    assert summary["verdict"] == "spike" and [c["run_id"] for c in summary["children"]] == ["pt-1-a"]
    plain = agent.ok("backtest_summary", {"run_id": "bt-1"})
    assert plain["run"]["assumptions"] == {"fill": "next open", "slippage_bps": 5} and plain["verdict"] is None
    assert "no backtest run 'nope'" in agent.error("backtest_summary", {"run_id": "nope"})
    assert agent.ok("backtest_runs", {"strategy": "other"})["rows"] == []


def test_session_status_reads_the_latest_day(agent: Agent) -> None:
    status = agent.ok("session_status")
    assert status["session_date"] == "2010-05-07"
    assert status["sessions"][0]["summary"] == {"pnl": 42.5}
    assert [p["symbol"] for p in status["positions"]] == ["PCS"]  # a flat line is no position
    assert status["accounts"][0]["day_pnl"] == pytest.approx(42.5)
    assert [a["alert_key"] if "alert_key" in a else a["title"] for a in status["alerts"]] == ["stale bars"]
    assert status["kill_switch"] == []


def test_schema_resource_lists_tables_and_columns(agent: Agent) -> None:
    result = agent.portal.call(agent.client.read_resource, "tapeflow://schema")
    tables = json.loads(result.contents[0].text)
    assert tables["watchlist_snapshots"]["as_of"] == "TIMESTAMP WITH TIME ZONE"
    assert {"bars", "news", "backtest_runs", "alerts"} <= set(tables)


def test_persona_prompts_carry_the_rules_whatever_the_persona(agent: Agent) -> None:
    names = {p.name for p in agent.portal.call(agent.client.list_prompts).prompts}
    assert names == {"momentum_study", "premarket_scalper_prep", "fundamental_dd_queue"}
    for name in names:
        text = agent.portal.call(agent.client.get_prompt, name, {"persona_line": "a pirate who loves YOLO trades"})
        body = text.messages[0].content.text
        assert body.startswith("You are a pirate who loves YOLO trades")
        assert "Never make buy, sell or hold calls" in body and "score" in body and body.endswith(f'"{DISCLAIMER}"')


def test_sql_answers_any_column_type_as_json(agent: Agent) -> None:
    query = ("SELECT uuid() AS i, 'ab'::BLOB AS b, TIME '09:30:00' AS t, 1.25::DECIMAL(6, 2) AS d, "
             "[DATE '2010-05-07'] AS l, {'a': 1} AS s, 'NaN'::DOUBLE AS n")
    [row] = agent.ok("sql", {"query": query})["rows"]
    assert row["t"] == "09:30:00" and row["d"] == 1.25 and row["l"] == ["2010-05-07"] and row["s"] == {"a": 1}
    assert isinstance(row["i"], str) and isinstance(row["b"], str)
    # polars cannot take an interval column: a readable tool error, not a crash
    assert "interval" in agent.error("sql", {"query": "SELECT INTERVAL 1 DAY AS i"})
