"""`tapeflow serve` creates Prefect's own parts, visible in the UI through the API: the failure
and lateness automations, the kill-switch variable, the writers' concurrency limit, Secret
blocks on request, and the reports folder over HTTP; a failing deployment run fires the
failure automation's webhook beside the in-flow hook's alert.

One real stack (server, worker, flow runs) serves every check of this module."""

from __future__ import annotations

import http.client
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.trade import KILL_VARIABLE
from tapeflow.cli.stack_parts import (
    FAILED_AUTOMATION,
    KILL_TAGS,
    LATE_AUTOMATION,
    NOTIFY_BLOCK,
    WRITER_TAG,
    ensure_stack_parts,
)
from tapeflow.config import Settings
from tests.cli.test_serve import (
    PREFECT,
    PROJECT_DIR,
    READY,
    READY_TIMEOUT_S,
    TAPEFLOW,
    Output,
    descendants,
    free_port,
    kill_group,
    log_tail,
    run_cli,
    stack_env,
    wait_for,
)
from tests.fakes.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.slow]

REPORT = "<html><body>run-1 report</body></html>"


class Stack:
    def __init__(self, port: int, reports_port: int, home: Path, env: dict[str, str], output: Output,
                 receiver: WebhookReceiver | None = None) -> None:
        self.port, self.reports_port, self.home, self.env = port, reports_port, home, env
        self.output, self.receiver = output, receiver
        self.api = f"http://127.0.0.1:{port}/api"

    def client(self):
        """A sync client of the stack's API, for the test process."""
        return _Client(self.api)

    def diagnostics(self, what: str) -> str:
        logs = self.home / "logs"
        return "\n".join([what, "--- tapeflow serve output:", self.output.text[-4000:],
                          log_tail(logs / "server.log"), log_tail(logs / "worker-warehouse.log"), log_tail(logs / "worker-compute.log")])


class _Client:
    def __init__(self, api: str) -> None:
        self.settings = temporary_settings(updates={PREFECT_API_URL: api})

    def __enter__(self):
        self.settings.__enter__()
        self.inner = get_client(sync_client=True)
        return self.inner.__enter__()

    def __exit__(self, *exc):
        self.inner.__exit__(*exc)
        self.settings.__exit__(*exc)


@contextmanager
def running_stack(tmp: Path, env: dict[str, str], *args: str, receiver: WebhookReceiver | None = None) -> Iterator[Stack]:
    """`tapeflow serve ARGS` in TAPEFLOW_HOME `tmp/home` until the block ends; fails the test with
    its output and logs unless it says ready."""
    port = free_port()
    # The reports' port is chosen too: serve's default, port + 1, may be another test's.
    reports_port = free_port()
    serve = subprocess.Popen([str(TAPEFLOW), "serve", "--port", str(port), "--reports-port", str(reports_port), *args],
                             env=env, cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output = Output(serve)
    seen: set[int] = set()
    up = Stack(port, reports_port, tmp / "home", env, output, receiver)
    try:
        ready = wait_for(lambda: READY.search(output.text) is not None or serve.poll() is not None,
                         READY_TIMEOUT_S, 0.25)
        if serve.poll() is not None or not ready:
            pytest.fail(up.diagnostics(f"tapeflow serve {' '.join(args)} not ready (exit {serve.poll()})"))
        seen |= descendants(serve.pid)
        yield up
        seen |= descendants(serve.pid)
    finally:
        kill_group(serve, seen)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve-parts")
    home = tmp / "home"
    (home / "reports" / "run-1").mkdir(parents=True)
    (home / "reports" / "run-1" / "report.html").write_text(REPORT)
    (home / "secret.txt").write_text("outside the reports folder")
    with WebhookReceiver() as receiver, running_stack(
            tmp, {**stack_env(tmp), "TAPEFLOW_ALERT_WEBHOOK_URL": receiver.url}, receiver=receiver) as up:
        yield up


def test_ready_summary_names_what_serve_created(stack):
    text = stack.output.text
    for name in (FAILED_AUTOMATION, LATE_AUTOMATION, KILL_VARIABLE, WRITER_TAG, NOTIFY_BLOCK,
                 f"reports: http://127.0.0.1:{stack.reports_port}/"):
        assert name in text, stack.diagnostics(f"{name!r} not in the ready summary")
    assert stack.receiver.url not in text  # the webhook URL is a secret


def test_the_api_lists_the_automations_variable_and_limit(stack):
    with stack.client() as client:
        failed = client.read_automations_by_name(FAILED_AUTOMATION)
        late = client.read_automations_by_name(LATE_AUTOMATION)
        variable = client.read_variable_by_name(KILL_VARIABLE)
        limits = {limit.name: limit.limit for limit in client.read_global_concurrency_limits()}
        block = client.read_block_document_by_name(NOTIFY_BLOCK, "custom-webhook", include_secrets=False)
    assert len(failed) == 1 and failed[0].trigger.expect == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}
    assert len(late) == 1 and late[0].trigger.after == {"prefect.flow-run.Late"}
    assert [a.type for a in failed[0].actions] == ["send-notification"]
    assert failed[0].actions[0].block_document_id == block.id
    assert variable is not None and variable.value == "" and variable.tags == list(KILL_TAGS)
    # Prefect 3.8.8 keeps a tag limit as a global one named tag:<tag>: the Concurrency page's
    # Global tab shows that name, its Task Run tab the tag.
    assert limits.get(f"tag:{WRITER_TAG}") == 1
    assert stack.receiver.url not in str(block.data)  # masked unless secrets are asked for


