"""`tapeflow serve`: the local Prefect stack in one command that stops cleanly on Ctrl-C.

Prefect server (API and UI) on 127.0.0.1, on SQLite or PostgreSQL; the `warehouse` and `compute`
work pools with a process worker each (docs/topology.md); Prefect's own parts (automations, the
kill-switch variable, the writers' limit: `tapeflow.cli.stack_parts`); the deployments of
prefect.yaml; and the reports folder over HTTP.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import requests
import typer
from rich.console import Console

from tapeflow.cli.console import out as console_out
from tapeflow.cli.flow_runs import report_swept
from tapeflow.cli.output import prefect_environment
from tapeflow.cli.postgres import DEFAULT_PORT, PostgresError, ensure_local_postgres
from tapeflow.cli.report_server import ReportServer
from tapeflow.cli.worker import process_environment, worker_argv, worker_environment
from tapeflow.config import PROJECT_DIR, REPORTS_URL_ENV, Settings, load_settings
from tapeflow.model import Role
from tapeflow.redact import redact_text

if TYPE_CHECKING:
    from tapeflow.cli.stack_parts import StackParts

WORK_POOLS = (Role.WAREHOUSE, Role.COMPUTE)
"""One process pool per role, named for it; prefect.yaml puts each deployment in one."""


class Database(StrEnum):
    """Where the Prefect server keeps its state."""

    SQLITE = "sqlite"  # a file under PREFECT_HOME: one machine, a few flows at a time
    POSTGRES = "postgres"  # PREFECT_API_DATABASE_CONNECTION_URL, else a local cluster (tapeflow postgres)


DATABASE_URL_ENV = "PREFECT_API_DATABASE_CONNECTION_URL"


class ServeError(RuntimeError):
    """A step of bringing the stack up failed; the message names the step."""


def stack_environment(settings: Settings, port: int, reports_url: str | None = None) -> dict[str, str]:
    """Environment for every process of the stack: one Prefect home, one API, one warehouse."""
    env = process_environment(settings)
    env.update(PREFECT_API_URL=f"http://127.0.0.1:{port}/api", PREFECT_UI_URL=f"http://127.0.0.1:{port}")
    if reports_url:  # flow runs link reports as f"{TAPEFLOW_REPORTS_URL}{run_id}/report.html"
        env[REPORTS_URL_ENV] = reports_url
    env["PREFECT_LOGGING_LEVEL"] = "INFO"
    # The API answers a locked SQLite with a silent 503 that the UI shows as a form that did
    # nothing; logged, it is in server.log for whoever wonders (docs/topology.md).
    env.setdefault("PREFECT_API_LOG_RETRYABLE_ERRORS", "true")
    return env


def describe_database(url: str | None) -> str:
    """The server's database in words, without the user or password a URL may carry."""
    if not url:
        return "SQLite"
    parsed = urlsplit(url)
    return f"PostgreSQL {parsed.hostname}:{parsed.port or 5432}{parsed.path}"


def _prefect(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("prefect")), *args]


def _run(step: str, argv: Sequence[str], env: dict[str, str], ok_if: str | None = None) -> None:
    result = subprocess.run(argv, env=env, cwd=PROJECT_DIR, capture_output=True, text=True)
    if result.returncode != 0 and not (ok_if and ok_if in (result.stdout + result.stderr)):
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise ServeError(f"{step} failed (exit {result.returncode}):\n" + "\n".join(tail))


def wait_healthy(api: str, timeout_s: float = 90.0, server: subprocess.Popen | None = None) -> None:
    """Poll the API's health endpoint until it answers true."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server is not None and server.poll() is not None:
            raise ServeError(f"Prefect server exited with code {server.returncode} while starting")
        try:
            if requests.get(f"{api}/health", timeout=2).json() is True:
                return
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.5)
    raise ServeError(f"Prefect server did not become healthy within {timeout_s:g} s")


def close_dead_runs(api: str, console: Console) -> None:
    """Mark the runs that processes now gone left Running Crashed, before the worker starts."""
    from flows.crash_sweep import sweep_dead_runs  # deferred: Prefect takes seconds to import

    try:
        report_swept(sweep_dead_runs(api), console)
    except Exception as exc:  # the stack is worth more than the cleanup: say so and go on
        console.print(f"could not look for crashed flow runs ({type(exc).__name__}: {exc}); serving anyway",
                      soft_wrap=True, markup=False)


def _stack_parts(settings: Settings, api: str, secrets_from_env: bool) -> StackParts:
    """Automations, variable, limit (and Secret blocks if asked) through one client, in this process."""
    from tapeflow.cli.stack_parts import ensure_stack_parts  # deferred: Prefect takes seconds to import

    try:
        return ensure_stack_parts(settings, api, secrets_from_env=secrets_from_env)
    except Exception as exc:  # one line naming the step; never the values it carried
        raise ServeError(f"creating Prefect's automations, variable and limits failed: {type(exc).__name__}: "
                         f"{redact_text(str(exc), settings.secret_values())}") from None


def _summary(parts: StackParts) -> str:
    return "\n".join("  " + line for line in parts.lines())


def _stop(proc: subprocess.Popen, sig: int, name: str, console: Console) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        console.print(f"{name} did not stop in 15 s; killing it")
        proc.kill()
        proc.wait()


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM from a supervisor stops the stack the same way Ctrl-C does."""
    raise KeyboardInterrupt


