"""A failed flow run's logs hold its traceback once: where the task failed. The flow's own
"Encountered exception" line still names the error."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from prefect import flow, task

from flows.run_logs import OneTracePerError


@task
def fetch() -> None:
    raise ValueError("bad window")


@flow
def ingest() -> None:
    fetch()


async def run_logs(flow_run_id) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    async with get_client() as client:
        return await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_a_failed_run_logs_its_traceback_once():
    state = ingest(return_state=True)
    assert state.is_failed()
    deadline = time.monotonic() + 30
    while True:  # the API receives logs in batches
        logs = asyncio.run(run_logs(state.state_details.flow_run_id))
        if any("Encountered exception" in log.message for log in logs) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    traces = [log for log in logs if "Traceback (most recent call last)" in log.message]
    assert len(traces) == 1 and "Task run failed with exception: ValueError('bad window')" in traces[0].message
    [flow_line] = [log.message for log in logs if "Encountered exception during execution" in log.message]
    assert flow_line == "Encountered exception during execution: ValueError('bad window')"


def test_the_filter_keeps_the_first_trace_of_an_error_and_strips_the_next(caplog):
    logger = logging.getLogger("tests.one-trace")
    logger.addFilter(OneTracePerError())
    first, other = ValueError("first"), KeyError("other")
    with caplog.at_level(logging.ERROR, logger="tests.one-trace"):
        for error in (first, first, other):
            try:
                raise error
            except Exception:
                logger.exception("failed: %r", error)
    assert [r.exc_info is not None for r in caplog.records] == [True, False, True]
    assert "failed: ValueError('first')" in caplog.records[1].getMessage()