def test_serve_keeps_a_users_variable_and_edits(stack):
    from prefect.client.schemas.actions import VariableUpdate

    with stack.client() as client:
        client.update_variable(VariableUpdate(name=KILL_VARIABLE, value="all"))
        [automation] = client.read_automations_by_name(FAILED_AUTOMATION)
        client.pause_automation(automation.id)  # a user's edit in the UI
    try:
        parts = ensure_stack_parts(Settings(alert_webhook_url=stack.receiver.url), stack.api)
        with stack.client() as client:
            assert client.read_variable_by_name(KILL_VARIABLE).value == "all"
            assert [a.enabled for a in client.read_automations_by_name(FAILED_AUTOMATION)] == [False]
        assert parts.variable == f"{KILL_VARIABLE} (set to 'all')"
    finally:
        with stack.client() as client:
            client.update_variable(VariableUpdate(name=KILL_VARIABLE, value=""))
            client.resume_automation(automation.id)


def test_the_reports_folder_is_served_and_nothing_above_it(stack):
    base = f"http://127.0.0.1:{stack.reports_port}/"
    assert stack.env.get("TAPEFLOW_REPORTS_URL") is None  # serve sets it for its children, not the caller
    reply = requests.get(base + "run-1/report.html", timeout=5)
    assert reply.status_code == 200 and reply.text == REPORT
    conn = http.client.HTTPConnection("127.0.0.1", stack.reports_port, timeout=5)
    conn.request("GET", "/../secret.txt")
    assert conn.getresponse().status == 404


def test_secrets_from_env_writes_blocks_and_prints_no_value(stack, capsys):
    settings = Settings(alpaca_api_key="AK-test-1234", alpaca_secret_key="SK-test-5678", polygon_api_key=None)
    parts = ensure_stack_parts(settings, stack.api, secrets_from_env=True)
    print("\n".join(parts.lines()))
    with stack.client() as client:
        stored = {name: client.read_block_document_by_name(name, "secret", include_secrets=True).data["value"]
                  for name in parts.secret_blocks}
    assert stored == {"tapeflow-alpaca-api-key": "AK-test-1234", "tapeflow-alpaca-secret-key": "SK-test-5678"}
    shown = capsys.readouterr().out
    assert "tapeflow-alpaca-api-key" in shown and "AK-test-1234" not in shown and "SK-test-5678" not in shown


def test_a_failed_deployment_run_fires_the_automation(stack):
    before = len(stack.receiver.received)
    api_env = {**stack.env, "PREFECT_API_URL": stack.api}
    run = run_cli([str(PREFECT), "deployment", "run", "ingest-bars/bundled-spy-minute-bars", "--param", "start=2011-03-04",
                   "--param", "end=2011-03-01", "--watch", "--watch-timeout", "120"], api_env, 140)
    assert run.returncode != 0 and "Failed" in run.stdout, stack.diagnostics(run.stdout)
    automation = wait_for(lambda: any((r.json or {}).get("component") == "prefect-automation"
                                      for r in stack.receiver.received[before:]), 60, 0.5)
    posts = [r.json for r in stack.receiver.received[before:]]
    assert automation, stack.diagnostics(f"no post from the automation; got {posts}")
    [sent] = [p for p in posts if p.get("component") == "prefect-automation"]
    assert "Failed" in sent["title"] and "ingest-bars" in sent["title"]
    assert any(p.get("component") == "flow:ingest-bars" for p in posts)  # the in-flow hook still alerts
