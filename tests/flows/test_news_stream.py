"""The news stream flow on a real Prefect API against the Alpaca stream fake: pushed items
land in the warehouse as they come (bad ones quarantined); refused keys fail the run and
leave the error in the feed's freshness record."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from flows.news_stream import stream_news
from tests.fakes.alpaca_news import AlpacaNewsStreamFake, news_item

pytestmark = pytest.mark.slow

KEY = "SEKRET-KEY-flow-n3ws"
SECRET = "SEKRET-SECRET-flow-n3ws"


@pytest.fixture
def alpaca_stream(settings, monkeypatch):
    with AlpacaNewsStreamFake(KEY, SECRET) as fake:
        monkeypatch.setenv("TAPEFLOW_ALPACA_NEWS_STREAM_URL", fake.url)
        monkeypatch.setenv("TAPEFLOW_ALPACA_API_KEY", KEY)
        monkeypatch.setenv("TAPEFLOW_ALPACA_SECRET_KEY", SECRET)
        yield fake


@pytest.mark.usefixtures("prefect_harness")
def test_streamed_items_are_stored_and_bad_ones_quarantined(alpaca_stream, warehouse):
    now = datetime.now(UTC) - timedelta(seconds=2)
    good = news_item(7001, "SOUN wins a contract", now, symbols=["SOUN"])
    bad = {**news_item(7002, "No stamp", now, symbols=["SOUN"]), "created_at": "yesterday"}

    def push() -> None:
        if alpaca_stream.wait_subscribed(1, timeout=10):
            alpaca_stream.push(good, bad)

    threading.Thread(target=push, daemon=True).start()
    result = stream_news(symbols=["SOUN"], minutes=0.03)
    assert (result["batches"], result["fetched"], result["inserted"], result["quarantined"]) == (1, 2, 1, 1)
    assert (result["connections"], result["stopped_by"]) == (1, "time")
    assert (result["tagged"], result["scored"]) == (1, 0)  # read at once; no sentiment model here to score with
    with warehouse.read() as con:
        stored = con.execute("SELECT source, id, headline, tickers, category FROM news").fetchall()
        reasons = con.execute("SELECT source, kind, reason FROM quarantine").fetchall()
        runs = con.execute("SELECT run_id, kind, source, fetched FROM ingest_runs").fetchall()
        fresh = con.execute("SELECT kind, last_error FROM source_freshness WHERE source = 'alpaca'").fetchall()
    assert stored == [("alpaca", "7001", "SOUN wins a contract", ["SOUN"], "benzinga")]
    assert reasons == [("alpaca", "news", "created_at is not an RFC-3339 instant ('yesterday')")]
    [(run_id, kind, source, fetched)] = runs
    assert run_id.endswith(":1") and (kind, source, fetched) == ("news", "alpaca", 2)
    assert fresh == [("news:stream", None)]


@pytest.mark.usefixtures("prefect_harness")
def test_refused_keys_fail_the_run_and_are_recorded(alpaca_stream, warehouse, monkeypatch):
    monkeypatch.setenv("TAPEFLOW_ALPACA_SECRET_KEY", "SEKRET-wrong-flow-0000")
    state = stream_news(minutes=1, return_state=True)
    assert state.is_failed()
    with warehouse.read() as con:
        [(error,)] = con.execute("SELECT last_error FROM source_freshness WHERE kind = 'news:stream'").fetchall()
    assert error == "alpaca news stream refused the credentials (auth failed): check TAPEFLOW_ALPACA_API_KEY and TAPEFLOW_ALPACA_SECRET_KEY"
    assert alpaca_stream.connections == 1


@pytest.mark.usefixtures("prefect_harness")
def test_the_stream_command_runs_the_flow(alpaca_stream, warehouse, monkeypatch):
    from typer.testing import CliRunner

    from tapeflow.cli.main import app

    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["news", "stream", "-s", "SOUN", "--minutes", "0.02"])
    assert result.exit_code == 0, result.output
    assert "stream-news" in result.stdout and "│ time " in result.stdout
