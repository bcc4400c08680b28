"""State hooks shared by flows: failures and crashes raise an alert."""

from __future__ import annotations

import json
import logging

from tapeflow.config import load_settings
from tapeflow.redact import redact_text
from tapeflow.risk.alerts import Alert, AlertDeliveryError, channel_from_settings

log = logging.getLogger("tapeflow.alerts")


def alert_on_failure(flow, flow_run, state) -> None:
    """Send a critical alert for a failed or crashed flow run; never raises."""
    settings = load_settings()
    secrets = settings.secret_values()
    alert = Alert(
        component=f"flow:{flow.name}",
        severity="critical",
        title=f"{flow.name} {state.type.value.lower()}",
        # Messages and parameters come from vendors and users: scrub any configured secret.
        message=redact_text(state.message or "", secrets),
        context={
            "flow_run": flow_run.name,
            "flow_run_id": str(flow_run.id),
            "parameters": json.loads(redact_text(json.dumps(dict(flow_run.parameters or {}), default=str), secrets)),
        },
    )
    try:
        channel_from_settings(settings).send(alert)
    except (AlertDeliveryError, ValueError) as exc:
        # An alert that cannot be delivered must not mask the failure it reports.
        log.error("could not deliver alert for %s: %s", flow_run.name, exc)
