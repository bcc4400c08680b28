"""Universe batches: bad records and memberships go to the quarantine with their reason, and a
second load of the same rows stores nothing new (real DuckDB warehouse)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl

from tapeflow.ingest.universe import check_universes, store_universes
from tests.universe_kit import store_bundled, universe_frames

T0 = datetime(2024, 3, 4, 5, tzinfo=UTC)


def test_bad_rows_are_refused_with_their_reason():
    records, members = universe_frames("good", [("AAA", date(2024, 3, 4), None, T0), ("BBB", date(2024, 3, 4), date(2024, 3, 8), T0)])
    bad_record = pl.DataFrame([{"universe": "shaky", "description": "x", "survivorship": "mostly fine", "source": "test"}])
    rows = {
        "to before from": {"symbol": "CCC", "from_date": "2024-03-08", "to_date": "2024-03-04", "knowable_at": T0.isoformat()},
        "naive knowable": {"symbol": "DDD", "from_date": "2024-03-04", "to_date": None, "knowable_at": "2024-03-04T00:00:00"},
        "bad symbol": {"symbol": "not a symbol", "from_date": "2024-03-04", "to_date": None, "knowable_at": T0.isoformat()},
        "bad date": {"symbol": "EEE", "from_date": "March 4", "to_date": None, "knowable_at": T0.isoformat()},
        "duplicate": {"symbol": "AAA", "from_date": "2024-03-04", "to_date": None, "knowable_at": T0.isoformat()},
    }
    extra = pl.DataFrame([{"universe": "good", "source": "test", **r} for r in rows.values()]
                         + [{"universe": "shaky", "symbol": "FFF", "from_date": "2024-03-04", "to_date": None,
                             "knowable_at": T0.isoformat(), "source": "test"}])
    checked = check_universes(pl.concat([records, bad_record]), pl.concat([members, extra.select(members.columns)]))
    assert checked.records["universe"].to_list() == ["good"]
    assert checked.members.select("symbol", "to_date").rows() == [("AAA", None), ("BBB", date(2024, 3, 8))]
    assert checked.members["knowable_at"].to_list() == [T0, T0]
    reasons = checked.rejected["reason"].to_list()
    assert reasons == [
        "survivorship must be one of point_in_time, survivorship_biased",
        "to_date is before from_date",
        "knowable_at must be an ISO-8601 instant with its offset",
        "symbol must be 1-21 upper-case letters, digits or . / ^ -",
        "from_date is missing or not a YYYY-MM-DD date",
        "duplicate of an earlier row in the same batch",
        "its universe has no good record in universes.csv",
    ]
    assert '"symbol": "CCC"' in checked.rejected["payload"][1]  # the row as it came


def test_loading_twice_stores_nothing_new(warehouse):
    first = store_bundled(warehouse)
    with warehouse.read() as con:
        recorded = con.execute("SELECT recorded_at FROM universes").fetchall()
    second = store_bundled(warehouse)
    assert (first.inserted, first.updated, first.quarantined) == (525, 0, 0)  # 1 record, 524 members
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 525)
    with warehouse.read() as con:
        assert con.execute("SELECT count(*) FROM universe_members").fetchone() == (524,)
        assert con.execute("SELECT recorded_at FROM universes").fetchall() == recorded  # first stored, kept
        runs = con.execute("SELECT kind, inserted, unchanged FROM ingest_runs ORDER BY finished_at").fetchall()
    assert runs == [("universe", 525, 0), ("universe", 0, 525)]


def test_a_corrected_membership_replaces_the_stored_one(warehouse):
    records, members = universe_frames("fix", [("AAA", date(2024, 3, 4), None, T0)])
    store = lambda m: store_universes(warehouse, check_universes(records, m), run_id=f"r{m['to_date'][0]}",  # noqa: E731
                                      source="test", params={}, started_at=T0)
    store(members)
    counts = store(members.with_columns(pl.lit("2024-03-06").alias("to_date")))  # the source learnt of a removal
    assert (counts.inserted, counts.updated) == (0, 1)
    with warehouse.read() as con:
        assert con.execute("SELECT to_date FROM universe_members").fetchall() == [(date(2024, 3, 6),)]
