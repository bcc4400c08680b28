"""The parameter grid by symbol: batches cover every symbol once, the ranking orders candidates
by their median objective, and the flow's table is the same whatever the batch size and
whether it runs on local threads or a real Dask cluster (two worker processes over TCP)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from flows.ingest import ingest_bars
from tapeflow.cli.main import app
from tapeflow.progress import Step, listening
from tapeflow.research.grid import TABLE_SCHEMA, batches, grid_candidates, ranking, refusals
from tests.cli.test_research_commands import store_panel

SYMBOLS = ["AAPL", "MSFT", "C", "F"]
START, END = date(2009, 8, 21), date(2010, 8, 20)
GRID = {"fast": [5, 10, 40], "slow": [20, 30]}  # fast=40 >= slow: refused by the strategy
runner = CliRunner()


@pytest.mark.parametrize("n, size", [(0, 3), (1, 1), (7, 3), (9, 3), (10, 25), (53, 25)])
def test_batches_cover_every_symbol_once_within_the_size(n, size):
    symbols = [f"S{i:03d}" for i in range(n)]
    plan = batches(symbols + symbols[:2], size)  # a symbol named twice is still scanned once
    assert [s for batch in plan for s in batch] == symbols
    assert all(1 <= len(batch) <= size for batch in plan)
    assert len(plan) == -(-n // size)


def test_a_batch_size_below_one_is_refused():
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        batches(["AAPL"], 0)


def test_grid_candidates_keep_the_refused_ones_in_enumeration_order():
    assert grid_candidates({"fast": [5, 40], "slow": [20]}) == [{"fast": 5, "slow": 20}, {"fast": 40, "slow": 20}]


def _table(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame([dict(zip(TABLE_SCHEMA, row, strict=True)) for row in rows], schema=TABLE_SCHEMA)


def test_ranking_orders_by_median_objective_then_positive_share():
    a, b, c, d, e = (json.dumps({"fast": f}) for f in (1, 2, 3, 4, 5))
    table = _table([
        # a: median 1.0 (of 0.5, 1.0, 3.0), two of three positive
        (0, a, "X", 0.5, 0.10, 4, None), (0, a, "Y", 1.0, -0.02, 3, None), (0, a, "Z", 3.0, 0.20, 5, None),
        # b: the best single symbol (9.0) but median 0.0: a spike on one name does not win
        (1, b, "X", 9.0, 0.50, 2, None), (1, b, "Y", 0.0, -0.10, 1, None), (1, b, "Z", -1.0, -0.05, 2, None),
        # c: median 1.0 like a, and every symbol positive: ahead of a
        (2, c, "X", 1.0, 0.01, 1, None), (2, c, "Y", 1.0, 0.02, 1, None), (2, c, "Z", 0.9, 0.03, 1, None),
        # d: no objective anywhere (no trades): last
        (3, d, "X", None, None, 0, None), (3, d, "Y", None, 0.0, 0, None), (3, d, "Z", None, None, 0, None),
        # e: refused by the strategy: not ranked, listed once
        (4, e, "X", None, None, None, "fast too big"), (4, e, "Y", None, None, None, "fast too big"),
        (4, e, "Z", None, None, None, "fast too big"),
    ])
    ranked = ranking(table)
    assert ranked["params"].to_list() == [c, a, b, d]
    assert ranked["rank"].to_list() == [1, 2, 3, 4]
    assert ranked["median_objective"].to_list() == [1.0, 1.0, 0.0, None]
    assert ranked["positive_share"].to_list() == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])
    assert ranked["symbols"].to_list() == [3, 3, 3, 3]
    assert ranked["scored"].to_list() == [3, 3, 3, 0]
    assert ranked["trades"].to_list() == [3, 12, 5, 0]
    assert refusals(table) == [f"{e}: fast too big"]


def test_a_tie_keeps_the_grid_order():
    a, b = json.dumps({"fast": 1}), json.dumps({"fast": 2})
    table = _table([(1, b, "X", 1.0, 0.1, 1, None), (0, a, "X", 1.0, 0.1, 1, None)])
    assert ranking(table)["candidate"].to_list() == [0, 1]


# -- the flow on the bundled daily panel ------------------------------------------------------------


@pytest.fixture
def daily(warehouse):
    ingest_bars(source="replay", symbols=SYMBOLS, timeframe="1d", start=START, end=END)
    return warehouse


def _scan(**changed) -> dict:
    from flows.research import param_grid

    return param_grid(**{"strategy": "sma_cross", "grid": GRID, "symbols": SYMBOLS, "start": START, "end": END,
                         "costs": "flat-commission", **changed})


def _table_of(summary: dict) -> pl.DataFrame:
    return pl.read_csv(summary["table"], schema=TABLE_SCHEMA)


def _same(summary: dict) -> dict:
    """A summary without what differs between any two runs (its id, paths and batches)."""
    return {k: v for k, v in summary.items() if k not in ("run_id", "table", "summary", "batches")}


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_the_batch_size_changes_how_the_scan_is_split_never_its_table(daily, monkeypatch):
    monkeypatch.delenv("TAPEFLOW_DASK_ADDRESS", raising=False)
    one = _scan(batch_size=1)
    wide = _scan(batch_size=100)
    pair = _scan(batch_size=3)

    assert one["batches"] == [["AAPL"], ["C"], ["F"], ["MSFT"]]  # each task loaded its own symbol's bars only
    assert pair["batches"] == [["AAPL", "C", "F"], ["MSFT"]]
    assert wide["batches"] == [sorted(SYMBOLS)]
    table = _table_of(one)
    assert table.equals(_table_of(wide)) and table.equals(_table_of(pair))
    assert _same(one) == _same(wide) == _same(pair)

    # 6 candidates x 4 symbols; fast=40 >= slow is a row with the strategy's reason, not a failure
    assert table.height == 24 and set(table["symbol"]) == set(SYMBOLS)
    refused = table.filter(pl.col("reason").is_not_null())
    assert refused.height == 8 and refused["reason"].str.contains("must be shorter than slow").all()
    assert refused["objective"].null_count() == 8
    assert len(one["ranking"]) == 4 and one["best"] == json.loads(one["ranking"][0]["params"])
    assert table.filter(pl.col("reason").is_null())["trades"].sum() > 0  # the scan traded

    # one symbol's rows are that symbol alone: the same as a scan of it by itself
    alone = _table_of(_scan(symbols=["C"], batch_size=1))
    assert alone.equals(table.filter(pl.col("symbol") == "C"))

    # the four symbols fit one batch: the best candidate recorded as one portfolio's run
    with daily.read() as con:
        kind, params, metrics, report = con.execute(
            "SELECT kind, params, metrics, report_path FROM backtest_runs WHERE run_id = ?", [wide["run_id"]]).fetchone()
        curve = con.execute("SELECT count(*) FROM backtest_equity WHERE run_id = ?", [wide["run_id"]]).fetchone()[0]
    assert kind == "param_grid" and json.loads(params) == {**wide["best"], "qty": 100}
    recorded = json.loads(metrics)
    assert recorded["per_symbol_scan"] is True and recorded["symbols"] == 4 and recorded["ranking"] == wide["ranking"]
    assert "sharpe" in recorded and curve > 200  # the best candidate run as one portfolio: a real curve
    assert Path(report).read_text().startswith("# Parameter grid by symbol: sma_cross")


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_a_scan_wider_than_a_batch_records_the_ranking_without_a_portfolio(daily, monkeypatch):
    monkeypatch.delenv("TAPEFLOW_DASK_ADDRESS", raising=False)
    summary = _scan(batch_size=2, symbols=[*SYMBOLS, "NOSUCH"])
    assert summary["symbols"] == sorted(SYMBOLS)  # a symbol without bars is not scanned
    with daily.read() as con:
        metrics, = con.execute("SELECT metrics FROM backtest_runs WHERE run_id = ?", [summary["run_id"]]).fetchone()
        curve = con.execute("SELECT count(*) FROM backtest_equity WHERE run_id = ?", [summary["run_id"]]).fetchone()[0]
    recorded = json.loads(metrics)
    assert recorded["best_params"] == summary["best"] and recorded["ranking"] == summary["ranking"]
    assert "sharpe" not in recorded and curve == 0  # no portfolio was simulated


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_the_scan_on_dask_equals_local_threads(daily, monkeypatch):
    from distributed import Client, LocalCluster, get_task_stream

    monkeypatch.delenv("TAPEFLOW_DASK_ADDRESS", raising=False)
    local = _scan(batch_size=2)
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        monkeypatch.setenv("TAPEFLOW_DASK_ADDRESS", cluster.scheduler_address)
        with get_task_stream(client) as stream:
            on_dask = _scan(batch_size=2)
        workers = set(client.scheduler_info()["workers"])
    assert _table_of(on_dask).equals(_table_of(local))
    assert _same(on_dask) == _same(local)
    ran = [t for t in stream.data if t["key"].startswith("scan_batch")]
    assert len(ran) == 2 and {t["worker"] for t in ran} <= workers  # both batches ran on the cluster's workers


# -- the command ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "line"), [
    (["grid", "sma_cross", "--batch-size", "0"], "--batch-size must be a number of symbols >= 1, got 0: e.g. --batch-size 25"),
    (["grid", "sma_cross", "-p", "fast=40", "-p", "slow=30"], "--param: the strategy refused every combination"),
    (["grid", "sma_cross", "--symbol", "ZZZ"], "the warehouse holds no 1d bars of ZZZ on 2009-08-21..2010-08-20"),
    (["grid", "sma_cross", "--objective", "sharp"], "--objective must be a metric ("),
    (["grid", "nope"], "unknown strategy 'nope'; known: "),
])
def test_the_command_refuses_in_one_line_before_prefect_starts(argv, line, warehouse, tmp_path, monkeypatch):
    store_panel(warehouse, ["AAPL"], date(2010, 6, 1), date(2010, 7, 30))
    prefect_home = tmp_path / "prefect"  # where Prefect would be readied to start
    monkeypatch.setenv("PREFECT_HOME", str(prefect_home))
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and line in result.stderr, result.stderr
    assert not prefect_home.exists()


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_the_command_prints_the_ranking_and_tells_each_batch(warehouse, monkeypatch):
    monkeypatch.delenv("TAPEFLOW_DASK_ADDRESS", raising=False)
    store_panel(warehouse, ["AAPL", "MSFT", "C"], START, END)
    steps: list[Step] = []
    with listening(steps.append):
        result = runner.invoke(app, ["grid", "sma_cross", "-p", "fast=5,10", "-p", "slow=20,30", "--batch-size", "2",
                                     "--costs", "none"])
    assert result.exit_code == 0, result.output
    told = [(s.done, s.total) for s in steps if s.work == "param-grid sma_cross" and not s.finished]
    assert told[0] == (0, 3) and sorted(told[1:]) == [(1, 3), (3, 3)]  # a batch of 1 and a batch of 2 symbols
    lines = result.stdout.splitlines()
    assert "grid: fast 5, 10; slow 20, 30; held qty=100 (4 combinations), ranked by the median sharpe across " \
           "symbols; batches of 2 symbols" in " ".join(lines)
    rows = [line for line in lines if line.startswith("│    ")]
    assert [row.split("│")[1].strip() for row in rows] == ["1", "2", "3", "4"]
    with warehouse.read() as con:
        run_id, kind = con.execute("SELECT run_id, kind FROM backtest_runs").fetchone()
    assert kind == "param_grid" and run_id in " ".join(lines)
    assert Path(lines[-1]).name == "param_grid.csv" and pl.read_csv(lines[-1]).height == 12
