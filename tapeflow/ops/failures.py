"""Why a flow run failed, and how loudly to say so: the one place that maps what a run raised
and where it came from to a cause, a severity and a dedup key."""

from __future__ import annotations

import sysconfig
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType

from pydantic import ValidationError

from tapeflow.brokers.live_gate import LiveNotConfirmed
from tapeflow.news.model_registry import NoSentimentModel
from tapeflow.ops.alerts import Severity
from tapeflow.sources.universe import UnknownUniverse

FLOW_FAILED = "flow_failed"
"""The alert kind of every failed or crashed flow run."""


class FailureCause(StrEnum):
    """Whose move it is after a run failed."""

    BAD_INPUT = "bad input"  # a parameter or input the code refused: the user's to fix
    INTERRUPTED = "interrupted"  # stopped on purpose: Ctrl-C or SIGTERM
    CRASHED = "crashed"  # the process or the engine died under the run
    ERROR = "error"  # anything else raised: the pipeline's (or a vendor's) to fix


class RunOrigin(StrEnum):
    """Who started the run."""

    AD_HOC = "ad hoc"  # a direct call: the `tapeflow` command, Python
    DEPLOYMENT = "deployment"  # a deployment run someone started: the UI, `prefect deployment run`
    SCHEDULED = "scheduled"  # a deployment run its schedule created: nobody is watching it


# Refusals whose type says the input was the user's, wherever they are raised.
USER_REFUSALS: tuple[type[BaseException], ...] = (ValidationError, LiveNotConfirmed, UnknownUniverse, NoSentimentModel)
# A ValueError is a refusal only when our code (tapeflow, flows, a user's strategy) raised it:
# one raised inside a library (json, polars) means data or code went wrong, not the user.
_OWN_PACKAGES = frozenset({"tapeflow", "flows", "tasks", "warehouse", "strategies"})
_LIBRARY_DIRS = tuple(sorted({sysconfig.get_paths()[name] for name in ("stdlib", "platstdlib", "purelib", "platlib")}))

# A bad input that only its author saw is a note; one a schedule hits again every time is not.
_SEVERITY: dict[tuple[FailureCause, RunOrigin], Severity] = {
    (FailureCause.BAD_INPUT, RunOrigin.AD_HOC): Severity.INFO,
    (FailureCause.BAD_INPUT, RunOrigin.DEPLOYMENT): Severity.WARNING,
    (FailureCause.INTERRUPTED, RunOrigin.AD_HOC): Severity.INFO,
}


def cause_of(raised: BaseException | None, *, crashed: bool, refusals: tuple[type[BaseException], ...] = (),
             interrupts: tuple[type[BaseException], ...] = ()) -> FailureCause:
    """The cause of a run that raised `raised` (None when nothing was kept); `refusals` and
    `interrupts` add the orchestrator's own exception types (its parameter checks, its signals)."""
    if isinstance(raised, (KeyboardInterrupt, *interrupts)):
        return FailureCause.INTERRUPTED
    if crashed:
        return FailureCause.CRASHED
    if isinstance(raised, (*USER_REFUSALS, *refusals)):
        return FailureCause.BAD_INPUT
    if isinstance(raised, ValueError) and not _raised_in_a_library(raised.__traceback__):
        return FailureCause.BAD_INPUT
    return FailureCause.ERROR


def origin_of(deployment: str | None, auto_scheduled: bool) -> RunOrigin:
    """Where a run came from: no deployment is a direct call; a schedule's run is marked as such."""
    if deployment is None:
        return RunOrigin.AD_HOC
    return RunOrigin.SCHEDULED if auto_scheduled else RunOrigin.DEPLOYMENT


def severity_for(cause: FailureCause, origin: RunOrigin) -> Severity:
    """Critical unless the user's own input (or Ctrl-C) stopped a run they were watching."""
    return _SEVERITY.get((cause, origin), Severity.CRITICAL)


@dataclass(frozen=True)
class RunFailure:
    """A failed or crashed flow run as its alert describes it."""

    flow: str
    deployment: str | None  # `flow/deployment`, None for a direct call
    origin: RunOrigin
    cause: FailureCause
    error: str  # the exception's type name, or the run's state when nothing was raised
    crashed: bool = False  # the run crashed rather than failed

    @property
    def target(self) -> str:
        """What failed: the deployment, or the flow when called directly."""
        return self.deployment or self.flow

    @property
    def severity(self) -> Severity:
        return severity_for(self.cause, self.origin)

    @property
    def key(self) -> str:
        """One window per deployment (or flow), cause and error: a different failure still alerts."""
        return f"{FLOW_FAILED}:{self.target}:{self.cause.name.lower()}:{self.error}"

    @property
    def title(self) -> str:
        return f"{self.target} {'crashed' if self.crashed else 'failed'}: {self.cause} ({self.origin} run, {self.error})"


def _raised_in_a_library(tb: TracebackType | None) -> bool:
    if tb is None:  # nothing says where: trust the type
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    frame = tb.tb_frame
    if str(frame.f_globals.get("__name__", "")).split(".")[0] in _OWN_PACKAGES:
        return False  # ours, even when installed into site-packages
    return frame.f_code.co_filename.startswith(_LIBRARY_DIRS)


__all__ = ["FLOW_FAILED", "USER_REFUSALS", "FailureCause", "RunFailure", "RunOrigin", "cause_of", "origin_of",
           "severity_for"]
