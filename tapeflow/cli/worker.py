"""`tapeflow worker POOL`: a Prefect worker for one pool, here or on another machine
(docs/topology.md). `tapeflow serve` starts one per pool the same way."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import requests
import typer

from tapeflow.cli.console import out, refuse
from tapeflow.cli.output import prefect_environment
from tapeflow.config import PROJECT_DIR, Settings, load_settings, prefect_defaults
from tapeflow.model import Role
from tapeflow.strategy.registry import strategy_path

ROLE_ENV = "TAPEFLOW_ROLE"


def process_environment(settings: Settings) -> dict[str, str]:
    """Environment a worker passes its flow runs: the settings, with every path absolute, so
    workers and flow runs agree on the files whatever directory they start in."""
    env = {**prefect_defaults(settings), **os.environ}
    env.update(TAPEFLOW_HOME=str(settings.home.resolve()), TAPEFLOW_DATA_DIR=str(settings.data_dir.resolve()),
               TAPEFLOW_PROJECT_DIR=str(PROJECT_DIR), DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    if settings.strategy_path:  # workers start in the project folder: the user's files by absolute path
        env["TAPEFLOW_STRATEGY_PATH"] = os.pathsep.join(str(p.resolve()) for p in strategy_path(settings))
    return env


def worker_argv(pool: Role, name: str | None = None) -> list[str]:
    """`prefect worker start` for the pool named for `pool`, under a name unique to this process."""
    name = name or f"{pool.value}-{socket.gethostname()}-{os.getpid()}"
    return [str(Path(sys.executable).with_name("prefect")), "worker", "start", "--pool", pool.value, "--name", name]


def worker_environment(env: dict[str, str], pool: Role) -> dict[str, str]:
    """A worker's environment: its flow runs know their role (compute runs hand results back)."""
    return {**env, ROLE_ENV: pool.value}


def _check_api(api: str | None) -> str:
    if not api:
        refuse("set PREFECT_API_URL to the Prefect server's API, e.g. PREFECT_API_URL=http://warehouse-host:4200/api")
    try:
        healthy = requests.get(f"{api.rstrip('/')}/health", timeout=5).json() is True
    except (requests.RequestException, ValueError) as exc:
        refuse(f"cannot reach the Prefect API at {api} ({type(exc).__name__}); is `tapeflow serve` running there?")
    if not healthy:
        refuse(f"the Prefect API at {api} is not healthy; see its server log")
    return api


def _check_handoff(folder: Path) -> None:
    """A compute worker's results go through the handoff folder: it must be writable here."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as exc:
        refuse(f"cannot write the handoff folder {folder} ({exc.strerror}); set TAPEFLOW_HANDOFF_DIR to storage "
               "this machine and the warehouse machine both see")


def worker_command(
    pool: Annotated[Role, typer.Argument(help="warehouse: the machine with the DuckDB file; compute: any machine")],
    name: Annotated[str | None, typer.Option(help="the worker's name in the UI (default: POOL-HOST-PID)")] = None,
) -> None:
    """A Prefect worker for one pool against PREFECT_API_URL; Ctrl-C stops it."""
    settings = load_settings()
    api = _check_api(os.environ.get("PREFECT_API_URL"))
    if pool is Role.COMPUTE:
        _check_handoff(settings.handoff_path)
    prefect_environment(settings)
    argv = worker_argv(pool, name)
    out.print(f"worker for pool {pool.value} on {api} (flow runs start in {PROJECT_DIR}); Ctrl-C stops it",
              soft_wrap=True, markup=False)
    sys.stdout.flush()
    # The worker replaces this process: Ctrl-C and SIGTERM reach it directly.
    os.execve(argv[0], argv, worker_environment(process_environment(settings), pool))