def database_url(settings: Settings, database: Database, console: Console) -> str | None:
    """The PostgreSQL URL the server uses (the configured one, else a local cluster it starts), or
    None for SQLite."""
    if database is Database.SQLITE:
        return None
    if os.environ.get(DATABASE_URL_ENV):
        return os.environ[DATABASE_URL_ENV]
    root = settings.home.resolve() / "postgres"
    console.print(f"starting PostgreSQL on 127.0.0.1:{DEFAULT_PORT} (data: {root})", soft_wrap=True)
    try:
        return ensure_local_postgres(root, DEFAULT_PORT)
    except PostgresError as exc:
        raise ServeError(str(exc)) from None


def serve_stack(settings: Settings, *, port: int = 4200, reports_port: int | None = None,
                secrets_from_env: bool = False, database: Database = Database.SQLITE, console: Console) -> int:
    """Bring the stack up, block until Ctrl-C (or a child dies), then stop it; returns an exit code.

    Reports are served on `reports_port` (default: `port` + 1); `secrets_from_env` first copies
    the keys set in the environment or .env into Prefect Secret blocks."""
    say = functools.partial(console.print, soft_wrap=True)  # commands must stay pasteable
    try:
        reports = ReportServer(settings.home.resolve() / "reports", port + 1 if reports_port is None else reports_port)
    except OSError as exc:
        say(f"[red]cannot serve the reports folder on 127.0.0.1:{reports_port or port + 1}: {exc.strerror}[/red]")
        return 1
    env = stack_environment(settings, port, reports.url)
    Path(env["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    try:
        url = database_url(settings, database, console)
    except ServeError as exc:
        reports.stop()
        say(f"[red]{exc}[/red]")
        return 1
    if url:
        env[DATABASE_URL_ENV] = url
    api = env["PREFECT_API_URL"]
    logs = settings.home.resolve() / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    procs: list[tuple[str, subprocess.Popen, int]] = []
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        say(f"starting Prefect server on {env['PREFECT_UI_URL']}, state in {describe_database(url)} "
            f"(log: {logs / 'server.log'})")
        with open(logs / "server.log", "ab") as log:
            server = subprocess.Popen(
                _prefect("server", "start", "--host", "127.0.0.1", "--port", str(port), "--analytics-off"),
                env=env, cwd=PROJECT_DIR, stdout=log, stderr=subprocess.STDOUT,
            )
        procs.append(("server", server, signal.SIGTERM))
        wait_healthy(api, server=server)
        close_dead_runs(api, console)

        for pool in WORK_POOLS:
            _run(f"work pool {pool}", _prefect("work-pool", "create", pool.value, "--type", "process"), env,
                 ok_if="already exists")
        parts = _stack_parts(settings, api, secrets_from_env)
        say("deploying prefect.yaml")
        _run("deploy", _prefect("--no-prompt", "deploy", "--all"), env)

        for pool in WORK_POOLS:
            log_path = logs / f"worker-{pool.value}.log"
            say(f"starting a worker for pool {pool.value} (log: {log_path})")
            # The worker ignores SIGTERM while it cannot reach the server; SIGINT always stops it.
            with open(log_path, "ab") as log:
                worker = subprocess.Popen(worker_argv(pool), env=worker_environment(env, pool), cwd=PROJECT_DIR,
                                          stdout=log, stderr=subprocess.STDOUT)
            procs.append((f"{pool.value} worker", worker, signal.SIGINT))

        say(f"""
[bold green]ready[/bold green]  UI: {env['PREFECT_UI_URL']}   API: {api}   reports: {reports.url}
{_summary(parts)}
Run a deployment from the UI, or in another shell:
  PREFECT_API_URL={api} .venv/bin/prefect deployment run 'ingest-bars/bundled-daily-bars'
  PREFECT_API_URL={api} .venv/bin/prefect deployment run 'ingest-bars/bundled-spy-minute-bars' \\
      --param start=2011-03-01 --param end=2011-03-04
Then: .venv/bin/tapeflow sql "SELECT * FROM ingest_runs ORDER BY finished_at DESC LIMIT 3"
Ctrl-C stops the worker and the server.""")
        while all(p.poll() is None for _, p, _ in procs):
            time.sleep(0.5)
        dead = [name for name, p, _ in procs if p.poll() is not None]
        say(f"[red]{', '.join(dead)} exited; stopping the stack (see {logs})[/red]")
        return 1
    except KeyboardInterrupt:
        say("\nstopping ...")
        return 0
    except ServeError as exc:
        say(f"[red]{exc}[/red]")
        return 1
    finally:
        # A second Ctrl-C while stopping must not orphan the server: ignore it until done.
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for name, proc, sig in reversed(procs):
            _stop(proc, sig, name, console)
        reports.stop()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        say("stopped")


def serve_command(
    port: Annotated[int, typer.Option(help="Prefect server port on 127.0.0.1")] = 4200,
    reports_port: Annotated[int | None, typer.Option(help="port of the reports folder's HTTP server "
                                                     "(default: --port + 1)")] = None,
    database: Annotated[Database, typer.Option(
        help="where Prefect keeps its state: sqlite (a file, one machine) or postgres "
        "(PREFECT_API_DATABASE_CONNECTION_URL, else a local cluster under TAPEFLOW_HOME/postgres)")] = Database.SQLITE,
    secrets_from_env: Annotated[bool, typer.Option(
        "--secrets-from-env", help="first copy the keys set in the environment or .env into Prefect Secret blocks "
        "(tapeflow-alpaca-api-key, ...); prints their names, never their values")] = False,
) -> None:
    """Prefect server and UI, work pool, automations, deployments from prefect.yaml, a worker and the
    reports folder over HTTP; Ctrl-C stops all."""
    settings = load_settings()
    prefect_environment(settings)
    raise typer.Exit(serve_stack(settings, port=port, reports_port=reports_port, secrets_from_env=secrets_from_env,
                                 database=database, console=console_out))
