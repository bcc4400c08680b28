"""When a task's failure is worth another attempt."""

from __future__ import annotations

from tapeflow.sources.http import is_transient


def transient_only(task, task_run, state) -> bool:
    """Prefect retry condition: retry vendor hiccups, not bad credentials or bad input."""
    return is_transient(state.result(raise_on_failure=False))
