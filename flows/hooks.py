"""State hooks shared by flows: failures and crashes raise an alert, recorded and deduplicated."""

from __future__ import annotations

import json
import logging

from tapeflow.config import load_settings
from tapeflow.ops.alert_book import book_from_settings
from tapeflow.ops.alerts import Alert
from tapeflow.redact import redact_text
from warehouse import Warehouse

log = logging.getLogger("tapeflow.alerts")

# A hook waits at most this long for the warehouse: the alert matters more than its record.
HOOK_LOCK_TIMEOUT_S = 5.0


def alert_on_failure(flow, flow_run, state) -> None:
    """Raise a critical `flow_failed` alert for a failed or crashed flow run; never raises."""
    try:
        settings = load_settings()
        secrets = settings.secret_values()
        outcome = state.type.value.lower()
        alert = Alert(
            component=f"flow:{flow.name}",
            severity="critical",
            title=f"{flow.name} {outcome}",
            # Messages and parameters come from vendors and users: scrub any configured secret.
            message=redact_text(state.message or "", secrets),
            context={
                "flow_run": flow_run.name,
                "flow_run_id": str(flow_run.id),
                "parameters": json.loads(redact_text(json.dumps(dict(flow_run.parameters or {}), default=str), secrets)),
            },
        )
        warehouse = Warehouse(settings.warehouse_path, lock_timeout_s=min(settings.lock_timeout_s, HOOK_LOCK_TIMEOUT_S))
        # One key per flow and outcome: a flow failing every few minutes alerts once per window.
        book_from_settings(settings, warehouse).raise_alert(alert, f"flow_failed:{flow.name}:{outcome}",
                                                            kind="flow_failed")
    except Exception as exc:
        log.error("could not deliver alert for flow run %s: %s", getattr(flow_run, "name", "?"), type(exc).__name__)
