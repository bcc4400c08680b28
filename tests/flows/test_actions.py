"""Corporate actions as users load them: the ingest-actions flow on the bundled file, the
price-jump check it re-runs, the `tapeflow actions` commands, and a backtest across a split."""

from __future__ import annotations

from datetime import date

import pytest
from typer.testing import CliRunner

from flows.actions import ingest_actions
from flows.backtest import backtest
from flows.ingest import ingest_bars
from tapeflow.cli.main import app

runner = CliRunner()
SYMBOLS = ["GIS", "DHR", "CVS", "MSFT"]


@pytest.mark.usefixtures("prefect_harness")
def test_actions_explain_the_jumps_the_bar_ingest_found_and_backtests_price_across_them(warehouse, tapeflow_home):
    bars = ingest_bars(source="replay", symbols=SYMBOLS, timeframe="1d", start=date(2009, 8, 21), end=date(2010, 8, 20))
    assert bars["findings"] == 3  # GIS and DHR split, CVS fell 20%: nothing recorded explains them yet
    first = ingest_actions(source="replay", symbols=SYMBOLS, start=date(2009, 8, 21), end=date(2010, 8, 20))
    assert (first["inserted"], first["quarantined"], first["findings"]) == (2, 0, 1)
    again = ingest_actions(source="replay", symbols=SYMBOLS, start=date(2009, 8, 21), end=date(2010, 8, 20))
    assert (again["inserted"], again["unchanged"]) == (0, 2)
    with warehouse.read() as con:
        assert con.sql("SELECT symbol FROM data_findings").fetchall() == [("CVS",)]

    listed = runner.invoke(app, ["actions", "list", "--format", "csv"])
    assert listed.exit_code == 0, listed.output
    assert "GIS,split,2010-06-09,2.0" in listed.output and "DHR,split,2010-06-14,2.0" in listed.output
    found = runner.invoke(app, ["actions", "findings", "--format", "json"])
    assert found.exit_code == 0 and '"symbol":"CVS"' in found.output.replace(" ", "")
    refused = runner.invoke(app, ["actions", "ingest", "--source", "nasdaq"])
    assert refused.exit_code == 2 and "--source must be one of replay, alpaca, polygon" in refused.output
    keyless = runner.invoke(app, ["actions", "ingest", "--source", "polygon"], env={"TAPEFLOW_POLYGON_API_KEY": ""})
    assert keyless.exit_code == 2 and "polygon needs TAPEFLOW_POLYGON_API_KEY to be set" in keyless.output

    summary = backtest(strategy="sma_cross", symbols=["GIS"], costs="none")
    with warehouse.read() as con:
        worst = con.execute("SELECT min(return_pct) FROM backtest_trades WHERE run_id = ?", [summary["run_id"]]).fetchone()
    assert worst[0] > -20  # the split is no loss (raw prices made it -48%)
    raw = backtest(strategy="sma_cross", symbols=["GIS"], costs="none", adjust="raw")
    with warehouse.read() as con:
        worst = con.execute("SELECT min(return_pct) FROM backtest_trades WHERE run_id = ?", [raw["run_id"]]).fetchone()
    assert worst[0] < -40
