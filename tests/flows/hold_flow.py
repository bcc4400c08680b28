"""A flow that holds until its process is killed: `python -m tests.flows.hold_flow` with
PREFECT_API_URL set runs it tagged with its process, as a tapeflow command runs its flows
(`--untagged`: as a worker or an older tapeflow did), and prints the flow run's id once it is
Running."""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext

from prefect import flow, task
from prefect.runtime import flow_run

from flows.run_owner import owned_runs


@task
def wait(seconds: float) -> None:
    time.sleep(seconds)


@flow(name="hold")
def hold(seconds: float = 600.0) -> None:
    print(flow_run.get_id(), flush=True)
    wait(seconds)


if __name__ == "__main__":
    with nullcontext() if "--untagged" in sys.argv else owned_runs():
        hold()
