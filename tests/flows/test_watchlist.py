"""Watchlist flows on a real Prefect API: snapshots stored once, skipped when the market is shut,
and the scanner backfill over the bundled history."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from flows.backfill import backfill_watchlist
from flows.ingest import ingest_bars
from flows.watchlist import snapshot_watchlist
from tests.fakes.bullalert import FakeBullAlert

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]
NY = ZoneInfo("America/New_York")
KEY = "SEKRET-BA-flows"


@pytest.fixture
def bullalert(settings, monkeypatch):
    with FakeBullAlert(KEY) as fake:
        monkeypatch.setenv("TAPEFLOW_BULLALERT_URL", fake.url)
        monkeypatch.setenv("TAPEFLOW_BULLALERT_API_KEY", KEY)
        yield fake


def snapshot_rows(warehouse) -> list[tuple]:
    with warehouse.read() as con:
        return con.execute(
            "SELECT source, session, ticker, rank, score FROM watchlist_snapshots ORDER BY source, session, rank"
        ).fetchall()


def test_same_snapshot_twice_is_stored_once(bullalert, warehouse):
    as_of = datetime(2025, 11, 28, 8, 45, tzinfo=NY)  # the half day after Thanksgiving 2025
    bullalert.add_snapshot("pre_market", as_of, [("NVDA", 91.0), ("SOUN", 84.5)])
    first = snapshot_watchlist(source="bullalert", as_of=as_of)
    second = snapshot_watchlist(source="bullalert", as_of=as_of)
    assert (first["session"], first["inserted"], first["unchanged"]) == ("pre_market", 2, 0)
    assert (second["inserted"], second["unchanged"]) == (0, 2)
    assert snapshot_rows(warehouse) == [
        ("bullalert", "pre_market", "NVDA", 1, 91.0), ("bullalert", "pre_market", "SOUN", 2, 84.5)
    ]
    with warehouse.read() as con:
        seen = con.execute("SELECT DISTINCT fetched_at FROM watchlist_snapshots").fetchall()
        fresh = con.execute("SELECT source, kind, last_error FROM source_freshness").fetchall()
    assert len(seen) == 1  # the second fetch did not move the first-seen time
    assert fresh == [("bullalert", "watchlist", None)]


@pytest.mark.parametrize(
    ("moment", "why"),
    [
        (datetime(2025, 11, 27, 10, 0, tzinfo=NY), "2025-11-27 is not an XNYS session (weekend or holiday)"),
        (datetime(2025, 11, 28, 13, 30, tzinfo=NY), "is after_hours: snapshots are taken in pre-market and regular hours"),
    ],
)
def test_closed_market_means_no_snapshot_and_says_why(bullalert, warehouse, moment, why):
    bullalert.add_snapshot("market", moment, [("NVDA", 91.0)])
    result = snapshot_watchlist(source="bullalert", as_of=moment)
    assert why in result["skipped"]
    assert bullalert.hits("/v1/watchlist") == []  # not even asked
    assert not warehouse.path.exists() or snapshot_rows(warehouse) == []


def test_bullalert_backfill_replays_each_session_from_pre_open_to_close(bullalert, warehouse):
    day = date(2025, 11, 28)  # a half day: closes at 13:00
    bullalert.add_snapshot("pre_market", datetime(2025, 11, 28, 8, 45, tzinfo=NY), [("NVDA", 91.0), ("SOUN", 84.5)])
    bullalert.add_snapshot("market", datetime(2025, 11, 28, 10, 10, tzinfo=NY), [("SPY", 55.0)])
    counts = backfill_watchlist(source="bullalert", start=day, end=day, every_minutes=60)
    asked = [hit.query["as_of"] for hit in bullalert.hits("/v1/watchlist")]
    assert asked == [f"2025-11-28T{h:02d}:00:00Z" for h in range(9, 19)]  # 04:00..13:00 New York
    assert {hit.query["session"] for hit in bullalert.hits("/v1/watchlist")} == {"all"}
    # Each list once, though 09:00 and 10:00 (and 11:00..13:00) land on the same one.
    assert (counts["fetched"], counts["inserted"], counts["quarantined"]) == (3, 3, 0)
    assert snapshot_rows(warehouse) == [
        ("bullalert", "market", "SPY", 1, 55.0),
        ("bullalert", "pre_market", "NVDA", 1, 91.0), ("bullalert", "pre_market", "SOUN", 2, 84.5),
    ]


def test_scanner_snapshots_and_backfill_from_stored_bars(warehouse):
    ingest_bars(source="replay", timeframe="1d", start=date(2010, 3, 1), end=date(2010, 5, 7))
    live = snapshot_watchlist(source="scanner", as_of=datetime(2010, 5, 7, 9, 0, tzinfo=NY))
    assert live["session"] == "pre_market" and live["inserted"] == 20

    counts = backfill_watchlist(source="scanner", start=date(2010, 5, 3), end=date(2010, 5, 7))
    assert counts["fetched"] == 5 * 20 and counts["inserted"] == 4 * 20 and counts["unchanged"] == 20
    with warehouse.read() as con:
        days = con.execute(
            "SELECT timezone('America/New_York', as_of)::DATE AS d, count(*), max(score) FROM watchlist_snapshots "
            "GROUP BY d ORDER BY d"
        ).fetchall()
    assert [d for d, _, _ in days] == [date(2010, 5, d) for d in (3, 4, 5, 6, 7)]
    assert all(n == 20 and 0 < top <= 100 for _, n, top in days)
