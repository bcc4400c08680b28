"""Universes through the flows on a real Prefect API: `ingest-universe` (and `tapeflow universe
load`) stores the bundled file once, a backtest in `sp500-2010` records the universe and its
survivorship from the table, and the scanner backfill lists only a universe's members."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from typer.testing import CliRunner

from flows.backfill import backfill_watchlist
from flows.backtest import backtest
from flows.ingest import ingest_bars
from flows.universe import ingest_universe
from tapeflow.cli.main import app
from tests.universe_kit import store_universe

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]
SYMBOLS = ["AAPL", "MSFT", "F", "C", "XRX", "INTC"]
KNOWN = datetime(2010, 1, 4, 5, tzinfo=UTC)  # 00:00 New York
DESCRIPTION = "S&P 500 members as of a 2010 snapshot (survivorship-biased)"


def assumptions(warehouse, run_id: str) -> dict[str, str]:
    with warehouse.read() as con:
        (text,) = con.execute("SELECT assumptions FROM backtest_runs WHERE run_id = ?", [run_id]).fetchone()
    return json.loads(text)


def test_the_bundled_universe_loads_once_and_backtests_state_it(warehouse, tapeflow_home):
    first = ingest_universe()
    assert (first["inserted"], first["quarantined"], first["universes"]) == (525, 0, 1)
    again = CliRunner().invoke(app, ["universe", "load"])
    assert again.exit_code == 0, again.output
    assert "ingest-universe" in again.stdout
    with warehouse.read() as con:
        assert con.execute("SELECT count(*) FROM universe_members").fetchone() == (524,)
        runs = con.execute("SELECT inserted, updated, unchanged FROM ingest_runs WHERE kind = 'universe' "
                           "ORDER BY finished_at").fetchall()
    assert runs == [(525, 0, 0), (0, 0, 525)]  # the second load stored nothing new

    ingest_bars(source="replay", symbols=SYMBOLS, timeframe="1d", start=date(2009, 8, 21), end=date(2010, 8, 20))
    scoped = backtest(strategy="sma_cross", params={"fast": 10, "slow": 30}, symbols=SYMBOLS, universe="sp500-2010")
    stated = assumptions(warehouse, scoped["run_id"])
    assert stated["universe"].startswith(f"sp500-2010: {DESCRIPTION}; entries only on symbols")
    assert stated["survivorship"].startswith("survivorship_biased (the universes table, for sp500-2010 from replay)")
    # Without a universe nothing is refused, and the report still names the data's recorded universe.
    free = backtest(strategy="sma_cross", params={"fast": 10, "slow": 30}, symbols=SYMBOLS)
    stated = assumptions(warehouse, free["run_id"])
    assert DESCRIPTION in stated["universe"] and "membership not applied" in stated["universe"]
    assert stated["survivorship"].startswith("survivorship_biased")

    with pytest.raises(LookupError, match="no universe 'nope'"):
        backtest(strategy="sma_cross", symbols=SYMBOLS, universe="nope")


def test_the_scanner_backfill_lists_only_the_universe_of_the_day(warehouse):
    ingest_bars(source="replay", symbols=SYMBOLS, timeframe="1d", start=date(2010, 1, 4), end=date(2010, 6, 30))
    # F and C are members throughout; XRX and INTC only until the end of April.
    store_universe(warehouse, "four-names", [
        *((s, date(2010, 1, 4), None, KNOWN) for s in ("F", "C")),
        *((s, date(2010, 1, 4), date(2010, 4, 30), KNOWN) for s in ("XRX", "INTC")),
    ])
    counts = backfill_watchlist(source="scanner", start=date(2010, 3, 1), end=date(2010, 6, 30), universe="four-names")
    assert counts["inserted"] > 0
    with warehouse.read() as con:
        listed = con.execute(
            "SELECT DISTINCT ticker, as_of >= TIMESTAMPTZ '2010-05-01 00:00:00-04' AS may FROM watchlist_snapshots").fetchall()
    assert {ticker for ticker, _ in listed} <= {"F", "C", "XRX", "INTC"}
    assert {ticker for ticker, may in listed if may} <= {"F", "C"}
