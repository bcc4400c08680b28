"""Failed flow runs on a real Prefect API alert as loud as their cause and origin make them:
a direct call's bad parameter is a note, a scheduled ingest's failure is critical, and each
deployment's failures have their own dedup window, whose repeats are summarised once it closes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import FlowRunSort
from prefect.flow_engine import run_flow

from flows.hooks import alert_on_failure
from flows.ingest import ingest_bars
from tapeflow.config import Settings
from tapeflow.ops.alert_book import book_from_settings
from tests.fakes.webhook_receiver import WebhookReceiver
from warehouse import Warehouse

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


@flow(name="always-fails", on_failure=[alert_on_failure])
def always_fails() -> None:
    """Fails as a vendor outage would: the pipeline's problem, not the user's."""
    raise RuntimeError("vendor answered 503")


def deployment_run(deployment_id, *, scheduled: bool) -> FlowRun:
    """A run of the deployment as a worker would get it: started by hand, or by its schedule."""
    with get_client(sync_client=True) as client:
        if not scheduled:
            return client.create_flow_run_from_deployment(deployment_id)
        # What the scheduler does, for a slot already past, so the run may start at once.
        client.request("POST", "/deployments/{id}/schedule", path_params={"id": deployment_id},
                       json={"start_time": (datetime.now(UTC) - timedelta(days=7)).isoformat(), "max_runs": 1})
        # The earliest: a scheduler service, were one running, would only add runs to come.
        [run] = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                                      sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=1)
        return run


def alert_rows(warehouse: Warehouse) -> list[tuple]:
    with warehouse.read() as con:
        return con.execute("SELECT alert_key, severity, delivered, repeats FROM alerts ORDER BY ts").fetchall()


def test_a_bad_parameter_on_a_direct_call_is_not_critical(settings, warehouse, monkeypatch):
    with WebhookReceiver() as rx:
        monkeypatch.setenv("TAPEFLOW_ALERT_WEBHOOK_URL", rx.url)
        unknown = ingest_bars(source="nope", return_state=True)  # refused by Prefect's parameter check
        backwards = ingest_bars(source="replay", start=date(2011, 3, 2), end=date(2011, 3, 1), return_state=True)
        bodies = [r.json for r in rx.wait_for(2)]
    assert unknown.is_failed() and backwards.is_failed()
    assert [(b["severity"], b["title"]) for b in bodies] == [
        ("info", "ingest-bars failed: bad input (ad hoc run, ParameterTypeError)"),
        ("info", "ingest-bars failed: bad input (ad hoc run, ValueError)")]  # raised by tapeflow's window check
    assert "last day 2011-03-01 is before first day 2011-03-02" in bodies[1]["message"]
    assert [r[0] for r in alert_rows(warehouse)] == [
        "flow_failed:ingest-bars:bad_input:ParameterTypeError", "flow_failed:ingest-bars:bad_input:ValueError"]


def test_a_failed_scheduled_ingest_is_critical(settings, warehouse, monkeypatch, tmp_path):
    monkeypatch.setenv("TAPEFLOW_DATA_DIR", str(tmp_path / "no-data"))  # the replay files are gone
    params = {"source": "replay", "symbols": ["SPY"], "start": "2011-03-01", "end": "2011-03-01"}
    deployment_id = ingest_bars.to_deployment(name="daily-after-close", cron="30 16 * * 1-5", parameters=params).apply()
    run = deployment_run(deployment_id, scheduled=True)
    assert run.auto_scheduled
    with WebhookReceiver() as rx:
        monkeypatch.setenv("TAPEFLOW_ALERT_WEBHOOK_URL", rx.url)
        state = run_flow(ingest_bars, flow_run=run, parameters=run.parameters, return_type="state")
        [body] = [r.json for r in rx.wait_for(1)]
    assert state.is_failed()
    assert body["severity"] == "critical"
    assert body["title"] == "ingest-bars/daily-after-close failed: error (scheduled run, FileNotFoundError)"
    assert body["context"]["deployment"] == "ingest-bars/daily-after-close" and body["context"]["origin"] == "scheduled"


def test_each_deployment_has_its_own_window_and_repeats_are_summarised(settings, warehouse, monkeypatch):
    east, west = (always_fails.to_deployment(name=name).apply() for name in ("east", "west"))
    with WebhookReceiver() as rx:
        monkeypatch.setenv("TAPEFLOW_ALERT_WEBHOOK_URL", rx.url)
        for deployment_id in (east, west, east):  # the same failure, two deployments, then a repeat
            run = deployment_run(deployment_id, scheduled=False)
            assert run_flow(always_fails, flow_run=run, return_type="state").is_failed()
        sent = [r.json for r in rx.wait_for(2)]
        # The window closes: the monitor's pass tells of the repeat (time driven, not waited for).
        book = book_from_settings(Settings(), warehouse)
        [summary] = book.summarise_closed(datetime.now(UTC) + book.window)
        told = rx.wait_for(3)[2].json
    assert [(b["severity"], b["title"]) for b in sent] == [
        ("critical", "always-fails/east failed: error (deployment run, RuntimeError)"),
        ("critical", "always-fails/west failed: error (deployment run, RuntimeError)")]
    east_key = "flow_failed:always-fails/east:error:RuntimeError"
    rows = alert_rows(warehouse)
    assert [(r[0], r[2].split(":")[0], r[3]) for r in rows[:3]] == [
        (east_key, "webhook", 1), ("flow_failed:always-fails/west:error:RuntimeError", "webhook", 0),
        (east_key, "suppressed", 0)]
    assert summary.key == f"repeats:{east_key}" and told["title"] == (
        "1 repeat of always-fails/east failed: error (deployment run, RuntimeError) suppressed")
