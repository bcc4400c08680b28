"""State hooks shared by flows: failures and crashes raise an alert, recorded and deduplicated,
as loud as their cause (`tapeflow.ops.failures`) and where the run came from make them."""

from __future__ import annotations

import json
import logging

from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ParameterBindError, ParameterTypeError, SignatureMismatchError, TerminationSignal
from prefect.states import State

from flows.secrets import vendor_settings
from tapeflow.ops.alert_book import book_from_settings
from tapeflow.ops.alerts import Alert
from tapeflow.ops.failures import FLOW_FAILED, RunFailure, cause_of, origin_of
from tapeflow.redact import redact_text
from warehouse import Warehouse

log = logging.getLogger("tapeflow.alerts")

# A hook waits at most this long for the warehouse: the alert matters more than its record.
HOOK_LOCK_TIMEOUT_S = 5.0
# Prefect's own ways of saying the parameters were wrong, and that a signal stopped the run.
PREFECT_REFUSALS = (ParameterTypeError, ParameterBindError, SignatureMismatchError)
PREFECT_INTERRUPTS = (TerminationSignal,)


def alert_on_failure(flow: Flow, flow_run: FlowRun, state: State) -> None:
    """Raise a `flow_failed` alert for a failed or crashed flow run, keyed by deployment (or
    flow), cause and error; never raises."""
    try:
        settings = vendor_settings()  # the webhook URL may live in a Secret block
        secrets = settings.secret_values()
        failure = run_failure(flow, flow_run, state)
        alert = Alert(
            component=f"flow:{flow.name}",
            severity=failure.severity,
            title=failure.title,
            # Messages and parameters come from vendors and users: scrub any configured secret.
            message=redact_text(state.message or "", secrets),
            context={
                "flow_run": flow_run.name,
                "flow_run_id": str(flow_run.id),
                "deployment": failure.deployment,
                "origin": failure.origin.value,
                "cause": failure.cause.value,
                "error": failure.error,
                "parameters": json.loads(redact_text(json.dumps(dict(flow_run.parameters or {}), default=str), secrets)),
            },
        )
        warehouse = Warehouse(settings.warehouse_path, lock_timeout_s=min(settings.lock_timeout_s, HOOK_LOCK_TIMEOUT_S))
        book_from_settings(settings, warehouse).raise_alert(alert, failure.key, kind=FLOW_FAILED)
    except Exception as exc:
        log.error("could not deliver alert for flow run %s: %s", getattr(flow_run, "name", "?"), type(exc).__name__)


def run_failure(flow: Flow, flow_run: FlowRun, state: State) -> RunFailure:
    """What failed, where the run came from, and why, read from Prefect's run and state."""
    raised = _raised(state)
    deployment = _deployment_name(flow, flow_run)
    crashed = state.is_crashed()
    return RunFailure(
        flow=flow.name,
        deployment=deployment,
        origin=origin_of(deployment, flow_run.auto_scheduled),
        cause=cause_of(raised, crashed=crashed, refusals=PREFECT_REFUSALS, interrupts=PREFECT_INTERRUPTS),
        error=type(raised).__name__ if raised is not None else state.type.value.lower(),
        crashed=crashed,
    )


def _raised(state: State) -> BaseException | None:
    # A crash keeps what stopped it (KeyboardInterrupt, a signal) as the state's data; a failure
    # keeps its exception as the result.
    if isinstance(state.data, BaseException):
        return state.data
    try:
        value = state.result(raise_on_failure=False)
    except Exception:
        return None
    return value if isinstance(value, BaseException) else None


def _deployment_name(flow: Flow, flow_run: FlowRun) -> str | None:
    deployment_id = flow_run.deployment_id
    if deployment_id is None:
        return None
    try:
        with get_client(sync_client=True) as client:
            return f"{flow.name}/{client.read_deployment(deployment_id).name}"
    except Exception as exc:  # the API is out of reach: the id still keeps deployments apart
        log.warning("could not read the name of deployment %s: %s", deployment_id, type(exc).__name__)
        return str(deployment_id)
