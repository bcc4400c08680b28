"""The warehouse: migrations, upserts, quarantine, the ingest transaction, the file lock."""

from __future__ import annotations

import re
import threading
import time
from datetime import timedelta

import duckdb
import polars as pl
import pytest

from tapeflow.ingest.bars import CheckedBars
from tapeflow.ingest.store import BARS, record_failure, store_batch
from tests.warehouse_lock import lock_held
from tests.warehouse_rows import T0, bars, stamped
from warehouse import Warehouse, WarehouseBusy, WarehouseMissing
from warehouse.migrate import (
    Migration,
    MigrationError,
    apply_migrations,
    bundled_migrations,
)
from warehouse.quarantine import quarantine
from warehouse.upsert import upsert


def rejected(*reasons: str) -> pl.DataFrame:
    return pl.DataFrame(
        {"source": ["test"] * len(reasons), "reason": list(reasons), "payload": [f'{{"n": {i}}}' for i in range(len(reasons))]}
    )


# -- migrations ----------------------------------------------------------------------------


def test_migrations_apply_once_and_record_versions(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    first = apply_migrations(con)
    assert first == [m.version for m in bundled_migrations()] and first[0] == 1
    assert apply_migrations(con) == []
    rows = con.execute("SELECT version, name FROM schema_version ORDER BY version").fetchall()
    assert rows[0] == (1, "market_data")
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"bars", "watchlist_snapshots", "news", "quarantine", "ingest_runs", "source_freshness", "schema_version"} <= tables


