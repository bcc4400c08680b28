"""From a compute machine to the warehouse pool: start the deployment that records what was
handed back, and wait for it, so a compute run completes only once its results are kept."""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

from tapeflow.model import Role

WAIT_S = 900
"""How long a compute run waits for the warehouse pool to record its results."""


def run_in_warehouse_pool(deployment: str, parameters: dict[str, Any], what: str) -> FlowRun:
    """Run `deployment` (a warehouse-pool one) and wait; raise, naming `what`, unless it completed."""
    done = run_deployment(deployment, parameters=parameters, timeout=WAIT_S)
    if done.state is None or not done.state.is_completed():
        state = done.state.name if done.state else "not started"
        raise RuntimeError(f"the warehouse pool did not take {what} (flow run {done.name}: {state}); "
                           f"is a worker of pool {Role.WAREHOUSE.value} running?")
    return done
