"""One traceback per failure in a flow run's logs: Prefect logs a task's exception where the
task fails and again where the flow ends with it; the second time it is one line."""

from __future__ import annotations

import logging

_TRACED = "_tapeflow_traced"
PREFECT_RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")


class OneTracePerError(logging.Filter):
    """Lets the first record of an exception carry its traceback and strips it from later ones."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is None:
            return True
        if getattr(error, _TRACED, False):
            record.exc_info, record.exc_text = None, None  # the message still names the error
        else:
            try:
                setattr(error, _TRACED, True)
            except AttributeError:  # an exception type with __slots__: keep both traces
                pass
        return True


def one_trace_per_error() -> None:
    """Install the filter on Prefect's run loggers, once per process."""
    for name in PREFECT_RUN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, OneTracePerError) for f in logger.filters):
            logger.addFilter(OneTracePerError())