def test_new_migration_applies_on_top(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    apply_migrations(con)
    extra = [*bundled_migrations(), Migration(99, "extra", "CREATE TABLE extra (x INTEGER);")]
    assert apply_migrations(con, extra) == [99]
    assert con.execute("SELECT count(*) FROM extra").fetchone() == (0,)


def test_edited_migration_is_refused(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    apply_migrations(con)
    first = bundled_migrations()[0]
    edited = [Migration(first.version, first.name, first.sql + "\n-- edited\n")]
    with pytest.raises(MigrationError, match="edited after it was applied"):
        apply_migrations(con, edited)


def test_failed_migration_leaves_no_trace(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    apply_migrations(con)
    broken = [*bundled_migrations(), Migration(50, "broken", "CREATE TABLE half (x INTEGER); SELECT nope FROM nowhere;")]
    with pytest.raises(duckdb.Error):
        apply_migrations(con, broken)
    assert con.execute("SELECT count(*) FROM schema_version WHERE version = 50").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'half'").fetchone() == (0,)


# -- upserts -------------------------------------------------------------------------------


def test_upsert_is_idempotent_and_counts(warehouse):
    t1, t2 = T0, T0 + timedelta(days=1)
    with warehouse.write() as con:
        first = upsert(con, "bars", stamped(bars(5), t1), ("symbol", "timeframe", "ts"), bookkeeping=("ingested_at",))
    assert (first.inserted, first.updated, first.unchanged) == (5, 0, 0)

    with warehouse.write() as con:
        again = upsert(con, "bars", stamped(bars(5), t2), ("symbol", "timeframe", "ts"), bookkeeping=("ingested_at",))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 5)

    changed = bars(7).with_columns(pl.when(pl.col("ts") == T0).then(10.5).otherwise(pl.col("close")).alias("close"))
    with warehouse.write() as con:
        third = upsert(con, "bars", stamped(changed, t2), ("symbol", "timeframe", "ts"), bookkeeping=("ingested_at",))
    assert (third.inserted, third.updated, third.unchanged) == (2, 1, 4)

    with warehouse.read() as con:
        rows = con.execute("SELECT ts, close, ingested_at FROM bars ORDER BY ts").fetchall()
    assert len(rows) == 7
    assert rows[0][1] == 10.5 and rows[0][2] == t2  # changed row rewritten, with its new ingest time
    assert rows[1][2] == t1  # an unchanged row keeps the time it was first stored


def test_upsert_refuses_duplicate_keys_in_one_batch(warehouse):
    frame = stamped(pl.concat([bars(2), bars(1)]), T0)
    with pytest.raises(ValueError, match="share a key"), warehouse.write() as con:
        upsert(con, "bars", frame, ("symbol", "timeframe", "ts"))


def test_quarantine_keeps_payload_and_is_idempotent(warehouse):
    with warehouse.write() as con:
        assert quarantine(con, rejected("high is below low", "open is missing or not a number"), kind="bars", received_at=T0) == 2
    with warehouse.write() as con:
        assert quarantine(con, rejected("high is below low"), kind="bars", received_at=T0 + timedelta(hours=1)) == 0
    with warehouse.read() as con:
        rows = con.execute("SELECT reason, payload, received_at FROM quarantine ORDER BY reason").fetchall()
    assert rows == [("high is below low", '{"n": 0}', T0), ("open is missing or not a number", '{"n": 1}', T0)]


# What vendors echo back in an unreadable page: each way a key travels (Polygon's bearer
# header and apiKey query, Finnhub's header and token parameter, BullAlert's header, Alpaca's).
ECHOES = {
    "polygon": ('{"status": "ERROR", "request": {"headers": {"Authorization": "Bearer pk_SECRET1abcdef"}, '
                '"url": "/v2/aggs/ticker/SPY?apiKey=pk_SECRET2abcdef&limit=50000"}}'),
    "finnhub": '<html>bad gateway; X-Finnhub-Token: fh_SECRET3abcdef; GET /api/v1/news?token=fh_SECRET4abcdef&category=x',
    "bullalert": '{"echo": {"x-ba-api-key": "ba_SECRET5abcdef", "session": "pre_market"}, "rows": "not a list"}',
    "alpaca": "APCA-API-KEY-ID=PK_SECRET6abcdef, APCA-API-SECRET-KEY=SECRET7abcdef; symbol=SPY",
}


def test_quarantine_masks_whatever_credential_a_page_echoes_and_keeps_the_rest(warehouse):
    frame = pl.DataFrame({"source": list(ECHOES), "reason": ["unreadable page"] * len(ECHOES),
                          "payload": list(ECHOES.values())})
    with warehouse.write() as con:
        assert quarantine(con, frame, kind="bars", received_at=T0) == len(ECHOES)
    with warehouse.read() as con:
        stored = dict(con.execute("SELECT source, payload FROM quarantine").fetchall())
    secrets = re.findall(r"\w*SECRET\d\w*", " ".join(ECHOES.values()))
    assert len(secrets) == 7 and not [s for s in secrets for payload in stored.values() if s in payload], stored
    assert "/v2/aggs/ticker/SPY" in stored["polygon"] and "category=x" in stored["finnhub"]  # what the page was stays
    assert '"session": "pre_market"' in stored["bullalert"] and "symbol=SPY" in stored["alpaca"]
    assert stored["bullalert"].count("**********") == 1


# -- the ingest transaction -----------------------------------------------------------------


def store_bars(warehouse, checked: CheckedBars, run_id: str = "r1", **params):
    return store_batch(
        warehouse, BARS, checked.good, checked.rejected,
        run_id=run_id, source="test", feed="bars:1m", params=params, started_at=T0,
    )


def test_store_batch_stores_quarantines_and_records_the_run(warehouse):
    counts = store_bars(warehouse, CheckedBars(good=bars(3), rejected=rejected("high is below low")), x=1)
    assert counts.as_dict() == {"fetched": 4, "inserted": 3, "updated": 0, "unchanged": 0, "quarantined": 1, "stored": 3}
    with warehouse.read() as con:
        assert con.execute("SELECT count(*) FROM bars").fetchone() == (3,)
        assert con.execute("SELECT count(*) FROM quarantine").fetchone() == (1,)
        assert con.execute("SELECT fetched, inserted, quarantined, params->>'x' FROM ingest_runs").fetchone() == (4, 3, 1, "1")


def test_store_batch_is_all_or_nothing(warehouse):
    store_bars(warehouse, CheckedBars(bars(1), rejected()), run_id="r0")
    # No run id: the run record, written after the bars and the quarantine, is refused.
    with pytest.raises(duckdb.ConstraintException):
        store_bars(warehouse, CheckedBars(good=bars(5), rejected=rejected("x")), run_id=None)
    with warehouse.read() as con:
        assert con.execute("SELECT count(*) FROM bars").fetchone() == (1,)
        assert con.execute("SELECT count(*) FROM quarantine").fetchone() == (0,)
        assert con.execute("SELECT run_id FROM ingest_runs").fetchall() == [("r0",)]


def test_adjusted_and_raw_prices_never_mix(warehouse):
    store_bars(warehouse, CheckedBars(bars(3), rejected()), run_id="raw")
    split = bars(5).with_columns(pl.lit("split").alias("adjustment"))
    other = bars(2, symbol="IWM").with_columns(pl.lit("split").alias("adjustment"))
    counts = store_bars(warehouse, CheckedBars(pl.concat([split, other]), rejected()), run_id="split")
    assert (counts.inserted, counts.quarantined, counts.fetched) == (2, 5, 7)  # IWM has no history yet
    with warehouse.read() as con:
        held = con.execute("SELECT symbol, adjustment, count(*) FROM bars GROUP BY ALL ORDER BY 1").fetchall()
        reasons = con.execute("SELECT DISTINCT reason FROM quarantine").fetchall()
        payload = con.execute("SELECT payload->>'close' FROM quarantine LIMIT 1").fetchone()
    assert held == [("IWM", "split", 2), ("SPY", "raw", 3)]
    assert reasons == [("adjustment 'split' differs from the stored 'raw' bars of SPY 1m: "
                        "re-ingest the symbol's history in one adjustment",)]
    assert payload == ("10.0",)


def test_freshness_tracks_success_and_failure(warehouse):
    store_bars(warehouse, CheckedBars(bars(3), rejected()))
    record_failure(warehouse, source="test", feed="bars:1m", error="polygon /v2/aggs: gave up after 4 attempts (HTTP 503)")
    with warehouse.read() as con:
        row = con.execute(
            "SELECT last_data_end, last_success_at IS NOT NULL, last_error, lag_s > 0 FROM source_lag"
        ).fetchone()
    assert row == (T0 + timedelta(minutes=3), True, "polygon /v2/aggs: gave up after 4 attempts (HTTP 503)", True)
    store_bars(warehouse, CheckedBars(bars(1), rejected()))  # older data does not move the mark back
    with warehouse.read() as con:
        assert con.execute("SELECT last_data_end, last_error FROM source_freshness").fetchone() == (T0 + timedelta(minutes=3), None)


# -- connection discipline -----------------------------------------------------------------


def test_read_of_missing_warehouse_says_how_to_create_it(tmp_path):
    with pytest.raises(WarehouseMissing, match="tapeflow demo"), Warehouse(tmp_path / "none.duckdb").read():
        pass


@pytest.mark.slow
def test_busy_warehouse_gives_up_after_the_timeout(warehouse):
    with warehouse.write() as con:
        upsert(con, "bars", stamped(bars(1), T0), ("symbol", "timeframe", "ts"))
    notes: list[str] = []
    impatient = Warehouse(warehouse.path, lock_timeout_s=0.6, on_busy=notes.append)
    with lock_held(warehouse.path, 30) as holder:
        started = time.monotonic()
        with pytest.raises(WarehouseBusy, match=r"gave up after 0.6 s") as caught, impatient.read():
            pass
        waited = time.monotonic() - started
    assert 0.5 <= waited < 5
    assert f"PID {holder.pid}" in str(caught.value)
    assert len(notes) == 1 and "retrying for up to 0.6 s" in notes[0]


@pytest.mark.slow
def test_busy_warehouse_is_retried_until_released(warehouse):
    with warehouse.write() as con:
        upsert(con, "bars", stamped(bars(2), T0), ("symbol", "timeframe", "ts"))
    notes: list[str] = []
    patient = Warehouse(warehouse.path, lock_timeout_s=20, on_busy=notes.append)
    with lock_held(warehouse.path, 30) as holder:
        threading.Timer(1.0, holder.kill).start()
        with patient.read() as con:
            assert con.execute("SELECT count(*) FROM bars").fetchone() == (2,)
    assert notes and "warehouse busy" in notes[0]


def test_write_connection_is_closed_after_use(warehouse):
    with warehouse.write() as con:
        upsert(con, "bars", stamped(bars(1), T0), ("symbol", "timeframe", "ts"))
    # Another process can open the file at once: nothing here kept it.
    with lock_held(warehouse.path, 0.1):
        pass


def test_a_corrected_bar_keeps_the_version_it_replaced(warehouse):
    store_bars(warehouse, CheckedBars(bars(2), rejected()), run_id="first")
    corrected = bars(2).with_columns(pl.when(pl.col("ts") == T0).then(10.25).otherwise(pl.col("close")).alias("close"))
    counts = store_bars(warehouse, CheckedBars(corrected, rejected()), run_id="fix")
    assert (counts.updated, counts.unchanged) == (1, 1)
    with warehouse.read() as con:
        assert con.execute("SELECT close FROM bars WHERE ts = ?", [T0]).fetchone() == (10.25,)
        old = con.execute("SELECT ts, close, superseded_at IS NOT NULL FROM bar_revisions").fetchall()
    assert old == [(T0, 10.0, True)]


def test_identical_rejections_are_counted_not_lost(warehouse):
    twice = rejected("high is below low", "high is below low").with_columns(pl.lit('{"same": 1}').alias("payload"))
    counts = store_bars(warehouse, CheckedBars(bars(0), twice))
    with warehouse.read() as con:
        assert con.execute("SELECT copies FROM quarantine").fetchall() == [(2,)]
    assert counts.quarantined == 2


def test_a_retried_store_keeps_the_first_run_record(warehouse):
    store_bars(warehouse, CheckedBars(bars(3), rejected()), run_id="same")
    store_bars(warehouse, CheckedBars(bars(3), rejected()), run_id="same")
    with warehouse.read() as con:
        assert con.execute("SELECT inserted, unchanged FROM ingest_runs").fetchall() == [(3, 0)]


def test_readers_opening_at_once_on_threads_all_get_a_confined_utc_connection(warehouse):
    """Readers of one file in one process share DuckDB's settings: the first locks them, the
    others must still open (and stay confined), however the threads interleave."""
    from concurrent.futures import ThreadPoolExecutor

    with warehouse.write():
        pass

    def read(_: int) -> tuple:
        with warehouse.read() as con:
            return con.execute("SELECT current_setting('TimeZone') IN ('UTC', 'Etc/UTC'), "
                               "current_setting('enable_external_access'), count(*) FROM bars_all").fetchone()

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(read, range(64))) == {(True, False, 0)}


def test_a_held_burst_runs_on_the_threads_it_asks_for_and_leaves_the_file_as_it_was(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb")
    with warehouse.write() as con:
        default = con.execute("SELECT current_setting('threads')").fetchone()[0]
    with warehouse.held(threads=1), warehouse.write() as con:
        assert con.execute("SELECT current_setting('threads')").fetchone()[0] == 1
        with warehouse.held(threads=3):  # joins the burst as it is
            assert con.execute("SELECT current_setting('threads')").fetchone()[0] == 1
    with warehouse.write() as con:
        assert con.execute("SELECT current_setting('threads')").fetchone()[0] == default
