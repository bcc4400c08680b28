"""Walk-forward and perturbation on a real Dask cluster (two worker processes over TCP) give the
local-threads results to the cent, and their fold and sweep tasks really run on the workers."""

from __future__ import annotations

from datetime import date

import pytest
from distributed import Client, LocalCluster, get_task_stream

from flows.ingest import ingest_bars
from flows.research import SWEEP_BATCHES, perturbation, walk_forward
from tapeflow.research.perturb import sweep_points
from tapeflow.strategy.registry import get_strategy

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]
SYMBOLS = ["AAPL", "MSFT", "C", "F"]
START, END = date(2009, 8, 21), date(2010, 8, 20)


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes on loopback TCP, and a client to watch them."""
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as local, Client(local) as client:
        yield local.scheduler_address, client


@pytest.fixture
def daily(warehouse):
    ingest_bars(source="replay", symbols=SYMBOLS, timeframe="1d", start=START, end=END)
    return warehouse


def _equity(warehouse, run_id: str) -> list[tuple]:
    with warehouse.read() as con:
        return con.execute("SELECT ts, round(equity, 2) FROM backtest_equity WHERE run_id = ? ORDER BY ts",
                           [run_id]).fetchall()


def _same(summary: dict) -> dict:
    """A summary without what differs between any two runs (its id and report path)."""
    return {k: v for k, v in summary.items() if k not in ("run_id", "report")}


def test_walk_forward_on_dask_equals_local_threads(daily, cluster, monkeypatch):
    address, client = cluster
    args = dict(strategy="sma_cross", grid={"fast": [5, 10], "slow": [20, 30], "qty": [0]}, symbols=SYMBOLS,
                start=START, end=END, train_sessions=100, test_sessions=40, costs="flat-commission")
    monkeypatch.delenv("TAPEFLOW_DASK_ADDRESS", raising=False)
    local = walk_forward(**args)

    monkeypatch.setenv("TAPEFLOW_DASK_ADDRESS", address)
    with get_task_stream(client) as stream:
        on_dask = walk_forward(**args)

    assert local["folds"] == on_dask["folds"] == 3
    assert [f["params"] for f in on_dask["per_fold"]] == [f["params"] for f in local["per_fold"]]
    assert _same(on_dask) == _same(local)  # per-fold and out-of-sample metrics, exactly
    assert _equity(daily, on_dask["run_id"]) == _equity(daily, local["run_id"])  # the stitched curve, to the cent
    ran = [t for t in stream.data if t["key"].startswith("fit_fold")]
    assert len(ran) == 3  # every fold ran on the cluster, none in this process
    assert {t["worker"] for t in ran} <= set(client.scheduler_info()["workers"])


def test_perturbation_on_dask_equals_local_threads(daily, cluster, monkeypatch):
    address, client = cluster
    args = dict(strategy="sma_cross", params={"fast": 10, "slow": 30, "qty": 0}, symbols=SYMBOLS,
                start=START, end=END, costs="flat-commission", grid_steps=1)
    monkeypatch.delenv("TAPEFLOW_DASK_ADDRESS", raising=False)
    local = perturbation(**args)

    monkeypatch.setenv("TAPEFLOW_DASK_ADDRESS", address)
    with get_task_stream(client) as stream:
        on_dask = perturbation(**args)

    assert _same(on_dask) == _same(local)
    ran = [t for t in stream.data if t["key"].startswith("sweep_batch")]
    points = sweep_points(get_strategy("sma_cross"), args["params"], 0.20, grid_steps=1)
    assert len(points) == 9 and len(ran) == SWEEP_BATCHES  # the 9 distinct runs went out in 8 batches
    assert {t["worker"] for t in ran} <= set(client.scheduler_info()["workers"])
