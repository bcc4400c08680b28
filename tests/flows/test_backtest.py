"""Backtests as users run them: the flow on warehouse data (rows recorded, report written,
summary artifact), and the CLI on a bars file, the look-ahead check and the report command."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from flows.backtest import backtest
from flows.ingest import ingest_bars
from tapeflow.cli.main import app
from tapeflow.config import PROJECT_DATA
from tapeflow.sources import Window
from tapeflow.sources.replay import ReplaySource

runner = CliRunner()
SYMBOLS = ["AAPL", "MSFT", "C", "F", "XRX", "INTC"]


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_backtest_flow_records_the_run_and_writes_its_report(warehouse, tapeflow_home):
    ingest_bars(source="replay", symbols=SYMBOLS, timeframe="1d", start=date(2009, 8, 21), end=date(2010, 8, 20))
    summary = backtest(strategy="sma_cross", params={"fast": 10, "slow": 30}, symbols=SYMBOLS, costs="flat-commission")
    run_id = summary["run_id"]
    with warehouse.read() as con:
        run = con.execute("SELECT strategy, params->>'fast', kind, code_version, report_path FROM backtest_runs").fetchone()
        fills = con.execute("SELECT count(*), sum(commission) FROM backtest_fills WHERE run_id = ?", [run_id]).fetchone()
        shares = con.execute("SELECT sum(qty) FROM backtest_fills WHERE run_id = ?", [run_id]).fetchone()[0]
        equity = con.execute("SELECT count(*), last(equity ORDER BY ts) FROM backtest_equity WHERE run_id = ?", [run_id]).fetchone()
    assert run[:3] == ("sma_cross", "10", "backtest") and run[3]
    assert fills[0] > 10 and fills[1] == pytest.approx(fills[0] * 1.0)  # $1 minimum per order, at most 100 shares
    assert equity[0] > 200 and equity[1] == pytest.approx(summary["final_equity"])
    # The same fills, and their orders, in the tables paper and live share (mode backtest).
    with warehouse.read() as con:
        shared = con.execute("SELECT count(*), sum(commission) FROM fills WHERE mode = 'backtest' AND "
                             "starts_with(fill_id, ?)", [run_id + ":"]).fetchone()
        orders = con.execute("SELECT count(*), count(DISTINCT order_type), min(status), sum(filled_qty) FROM orders "
                             "WHERE mode = 'backtest' AND starts_with(client_order_id, ?)", [run_id + ":"]).fetchone()
    assert shared == fills
    assert orders == (fills[0], 1, "filled", pytest.approx(shares))
    assert shares <= 100.0 * fills[0]  # 100 an entry, fewer where 25% of equity buys fewer (the policy's cap)
    report = Path(run[4])
    assert report.exists() and report.is_relative_to(tapeflow_home.resolve())
    assert "sma_cross" in report.read_text()

    from prefect.client.orchestration import get_client

    async def artifact():
        async with get_client() as client:
            return await client.read_latest_artifacts()

    artifacts = {a.key: a for a in asyncio.run(artifact())}
    summary_md = artifacts["backtest-sma-cross"].data
    assert summary_md.startswith("# sma_cross (fast=10, slow=30, qty=100), 2009-08-21..2010-08-20")  # no dict repr
    assert "](data:image/png;base64," in summary_md  # the equity chart shows in the UI with no file server
    assert str(report) in summary_md  # no reports server in this test: the path instead of a link
    assert "backtest-sma-cross-report" not in artifacts
    metrics = {row["metric"]: row["value"] for row in json.loads(artifacts["backtest-sma-cross-metrics"].data)}
    assert metrics["total_return"].endswith("%") and metrics["final_equity"].startswith("$")
    assert float(metrics["final_equity"].strip("$").replace(",", "")) == pytest.approx(summary["final_equity"], abs=0.01)
    settings = {row["setting"]: row["value"] for row in json.loads(artifacts["backtest-sma-cross-settings"].data)}
    assert settings["params.fast"] == "10" and settings["costs"] == "flat-commission"


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_a_backtest_links_its_report_where_the_stack_serves_reports(warehouse, tapeflow_home, monkeypatch):
    monkeypatch.setenv("TAPEFLOW_REPORTS_URL", "http://127.0.0.1:4201/")
    ingest_bars(source="replay", symbols=SYMBOLS[:2], timeframe="1d", start=date(2010, 1, 4), end=date(2010, 6, 30))
    summary = backtest(strategy="sma_cross", symbols=SYMBOLS[:2], start=date(2010, 3, 1), end=date(2010, 6, 30))

    from prefect.client.orchestration import get_client

    async def artifacts():
        async with get_client() as client:
            return {a.key: a for a in await client.read_latest_artifacts()}

    link = asyncio.run(artifacts())["backtest-sma-cross-report"]
    assert f"](http://127.0.0.1:4201/{summary['run_id']}/report.html)" in link.data  # Prefect keeps links as markdown


def bars_file(tmp_path: Path) -> Path:
    raw = ReplaySource(PROJECT_DATA).bars(["AAPL", "MSFT"], "1d", Window.days(date(2009, 8, 21), date(2010, 8, 20)))
    path = tmp_path / "bars.parquet"
    # A user's own file: no end_ts, UTC timestamps (a zone is required: docs/backtesting.md).
    raw.filter(pl.col("problem").is_null()).select(
        "symbol", "ts", "open", "high", "low", "close", "volume"
    ).write_parquet(path)
    return path


def test_backtest_on_a_bars_file_writes_fills_and_equity(tmp_path, tapeflow_home):
    fills, equity = tmp_path / "fills.parquet", tmp_path / "equity.csv"
    result = runner.invoke(app, ["backtest", "sma_cross", "--bars", str(bars_file(tmp_path)), "-p", "fast=5",
                                 "-p", "slow=20", "--costs", "none", "--fills-out", str(fills), "--equity-out", str(equity)])
    assert result.exit_code == 0, result.output
    written = pl.read_parquet(fills)
    assert written.height > 4 and set(written["symbol"]) == {"AAPL", "MSFT"}
    assert (written["commission"] == 0).all()
    curve = pl.read_csv(equity)
    assert curve.height > 200
    assert "final equity" in result.stdout and "report:" in result.stdout


def test_bad_parameters_are_refused_plainly(tmp_path, tapeflow_home):
    result = runner.invoke(app, ["backtest", "sma_cross", "--bars", str(bars_file(tmp_path)), "-p", "fast=40"])
    assert result.exit_code == 2  # refused before anything runs, as every bad argument is
    assert "must be shorter than slow" in result.stderr
    unknown = runner.invoke(app, ["backtest", "sma_crosss"])  # no --bars: refused before Prefect starts
    assert unknown.exit_code == 2 and "unknown strategy 'sma_crosss'; known:" in unknown.stderr


def test_check_lookahead_command(tmp_path, tapeflow_home):
    result = runner.invoke(app, ["check-lookahead", "sma_cross", "--bars", str(bars_file(tmp_path)), "--cuts", "8"])
    assert result.exit_code == 0, result.output
    assert "no look-ahead found at" in result.stdout


def test_check_lookahead_command_fails_when_nothing_was_decided(tmp_path, tapeflow_home):
    # Twenty sessions are too few for a 30-session average: no decision, so nothing was checked.
    short = tmp_path / "short.parquet"
    pl.read_parquet(bars_file(tmp_path)).filter(pl.int_range(pl.len()).over("symbol") < 20).write_parquet(short)
    result = runner.invoke(app, ["check-lookahead", "sma_cross", "--bars", str(short), "--cuts", "8"])
    assert result.exit_code == 1, result.output
    assert "NO DECISIONS" in result.stderr and "proves nothing" in result.stderr


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_report_command_rewrites_a_missing_report(warehouse, tapeflow_home):
    ingest_bars(source="replay", symbols=SYMBOLS[:2], timeframe="1d", start=date(2009, 8, 21), end=date(2010, 8, 20))
    summary = backtest(strategy="sma_cross", symbols=SYMBOLS[:2], costs="none")
    Path(summary["report"]).unlink()
    result = runner.invoke(app, ["report", summary["run_id"]])
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()).exists()
    missing = runner.invoke(app, ["report", "no-such-run"])
    assert missing.exit_code == 1 and "no backtest run 'no-such-run'" in missing.stderr


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_the_command_gives_the_same_fills_and_metrics_on_the_warehouse_and_on_a_file_of_its_bars(
        warehouse, tapeflow_home, tmp_path):
    ingest_bars(source="replay", symbols=SYMBOLS, timeframe="1d", start=date(2009, 8, 21), end=date(2010, 8, 20))
    path = tmp_path / "same.parquet"
    with warehouse.read() as con:
        con.sql("SELECT symbol, ts, end_ts, open, high, low, close, volume FROM bars WHERE timeframe = '1d'").pl().write_parquet(path)
    args = ["backtest", "sma_cross", "-p", "fast=10", "-p", "slow=30", "-p", "qty=0"]  # sized: the policy acts
    from_warehouse = runner.invoke(app, args)
    from_file = runner.invoke(app, [*args, "--bars", str(path), "--fills-out", str(tmp_path / "fills.parquet")])
    assert from_warehouse.exit_code == 0 and from_file.exit_code == 0, from_warehouse.output + from_file.output
    with warehouse.read() as con:
        recorded = con.sql("SELECT f.symbol, f.side, f.ts, f.qty, f.price, f.commission FROM backtest_fills f "
                           "JOIN backtest_runs r USING (run_id) ORDER BY f.ts, f.symbol, f.side").pl()
    written = pl.read_parquet(tmp_path / "fills.parquet").select(recorded.columns).sort("ts", "symbol", "side")
    assert written.height > 20
    assert_frame_equal(written, recorded, check_dtypes=False)

    def metrics(output: str) -> list[str]:
        names = ("total_return", "cagr", "sharpe", "max_drawdown", "trades", "win_rate", "final_equity", "exposure")
        return [" ".join(line.split()) for line in output.splitlines() if line.strip("│ ").split(" ")[0] in names]

    assert len(metrics(from_file.stdout)) >= 6 and metrics(from_warehouse.stdout) == metrics(from_file.stdout)
    report = Path(from_file.stdout.split("report: ")[-1].split()[0]).read_text()  # the rules, stated with the numbers
    assert "execution policy" in report and "at most 25% of equity in one name" in report and "daily loss limit 2.0%" in report
