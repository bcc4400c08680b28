"""A vendor through the whole ingest flow: bars from the Polygon fake land in the warehouse;
bad credentials fail the run fast, record the error as the feed's freshness, and alert."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from flows.ingest import ingest_bars
from tapeflow.config import PROJECT_DATA
from tapeflow.sources import latest_bars
from tapeflow.sources.replay import ReplaySource
from tests.fakes.polygon import FakePolygon, minute_agg
from tests.fakes.webhook_receiver import WebhookReceiver

NY = ZoneInfo("America/New_York")
KEY = "SEKRET-PG-flow-31337"


@pytest.fixture
def polygon(settings, monkeypatch):
    with FakePolygon(KEY) as fake:
        monkeypatch.setenv("TAPEFLOW_POLYGON_URL", fake.url)
        monkeypatch.setenv("TAPEFLOW_POLYGON_API_KEY", KEY)
        monkeypatch.setenv("TAPEFLOW_MARKET_DATA_SOURCE", "polygon")
        yield fake


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_polygon_minute_bars_through_the_flow(polygon, warehouse):
    start = datetime(2025, 11, 28, 9, 30, tzinfo=NY)
    polygon.add_bars("SOUN", "minute", [minute_agg(start + timedelta(minutes=i), 10 + i / 100) for i in range(30)])
    counts = ingest_bars(symbols=["SOUN"], timeframe="1m", start=date(2025, 11, 28), end=date(2025, 11, 28))
    assert (counts["fetched"], counts["inserted"], counts["quarantined"]) == (30, 30, 0)
    with warehouse.read() as con:
        first = con.execute("SELECT source, ts, adjustment FROM bars ORDER BY ts LIMIT 1").fetchone()
        fresh = con.execute("SELECT source, kind, last_data_end, last_error FROM source_freshness").fetchone()
    assert first == ("polygon", start, "split")
    assert fresh == ("polygon", "bars:1m", start + timedelta(minutes=30), None)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_bad_key_fails_fast_records_and_alerts(polygon, warehouse, monkeypatch):
    monkeypatch.setenv("TAPEFLOW_POLYGON_API_KEY", "SEKRET-wrong-key-424242")
    with WebhookReceiver() as rx:
        monkeypatch.setenv("TAPEFLOW_ALERT_WEBHOOK_URL", rx.url)
        state = ingest_bars(symbols=["SOUN"], timeframe="1m", start=date(2025, 11, 28), end=date(2025, 11, 28), return_state=True)
        assert state.is_failed()
        rx.wait_for(1)
        [alert] = rx.bodies
    assert len(polygon.hits("/v2/aggs")) == 1  # bad credentials are not retried
    with warehouse.read() as con:
        [(error,)] = con.execute("SELECT last_error FROM source_freshness WHERE source = 'polygon'").fetchall()
    assert "check TAPEFLOW_POLYGON_API_KEY" in error
    assert "check TAPEFLOW_POLYGON_API_KEY" in alert["message"]
    assert "SEKRET-wrong-key-424242" not in error + json.dumps(alert)


def test_latest_bars_is_the_last_bar_ended_by_then():
    at = datetime(2011, 3, 14, 10, 0, 30, tzinfo=NY)
    latest = latest_bars(ReplaySource(PROJECT_DATA), ["SPY"], "1m", at, timedelta(minutes=30))
    [row] = latest.rows(named=True)
    assert row["end_ts"] <= at and row["ts"].astimezone(NY).strftime("%H:%M") == "09:59"
