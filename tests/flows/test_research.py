"""Walk-forward and perturbation flows on warehouse data: folds fan out as tasks, the stitched
out-of-sample run and every fold are recorded; a Dask local cluster runs the same flow."""

from __future__ import annotations

from datetime import date

import pytest

from flows.ingest import ingest_bars
from flows.research import perturbation, walk_forward

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]
SYMBOLS = ["AAPL", "MSFT", "C", "F", "XRX", "INTC", "GE", "T"]


@pytest.fixture
def daily(warehouse):
    ingest_bars(source="replay", symbols=SYMBOLS, timeframe="1d", start=date(2009, 8, 21), end=date(2010, 8, 20))
    return warehouse


def test_walk_forward_records_folds_and_the_stitched_run(daily):
    grid = {"fast": [5, 10], "slow": [20, 30]}
    summary = walk_forward(strategy="sma_cross", grid=grid, symbols=SYMBOLS, train_sessions=100, test_sessions=40, costs="flat-commission")
    assert summary["folds"] == 3  # 245 sessions: 100 train + 3 x 40 test, 25 left untested
    with daily.read() as con:
        runs = con.execute(
            "SELECT kind, fold, parent_run_id IS NULL, params, window_start < window_end FROM backtest_runs ORDER BY kind, fold"
        ).fetchall()
        oos_points = con.execute("SELECT count(*) FROM backtest_equity WHERE run_id = ?", [summary["run_id"]]).fetchone()
    assert [r[0] for r in runs] == ["walk_forward", "walk_forward_fold", "walk_forward_fold", "walk_forward_fold"]
    assert [r[1] for r in runs[1:]] == [0, 1, 2]
    assert all(not r[2] for r in runs[1:]) and all(r[4] for r in runs)
    assert all(('"fast"' in r[3]) for r in runs[1:])  # each fold chose from the grid
    assert oos_points[0] == 120  # three test windows of 40 sessions, nothing in-sample


def test_perturbation_gives_a_verdict_and_records_it(daily):
    summary = perturbation(strategy="sma_cross", params={"fast": 10, "slow": 30}, symbols=SYMBOLS, costs="flat-commission")
    assert summary["verdict"] in {"plateau", "spike", "no edge", "untested"}
    assert summary["runs"] >= 5  # the point, 4 neighbours and a grid
    with daily.read() as con:
        kind, verdict = con.execute("SELECT kind, metrics->>'verdict' FROM backtest_runs WHERE run_id = ?", [summary["run_id"]]).fetchone()
    assert (kind, verdict) == ("perturbation", summary["verdict"])


def test_walk_forward_on_a_local_dask_cluster(daily):
    from prefect_dask import DaskTaskRunner

    on_dask = walk_forward.with_options(task_runner=DaskTaskRunner(cluster_kwargs={"n_workers": 2, "processes": False}))
    summary = on_dask(strategy="sma_cross", grid={"fast": [5, 10], "slow": [30]}, symbols=SYMBOLS,
                      train_sessions=100, test_sessions=60, costs="none")
    assert summary["folds"] == 2
