"""The multi-machine layout on one box: Prefect on PostgreSQL, a worker in each pool (warehouse
and compute), a Dask cluster of two worker processes over TCP. An ingest runs in the warehouse
pool; a walk-forward runs in the compute pool, fans its folds out on Dask and hands its results
back; they land in the warehouse once. Then three flows at once: the server logs no
`database is locked`, and every run completes."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from distributed import Client, LocalCluster, get_task_stream
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

from tests.cli.test_serve import PROJECT_DIR, TAPEFLOW, Output, kill_group, stack_env, wait_for
from tests.cli.test_serve_parts import Stack, running_stack
from tests.flows.test_deployments import cut_bundled_data
from tests.postgres_kit import local_postgres
from warehouse.connection import Warehouse

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

RUN_TIMEOUT_S = 300
LOCKED = "database is locked"


@pytest.fixture(scope="module")
def postgres():
    with local_postgres() as url:
        yield url


@pytest.fixture(scope="module")
def dask():
    """Two single-threaded worker processes on loopback TCP, and a client to watch them."""
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield cluster.scheduler_address, client


@pytest.fixture(scope="module")
def stack(tmp_path_factory, postgres, dask):
    tmp = tmp_path_factory.mktemp("multi")
    env = {**stack_env(tmp), "TAPEFLOW_DATA_DIR": str(cut_bundled_data(tmp)), "TAPEFLOW_DASK_ADDRESS": dask[0],
           "PREFECT_API_DATABASE_CONNECTION_URL": postgres, "TAPEFLOW_LOCK_TIMEOUT_S": "60"}
    with running_stack(tmp, env, "--database", "postgres") as up:
        yield up


def start(client, name: str, parameters: dict | None = None):
    return client.create_flow_run_from_deployment(client.read_deployment_by_name(name).id, parameters=parameters or {})


def finish(stack: Stack, client, runs: list) -> list:
    """Wait for every run to end; fail with the stack's logs unless all completed."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        now = [client.read_flow_run(run.id) for run in runs]
        if all(run.state.is_final() for run in now) or time.monotonic() > deadline:
            break
        time.sleep(1)
    failed = [f"{run.name}: {run.state.name} {run.state.message}" for run in now if not run.state.is_completed()]
    if failed:
        pytest.fail(stack.diagnostics(f"runs not completed: {failed}"))
    return now


def test_the_server_keeps_its_state_in_postgresql(stack):
    assert "state in PostgreSQL 127.0.0.1:" in stack.output.text
    assert not (Path(stack.env["PREFECT_HOME"]) / "prefect.db").exists()


def test_an_ingest_in_the_warehouse_pool_and_a_walk_forward_on_dask_land_once(stack, dask):
    _, watch = dask
    with stack.client() as client:
        finish(stack, client, [start(client, "ingest-bars/bundled-daily-bars"),
                               start(client, "ingest-universe/bundled-universes")])
        with get_task_stream(watch) as stream:
            [walk] = finish(stack, client, [start(client, "walk-forward/walk-forward-sma-cross")])
        assert client.read_work_pool("compute").name == "compute"
        deployment = client.read_deployment(walk.deployment_id)
        children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[walk.id])))
        recorded = [run for run in children if run.deployment_id is not None]
        recorders = [client.read_deployment(run.deployment_id) for run in recorded]
    assert deployment.work_pool_name == "compute"
    # One hand-back, recorded by the warehouse pool's deployment, which the walk-forward waited for.
    assert [run.state.name for run in recorded] == ["Completed"]
    assert [(d.name, d.work_pool_name) for d in recorders] == [("record-handed-back-results", "warehouse")]
    folds = [task for task in stream.data if task["key"].startswith("fit_fold")]
    assert folds and {task["worker"] for task in folds} <= set(watch.scheduler_info()["workers"])

    warehouse = Warehouse(Path(stack.env["TAPEFLOW_HOME"]) / "tapeflow.duckdb")
    with warehouse.read() as con:
        kinds = dict(con.execute("SELECT kind, count(*) FROM backtest_runs WHERE run_id = ? OR parent_run_id = ? "
                                 "GROUP BY kind", [str(walk.id), str(walk.id)]).fetchall())
        equity = con.execute("SELECT count(*) FROM backtest_equity WHERE run_id = ?", [str(walk.id)]).fetchone()
    assert kinds["walk_forward"] == 1 and kinds["walk_forward_fold"] == len(folds)
    assert equity is not None and equity[0] > 0
    assert not any((Path(stack.env["TAPEFLOW_HOME"]) / "handoff").glob("*/manifest.json"))  # nothing left waiting


def test_a_second_compute_worker_joins_and_three_flows_at_once_log_no_locked_database(stack):
    # `tapeflow worker compute`, as a compute machine runs it, beside the stack's own workers.
    env = {**stack.env, "PREFECT_API_URL": stack.api}
    extra = subprocess.Popen([str(TAPEFLOW), "worker", "compute", "--name", "extra-compute"], env=env, cwd=PROJECT_DIR,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output = Output(extra)
    try:
        with stack.client() as client:
            joined = wait_for(lambda: "extra-compute" in {w.name for w in client.read_workers_for_work_pool("compute")},
                              60, 0.5)
            assert joined, stack.diagnostics(f"tapeflow worker compute did not join:\n{output.text[-2000:]}")
            finish(stack, client, [
                start(client, "ingest-bars/bundled-spy-minute-bars", {"start": "2011-03-01", "end": "2011-03-04"}),
                start(client, "backtest/backtest-sma-cross"),
                start(client, "perturb/perturb-sma-cross"),
            ])
    finally:
        kill_group(extra, set())
    logs = [stack.home / "logs" / name for name in ("server.log", "worker-warehouse.log", "worker-compute.log")]
    assert not [log.name for log in logs if LOCKED in log.read_text(errors="replace")]
    assert LOCKED not in output.text
