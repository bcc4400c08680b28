"""The task runner research flows fan out on: a Dask cluster when TAPEFLOW_DASK_ADDRESS is
set, else two local threads. Chosen per flow run, so the CLI, deployments and tests agree."""

from __future__ import annotations

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from tapeflow.config import load_settings

LOCAL_THREADS = 2


def research_task_runner() -> TaskRunner:
    """DaskTaskRunner on the configured scheduler, or the local thread pool when none is set."""
    address = load_settings().dask_address
    if not address:
        return ThreadPoolTaskRunner(max_workers=LOCAL_THREADS)
    from prefect_dask import DaskTaskRunner  # deferred: a dev dependency, needed only with a cluster

    return DaskTaskRunner(address=address)


class ResearchTaskRunner(ThreadPoolTaskRunner):
    """A flow's runner that picks its real one when each run starts: Prefect enters
    `flow.task_runner.duplicate()` per run, so the setting is read then, not at import."""

    def __init__(self) -> None:
        super().__init__(max_workers=LOCAL_THREADS)

    def duplicate(self) -> TaskRunner:  # type: ignore[override]
        return research_task_runner()
