"""What `tapeflow serve` creates in Prefect itself, by name and only if absent, so the UI shows
and edits it: the failure and lateness Automations with their notification block, the
kill-switch Variable, the warehouse writers' concurrency limit and, on request, Secret blocks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import VariableCreate
from prefect.events.actions import Action, DoNothing, SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.types import SecretDict

from flows.secrets import read_secret_blocks, save_secret_blocks
from flows.trade import KILL_VARIABLE
from tapeflow.config import Settings

FAILED_AUTOMATION = "tapeflow: flow run failed"
LATE_AUTOMATION = "tapeflow: flow run late"
NOTIFY_BLOCK = "tapeflow-alert-webhook"
LATE_FOR = timedelta(minutes=10)  # a run Late this long without starting: somebody should look

# Prefect 3.8.8 variables have no description field: tags are what the Variables page shows.
KILL_TAGS = ("tapeflow", "kill-switch", "empty = off", "all = stop every strategy", "or: strategy names, comma-separated")

WRITER_TAG = "duckdb-writer"  # the tag of every task that writes the warehouse
WRITER_SLOTS = 1

_FLOW_RUN = {"prefect.resource.id": "prefect.flow-run.*"}
_SUBJECT = "tapeflow: flow run {{ flow_run.name }} of {{ flow.name }} is {{ flow_run.state.name }}"
_BODY = ("Flow {{ flow.name }}, run {{ flow_run.name }}: {{ flow_run.state.name }}.\n"
         "Deployment: {{ deployment.name }}\n{{ flow_run|ui_url }}")
# Receivers read different bodies (tapeflow.ops.alerts.format_payload); `component` tells the
# automation's posts from the in-flow hook's, which carry `flow:<name>`.
_BODIES = {
    "generic": {"component": "prefect-automation", "severity": "critical", "title": "{{subject}}", "message": "{{body}}"},
    "slack": {"text": "{{subject}}\n{{body}}"},
    "discord": {"content": "{{subject}}\n{{body}}"},
}


@dataclass(frozen=True)
class StackParts:
    """What serve made sure exists in Prefect, for its "ready" summary."""

    automations: tuple[str, ...]
    notifies: str  # where the automations send, in words
    variable: str
    limits: tuple[str, ...]
    secret_blocks: tuple[str, ...]

    def lines(self) -> list[str]:
        """One line per kind of object, as the summary prints them."""
        lines = [f"automations: {', '.join(repr(a) for a in self.automations)} ({self.notifies})",
                 f"variable:    {self.variable}",
                 f"concurrency: {', '.join(self.limits)}"]
        if self.secret_blocks:
            lines.append(f"secret blocks from env/.env: {', '.join(self.secret_blocks)}")
        return lines


def ensure_stack_parts(settings: Settings, api: str, *, secrets_from_env: bool = False) -> StackParts:
    """Create what is missing through one API client; never overwrites what a user edited."""
    with temporary_settings(updates={PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        secret_blocks = tuple(save_secret_blocks(settings)) if secrets_from_env else ()
        action, notifies = _notification(settings)
        automations = tuple(_ensure_automation(client, spec, action) for spec in _automations(action))
        variable = _ensure_kill_variable(client)
        client.create_concurrency_limit(tag=WRITER_TAG, concurrency_limit=WRITER_SLOTS)  # an upsert by tag
    return StackParts(automations, notifies, variable, (f"{WRITER_TAG} (task tag, {WRITER_SLOTS} at a time)",),
                      secret_blocks)


def _notification(settings: Settings) -> tuple[Action, str]:
    """Send through the alert webhook's block when one is configured; else do nothing, which the
    Event Feed still shows as the automation's triggered and action events."""
    webhook = settings.alert_webhook_url.get_secret_value() if settings.alert_webhook_url else None
    webhook = webhook or read_secret_blocks(["alert_webhook_url"]).get("alert_webhook_url")
    if not webhook:
        return DoNothing(), "no alert webhook configured: they only mark the Event Feed"
    # The URL is a secret (Slack's carries its token): it goes in the block's secret values.
    block = CustomWebhookNotificationBlock(
        name="tapeflow alerts", url="{{webhook_url}}", json_data=_BODIES[settings.alert_format],
        secrets=SecretDict({"webhook_url": webhook}),
    )
    block_id = block.save(NOTIFY_BLOCK, overwrite=True)
    return SendNotification(block_document_id=block_id, subject=_SUBJECT, body=_BODY), f"notify through block {NOTIFY_BLOCK}"


def _automations(action: Action) -> list[AutomationCore]:
    failed = EventTrigger(match=_FLOW_RUN, expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
                          for_each={"prefect.resource.id"}, posture=Posture.Reactive, threshold=1, within=timedelta(0))
    # Proactive: fires when a run that went Late has not moved on within LATE_FOR.
    late = EventTrigger(match=_FLOW_RUN, after={"prefect.flow-run.Late"}, expect={"prefect.flow-run.*"},
                        for_each={"prefect.resource.id"}, posture=Posture.Proactive, threshold=1, within=LATE_FOR)
    minutes = int(LATE_FOR.total_seconds() // 60)
    return [
        AutomationCore(name=FAILED_AUTOMATION, description="A flow run failed or crashed (tapeflow serve made this; "
                       "edit freely: serve never overwrites it).", trigger=failed, actions=[action]),
        AutomationCore(name=LATE_AUTOMATION, description=f"A flow run has been Late for {minutes} minutes without "
                       "starting (tapeflow serve made this; edit freely).", trigger=late, actions=[action]),
    ]


def _ensure_automation(client: SyncPrefectClient, spec: AutomationCore, action: Action) -> str:
    existing = client.read_automations_by_name(spec.name)
    if not existing:
        client.create_automation(spec)
        return spec.name
    [current, *_] = existing
    # Made by an earlier serve without a webhook, and a webhook is configured now: start sending.
    if not isinstance(action, DoNothing) and all(isinstance(a, DoNothing) for a in current.actions):
        client.update_automation(current.id, spec)
    return spec.name


def _ensure_kill_variable(client: SyncPrefectClient) -> str:
    """Create the kill-switch variable, off, unless it exists: a user's value stands."""
    current = client.read_variable_by_name(KILL_VARIABLE)
    if current is None:
        client.create_variable(VariableCreate(name=KILL_VARIABLE, value="", tags=list(KILL_TAGS)))
        return f"{KILL_VARIABLE} (created, off)"
    state = f"set to {current.value!r}" if current.value else "off"
    return f"{KILL_VARIABLE} ({state})"
