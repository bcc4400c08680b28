"""Point-in-time membership on a real warehouse: from/to dates and knowable_at, the same in SQL
and in polars; the bundled panel's universe file; and the scanner that lists only members."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import polars as pl
import pytest

from tapeflow.calendar.exchange import NEW_YORK
from tapeflow.config import PROJECT_DATA
from tapeflow.sources.scanner import ScannerSource, scan
from tapeflow.sources.universe import Survivorship, UnknownUniverse, load_membership
from tapeflow.sources.universe_files import PANEL_UNIVERSE, UNIVERSE_DIR, panel_members, read_universe_files
from tests.sources.test_scanner import frame, history, with_last
from tests.universe_kit import store_bundled, store_universe
from warehouse.universes import members_on, membership


def ny(day: date, hh: int = 0, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), NEW_YORK).astimezone(UTC)


D = [date(2024, 3, d) for d in (4, 5, 6, 7, 8)]  # Mon .. Fri

INTERVALS = [
    ("STAY", D[0], None, ny(D[0])),  # a member all week
    ("LEFT", D[0], D[1], ny(D[0])),  # its last day is Tuesday
    ("JOIN", D[2], None, ny(D[2])),  # from Wednesday
    ("LATE", D[1], None, ny(D[3], 12)),  # from Tuesday, but only known on Thursday at noon
    ("BACK", D[0], D[0], ny(D[0])),  # Monday, then again from Thursday
    ("BACK", D[3], None, ny(D[3])),
]


@pytest.fixture
def universe(warehouse):
    store_universe(warehouse, "test-pit", INTERVALS)
    with warehouse.read() as con:
        return load_membership(con, "test-pit")


@pytest.mark.parametrize(("at", "expected"), [
    (ny(D[0], 16), {"STAY", "LEFT", "BACK"}),
    (ny(D[1], 9, 30), {"STAY", "LEFT"}),  # LATE's membership from Tuesday is not known yet
    (ny(D[2], 16), {"STAY", "JOIN"}),  # LEFT left on Tuesday
    (ny(D[3], 11, 59), {"STAY", "JOIN", "BACK"}),
    (ny(D[3], 12), {"STAY", "JOIN", "BACK", "LATE"}),  # knowable at exactly then
    (ny(D[4], 9), {"STAY", "JOIN", "BACK", "LATE"}),
])
def test_membership_respects_dates_and_when_it_was_knowable(warehouse, universe, at, expected):
    assert universe.members_at(at) == expected
    with warehouse.read() as con:
        assert set(members_on(con, "test-pit", at.astimezone(NEW_YORK).date(), at)) == expected  # the SQL says the same
    symbols = sorted({s for s, *_ in INTERVALS})
    mask = universe.member_mask(pl.Series(symbols), pl.Series([at] * len(symbols)))
    assert {s for s, m in zip(symbols, mask) if m} == expected


def test_a_day_without_an_instant_is_known_at_its_end(warehouse, universe):
    with warehouse.read() as con:
        assert members_on(con, "test-pit", D[3]) == ["BACK", "JOIN", "LATE", "STAY"]
        assert membership(con, "test-pit", D[2], D[2])["symbol"].to_list() == ["JOIN", "LATE", "STAY"]


def test_the_record_comes_from_the_table_and_an_unknown_name_is_refused(warehouse, universe):
    assert (universe.universe.name, universe.universe.survivorship) == ("test-pit", Survivorship.POINT_IN_TIME)
    assert universe.universe.description == "a hand-made test universe"
    with warehouse.read() as con, pytest.raises(UnknownUniverse, match="no universe 'nope' in the warehouse; known: test-pit"):
        load_membership(con, "nope")


def test_the_bundled_file_is_the_panel_symbol_list_the_documented_command_writes():
    records, members = read_universe_files(PROJECT_DATA / UNIVERSE_DIR)
    assert records.to_dicts() == [{
        "universe": PANEL_UNIVERSE, "description": "S&P 500 members as of a 2010 snapshot (survivorship-biased)",
        "survivorship": "survivorship_biased", "source": "replay"}]
    derived = panel_members(PROJECT_DATA)
    assert members.select(derived.columns).sort("symbol").to_dicts() == derived.to_dicts()
    assert derived.height == 524 and derived["to_date"].null_count() == 524
    assert derived.filter(pl.col("symbol") == "BRK.B").row(0, named=True)["from_date"] == "2010-03-01"


def test_the_bundled_universe_on_its_first_and_last_day(warehouse):
    store_bundled(warehouse)
    with warehouse.read() as con:
        assert len(members_on(con, PANEL_UNIVERSE, date(2009, 8, 21))) == 499
        assert len(members_on(con, PANEL_UNIVERSE, date(2010, 8, 20))) == 524  # no removals: the file cannot tell them
        assert "BRK.B" not in members_on(con, PANEL_UNIVERSE, date(2010, 2, 26))


HOT = dict(open=10.5, high=10.7, low=10.3, close=10.6, volume=3_000.0)


def hot_bars() -> pl.DataFrame:
    """Three symbols that all score on their last bar (20 quiet bars, then a gap on volume)."""
    return frame([row for symbol in ("STAY", "LEFT", "LATE") for row in with_last(history(symbol, 22), **HOT)])


def test_the_scanner_ranks_only_the_members_of_that_morning(warehouse):
    bars = hot_bars()
    as_of = bars["end_ts"].max() + timedelta(hours=17)  # the next morning, before the open
    day = as_of.astimezone(NEW_YORK).date()
    store_universe(warehouse, "scan-pit", [
        ("STAY", day - timedelta(days=60), None, ny(day - timedelta(days=60))),
        ("LEFT", day - timedelta(days=60), day - timedelta(days=1), ny(day - timedelta(days=60))),  # gone yesterday
        ("LATE", day - timedelta(days=60), None, as_of + timedelta(minutes=1)),  # known a minute too late
    ])
    with warehouse.read() as con:
        universe = load_membership(con, "scan-pit")
    assert sorted(scan(bars, as_of, "pre_market")["ticker"]) == ["LATE", "LEFT", "STAY"]  # no universe: every symbol
    assert scan(bars, as_of, "pre_market", universe=universe)["ticker"].to_list() == ["STAY"]

    source = ScannerSource(lambda until: bars, universe=lambda: universe)
    later = as_of + timedelta(minutes=1)
    listed = source.snapshots([(as_of, "pre_market"), (later, "pre_market")])
    assert listed.select("as_of", "ticker").rows() == [(as_of, "STAY"), (later, "LATE"), (later, "STAY")]
    assert listed["payload_hash"][0] != scan(bars, as_of, "pre_market")["payload_hash"][0]  # the scope is in the hash


def test_the_scanner_from_the_warehouse_names_an_unknown_universe(warehouse):
    store_universe(warehouse, "scan-pit", [("STAY", D[0], None, ny(D[0]))])
    source = ScannerSource.from_warehouse(warehouse, universe="nope")
    with pytest.raises(UnknownUniverse, match="no universe 'nope'"):
        source.snapshots([(ny(D[1], 9), "pre_market")])
