"""The Prefect UI of `tapeflow serve`, in headless Chromium: every backtest deployment's run
form shows its choices as dropdowns and every field with its description, and submits as it
is; a bad value is refused in the form, before any run exists; the automations, the
kill-switch variable and the writers' limit are on their pages by name; a trading day replayed
through the worker shows its progress, its book refreshed through the day and its
reconciliation on the run's Artifacts tab.

The work pools are paused while the forms are submitted, so the runs they create wait
(and are then deleted) instead of running."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from prefect.client.schemas.actions import WorkPoolUpdate
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

from flows.trade import KILL_VARIABLE
from tapeflow.cli.serve import WORK_POOLS
from tapeflow.cli.stack_parts import FAILED_AUTOMATION, LATE_AUTOMATION, WRITER_TAG
from tests.cli.test_serve import stack_env
from tests.cli.test_serve_parts import running_stack
from tests.flows.test_prefect_yaml import DEPLOYMENTS, full_name
from tests.postgres_kit import local_postgres

pytestmark = pytest.mark.slow

BACKTESTS = [d for d in DEPLOYMENTS if d["entrypoint"] == "flows.backtest:backtest"]
PAGE_TIMEOUT_MS = 60_000  # the UI's first load on a busy machine


def field(page, name: str):
    """The form field of parameter `name` (the innermost labelled block holding it)."""
    return page.locator(f"xpath=//span[contains(@class, 'schema-form-property__label') and starts-with("
                        f"normalize-space(.), '{name} ')]/ancestor::*[contains(concat(' ', @class, ' '), ' p-label ')][1]")


def open_form(page, port: int, deployment_id) -> None:
    page.goto(f"http://127.0.0.1:{port}/deployments/deployment/{deployment_id}/run", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector(".schema-form-property", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_load_state("networkidle", timeout=PAGE_TIMEOUT_MS)  # the form has its deployment and defaults


def is_choice(schema: dict, prop: dict) -> bool:
    if "$ref" in prop:
        prop = schema["definitions"][prop["$ref"].rsplit("/", 1)[-1]]
    return "enum" in prop


def runs_of(client, deployment_id) -> list:
    return client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """One `tapeflow serve` for the module, on PostgreSQL: a busy machine's SQLite answers the UI 503
    (database locked) now and then, which the UI shows as a form that did nothing."""
    tmp = tmp_path_factory.mktemp("ui")
    with local_postgres() as url, running_stack(
            tmp, {**stack_env(tmp), "PREFECT_API_DATABASE_CONNECTION_URL": url}, "--database", "postgres") as up:
        yield up


@pytest.fixture
def paused_pool(stack):
    with stack.client() as client:
        for pool in WORK_POOLS:
            client.update_work_pool(pool.value, WorkPoolUpdate(is_paused=True))
    yield
    with stack.client() as client:
        for pool in WORK_POOLS:
            client.update_work_pool(pool.value, WorkPoolUpdate(is_paused=False))


@pytest.mark.usefixtures("paused_pool")
@pytest.mark.parametrize("deployment", BACKTESTS, ids=[d["name"] for d in BACKTESTS])
def test_a_backtest_form_shows_choices_and_descriptions_and_submits_as_it_is(stack, page, deployment, tmp_path: Path):
    with stack.client() as client:
        stored = client.read_deployment_by_name(full_name(deployment))
    schema = stored.parameter_openapi_schema
    open_form(page, stack.port, stored.id)
    page.screenshot(path=str(tmp_path / f"{deployment['name']}.png"))
    assert "Property is type" not in page.content()  # no "None" variant drawn next to any field
    for name, prop in schema["properties"].items():
        shown = field(page, name)
        description = shown.locator(".schema-form-property__description").first.inner_text()
        assert " ".join(description.split())[:40] == " ".join(prop["description"].split())[:40], name
        assert (shown.locator(".p-select").count() > 0) == is_choice(schema, prop), f"{name}: dropdown or not"
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.get_by_role("button", name="Submit").click()
    # A created run sends the form back to the deployment's page; a refusal stays on /run with a toast.
    try:
        page.wait_for_url(lambda url: not url.endswith("/run"), timeout=PAGE_TIMEOUT_MS)
    except PlaywrightTimeout:
        pytest.fail(f"the untouched form was not submitted: fields {page.locator('.p-label__message').all_inner_texts()}, "
                    f"toasts {page.locator('.p-toast').all_inner_texts()}, console {console[-5:]}")
    with stack.client() as client:
        created = runs_of(client, stored.id)
        assert len(created) == 1
        assert created[0].parameters["strategy"] == deployment["parameters"]["strategy"]
        client.delete_flow_run(created[0].id)


@pytest.mark.usefixtures("paused_pool")
def test_a_bad_value_is_refused_in_the_form_before_any_run_exists(stack, page):
    with stack.client() as client:
        stored = client.read_deployment_by_name("backtest/backtest-sma-cross")
        before = len(runs_of(client, stored.id))
    open_form(page, stack.port, stored.id)
    field(page, "fast").locator("input").fill("1")  # sma_cross's fast is 2..200
    page.get_by_role("button", name="Submit").click()
    # The API refuses to create the run and the form says why.
    page.get_by_text("Validation failed for field 'params.fast'").first.wait_for(timeout=PAGE_TIMEOUT_MS)
    assert page.get_by_text("1 is less than the minimum of 2").count() > 0
    time.sleep(2)  # a run the form had let through would exist by now
    with stack.client() as client:
        assert len(runs_of(client, stored.id)) == before
    assert page.url.endswith("/run")


@pytest.mark.parametrize("path, names", [
    ("/automations", [FAILED_AUTOMATION, LATE_AUTOMATION]),
    ("/variables", [KILL_VARIABLE]),
    ("/concurrency-limits", [WRITER_TAG]),
], ids=["automations", "variables", "concurrency"])
def test_the_stack_parts_are_on_their_pages_by_name(stack, page, path, names):
    page.goto(f"http://127.0.0.1:{stack.port}{path}", timeout=PAGE_TIMEOUT_MS)
    for name in names:
        page.get_by_text(name).first.wait_for(timeout=PAGE_TIMEOUT_MS)


def run_deployment(client, name: str, parameters: dict, timeout_s: float = 240):
    """Run a deployment through the stack's worker and wait for its final state."""
    stored = client.read_deployment_by_name(name)
    run = client.create_flow_run_from_deployment(stored.id, parameters=parameters)
    deadline = time.monotonic() + timeout_s
    while not (run := client.read_flow_run(run.id)).state.is_final() and time.monotonic() < deadline:
        time.sleep(1)
    assert run.state.is_completed(), f"{name}: {run.state.name} {run.state.message}"
    return run


