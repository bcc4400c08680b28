"""Runs whose process died, marked Crashed in Prefect with the reason, instead of Running forever.

`sweep_dead_runs` runs when a tapeflow command starts flows and when `tapeflow serve` starts;
`crash_own_runs` closes this process's own runs when a signal stops it. A run tagged by
`owned_runs` on this host is judged by its pid, which proves it. Any other run (another host,
a worker's, one from before runs were tagged) is judged the way Prefect's zombie automation
judges it: Running, with no heartbeat for `stale_after()`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from prefect import get_client
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
    TaskRunFilter,
    TaskRunFilterState,
    TaskRunFilterStateType,
    TaskRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter
from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings
from prefect.states import Crashed

from flows.run_owner import owner_of, owner_tag
from tapeflow.live.owner import Owner

ACTIVE = [StateType.RUNNING, StateType.PENDING]
HEARTBEAT = "prefect.flow-run.heartbeat"
# Prefect's zombie automation waits three heartbeat intervals; a floor keeps a run on another
# host that beats more slowly than this process's setting from being taken for dead.
MIN_STALE = timedelta(minutes=15)
PAGE = 200

T = TypeVar("T")


@dataclass(frozen=True)
class CrashedRun:
    """A run this module marked Crashed, and why."""

    flow: str
    name: str
    why: str

    def __str__(self) -> str:
        return f"{self.flow}/{self.name}"


def stale_after() -> timedelta:
    """How long a Running run of an unknown process may go without a heartbeat before it is dead."""
    interval = get_current_settings().flows.heartbeat_frequency or 0
    return max(MIN_STALE, timedelta(seconds=3 * interval))


def death_of(run_tags: Iterable[str], last_heartbeat: datetime | None, *, here: Owner, now: datetime,
             stale: timedelta) -> str | None:
    """Why a Running or Pending run cannot be running any more, or None while it may be."""
    owner = owner_of(run_tags)
    if owner is not None and owner.host == here.host:
        # This host can check: never judge it by heartbeats, which a busy live run may be late with.
        if owner.pid != here.pid and owner.gone():
            return f"its process (pid {owner.pid} on {owner.host}) is gone"
        return None
    if last_heartbeat is not None and now - last_heartbeat > stale:
        return (f"no heartbeat since {last_heartbeat.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC "
                f"(over {stale.total_seconds() / 60:.0f} min)")
    return None


def sweep_dead_runs(api_url: str | None = None, now: datetime | None = None) -> list[CrashedRun]:
    """Mark every Running or Pending flow run whose process is gone Crashed (on the API at
    `api_url`, default the configured one); returns them."""
    here, stale, now = Owner.here(), stale_after(), now or datetime.now(UTC)
    crashed: list[CrashedRun] = []
    api = temporary_settings({PREFECT_API_URL: api_url}) if api_url else nullcontext()
    with api, get_client(sync_client=True) as client:
        flows: dict[object, str] = {}
        for run in _active_flow_runs(client):  # listed first: marking runs shifts the pages
            owner = owner_of(run.tags)
            checks_pid = owner is not None and owner.host == here.host
            last = None if checks_pid else _last_heartbeat(client, run)
            why = death_of(run.tags, last, here=here, now=now, stale=stale)
            if why is None:
                continue
            _crash(client, run, f"{why}: marked crashed by tapeflow (pid {here.pid} on {here.host})")
            if run.flow_id not in flows:
                flows[run.flow_id] = client.read_flow(run.flow_id).name
            crashed.append(CrashedRun(flows[run.flow_id], run.name, why))
    return crashed


def crash_own_runs(owner: Owner, why: str) -> int:
    """Mark the flow and task runs `owner` tagged that are still Running or Pending Crashed; returns how many."""
    message = f"{why} (pid {owner.pid} on {owner.host})"
    with get_client(sync_client=True) as client:
        runs = _active_flow_runs(client, FlowRunFilterTags(all_=[owner_tag(owner)]))
        for run in runs:
            _crash(client, run, message)
        # Task runs still working in a task runner's threads when the flow run itself was closed.
        tasks = _pages(lambda limit, offset: client.read_task_runs(
            task_run_filter=TaskRunFilter(state=_task_active(), tags=TaskRunFilterTags(all_=[owner_tag(owner)])),
            limit=limit, offset=offset))
        for task_run in tasks:
            client.set_task_run_state(task_run.id, Crashed(message=message), force=True)
    return len(runs) + len(tasks)


def _crash(client: SyncPrefectClient, run: FlowRun, message: str) -> None:
    """The flow run and its unfinished task runs to Crashed (forced: no engine is left to agree)."""
    client.set_flow_run_state(run.id, Crashed(message=message), force=True)
    tasks = _pages(lambda limit, offset: client.read_task_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])),
        task_run_filter=TaskRunFilter(state=_task_active()), limit=limit, offset=offset))
    for task_run in tasks:
        client.set_task_run_state(task_run.id, Crashed(message=message), force=True)


def _active_flow_runs(client: SyncPrefectClient, tagged: FlowRunFilterTags | None = None) -> list[FlowRun]:
    running = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=ACTIVE)), tags=tagged)
    return _pages(lambda limit, offset: client.read_flow_runs(flow_run_filter=running, limit=limit, offset=offset))


def _task_active() -> TaskRunFilterState:
    return TaskRunFilterState(type=TaskRunFilterStateType(any_=ACTIVE))


def _last_heartbeat(client: SyncPrefectClient, run: FlowRun) -> datetime | None:
    """When the run last sent a heartbeat event; None if it never did (or is not Running)."""
    if run.state_type is not StateType.RUNNING or run.start_time is None:
        return None
    page = client.read_events(EventFilter(
        event=EventNameFilter(name=[HEARTBEAT]),
        resource=EventResourceFilter(id=[f"prefect.flow-run.{run.id}"]),
        occurred=EventOccurredFilter(since=run.start_time)), limit=1)  # newest first
    return page.events[0].occurred if page.events else None


def _pages(read: Callable[[int, int], list[T]]) -> list[T]:
    found: list[T] = []
    while True:
        page = read(PAGE, len(found))
        found += page
        if len(page) < PAGE:
            return found
