"""`tapeflow serve`: the local Prefect stack in one command that stops cleanly on Ctrl-C.

Prefect server (API and UI) on 127.0.0.1, the `local-process` work pool, the deployments of
prefect.yaml, and one process worker, all started from this project's virtualenv.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import requests
from rich.console import Console

from tapeflow.cli.flow_runs import report_swept
from tapeflow.config import PROJECT_DIR, Settings, prefect_defaults
from tapeflow.strategy.registry import strategy_path

WORK_POOL = "local-process"
WRITER_LIMIT = ("duckdb-writer", "1")  # tasks tagged duckdb-writer run one at a time


class ServeError(RuntimeError):
    """A step of bringing the stack up failed; the message names the step."""


def stack_environment(settings: Settings, port: int) -> dict[str, str]:
    """Environment for every process of the stack: one Prefect home, one API, one warehouse."""
    env = {**prefect_defaults(settings), **os.environ}
    api = f"http://127.0.0.1:{port}/api"
    env.update(
        PREFECT_API_URL=api,
        PREFECT_UI_URL=f"http://127.0.0.1:{port}",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        # Workers and flow runs must agree on the files whatever directory they start in.
        TAPEFLOW_HOME=str(settings.home.resolve()),
        TAPEFLOW_DATA_DIR=str(settings.data_dir.resolve()),
        TAPEFLOW_PROJECT_DIR=str(PROJECT_DIR),
    )
    if settings.strategy_path:  # workers start in the project folder: the user's files by absolute path
        env["TAPEFLOW_STRATEGY_PATH"] = os.pathsep.join(str(p.resolve()) for p in strategy_path(settings))
    env["PREFECT_LOGGING_LEVEL"] = "INFO"
    return env


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


def serve_stack(settings: Settings, *, port: int = 4200, console: Console) -> int:
    """Bring the stack up, block until Ctrl-C (or a child dies), then stop it; returns an exit code."""
    env = stack_environment(settings, port)
    Path(env["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    api = env["PREFECT_API_URL"]
    logs = settings.home.resolve() / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    procs: list[tuple[str, subprocess.Popen, int]] = []
    previous = signal.signal(signal.SIGTERM, _interrupt)
    say = functools.partial(console.print, soft_wrap=True)  # commands must stay pasteable
    try:
        say(f"starting Prefect server on {env['PREFECT_UI_URL']} (log: {logs / 'server.log'})")
        with open(logs / "server.log", "ab") as log:
            server = subprocess.Popen(
                _prefect("server", "start", "--host", "127.0.0.1", "--port", str(port), "--analytics-off"),
                env=env, cwd=PROJECT_DIR, stdout=log, stderr=subprocess.STDOUT,
            )
        procs.append(("server", server, signal.SIGTERM))
        wait_healthy(api, server=server)
        close_dead_runs(api, console)

        _run("work pool", _prefect("work-pool", "create", WORK_POOL, "--type", "process"), env,
             ok_if="already exists")
        _run("concurrency limit", _prefect("concurrency-limit", "create", *WRITER_LIMIT), env)
        say("deploying prefect.yaml")
        _run("deploy", _prefect("--no-prompt", "deploy", "--all"), env)

        say(f"starting a worker for pool {WORK_POOL} (log: {logs / 'worker.log'})")
        # The worker ignores SIGTERM while it cannot reach the server; SIGINT always stops it.
        with open(logs / "worker.log", "ab") as log:
            worker = subprocess.Popen(
                _prefect("worker", "start", "--pool", WORK_POOL),
                env=env, cwd=PROJECT_DIR, stdout=log, stderr=subprocess.STDOUT,
            )
        procs.append(("worker", worker, signal.SIGINT))

        say(f"""
[bold green]ready[/bold green]  UI: {env['PREFECT_UI_URL']}   API: {api}
Run a deployment from the UI, or in another shell:
  PREFECT_API_URL={api} .venv/bin/prefect deployment run 'ingest-bars/replay-daily'
  PREFECT_API_URL={api} .venv/bin/prefect deployment run 'ingest-bars/replay-minute' \\
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
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        say("stopped")
