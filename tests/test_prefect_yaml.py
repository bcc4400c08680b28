"""prefect.yaml: every deployment points at a real flow, with parameters that flow accepts,
schedules in New York time, and no path of any one machine."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml
from prefect import Flow

PROJECT = Path(__file__).resolve().parent.parent
CONFIG = yaml.safe_load((PROJECT / "prefect.yaml").read_text())
DEPLOYMENTS = CONFIG["deployments"]


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=[d["name"] for d in DEPLOYMENTS])
def test_deployment_runs_a_flow_with_valid_parameters(deployment):
    path, function = deployment["entrypoint"].split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    flow = getattr(module, function)
    assert isinstance(flow, Flow)
    flow.validate_parameters(deployment.get("parameters") or {})
    for schedule in deployment.get("schedules", []):
        assert schedule["timezone"] == "America/New_York"
    assert deployment["work_pool"]["name"] == "local-process"


def test_no_machine_paths():
    [step] = CONFIG["pull"]
    assert step["prefect.deployments.steps.set_working_directory"]["directory"] == "{{ $TAPEFLOW_PROJECT_DIR }}"
    assert "/work/" not in (PROJECT / "prefect.yaml").read_text() and "/home/" not in (PROJECT / "prefect.yaml").read_text()


def test_bad_parameters_are_caught():
    from flows.ingest import ingest_bars

    with pytest.raises(Exception, match="timeframe"):
        ingest_bars.validate_parameters({"timeframe": "5m"})


def test_trading_sessions_never_run_twice_at_once_and_start_paused():
    sessions = [d for d in DEPLOYMENTS if d["entrypoint"] == "flows/trade.py:trade_session" and d.get("schedules")]
    assert {d["parameters"]["strategy"] for d in sessions} >= {"opening_range", "watchlist_momentum"}
    for deployment in sessions:
        assert deployment["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
        assert [s["active"] for s in deployment["schedules"]] == [False]  # until the strategy is promoted