def test_a_replayed_trading_day_shows_its_progress_book_and_reconciliation(stack, page, tmp_path: Path):
    with stack.client() as client:
        run_deployment(client, "ingest-bars/bundled-spy-minute-bars", {"start": "2011-03-01", "end": "2011-03-04"})
        run = run_deployment(client, "trade-session/replay-opening-range-day", {"fresh": True})
        artifacts = {a.key: a for a in client.read_artifacts() if a.flow_run_id == run.id}
    assert {"trade-session-progress", "trade-session-book", "trade-session"} <= artifacts.keys()
    page.goto(f"http://127.0.0.1:{stack.port}/runs/flow-run/{run.id}", timeout=PAGE_TIMEOUT_MS)
    page.get_by_text("fill: buy").first.wait_for(timeout=PAGE_TIMEOUT_MS)  # the day's fills on the Logs tab
    page.get_by_text("Artifacts", exact=True).first.click()
    for key in ("trade-session-progress", "trade-session-book", "trade-session"):
        page.get_by_text(key).first.wait_for(timeout=PAGE_TIMEOUT_MS)
    assert page.get_by_text("trade-session-book", exact=True).count() >= 3  # the book, refreshed through the day
    page.screenshot(path=str(tmp_path / "trade-session-artifacts.png"), full_page=True)
    book = artifacts["trade-session-book"]
    page.goto(f"http://127.0.0.1:{stack.port}/artifacts/artifact/{book.id}", timeout=PAGE_TIMEOUT_MS)
    page.get_by_text("realized P&L").first.wait_for(timeout=PAGE_TIMEOUT_MS)
    page.screenshot(path=str(tmp_path / "trade-session-book.png"), full_page=True)
