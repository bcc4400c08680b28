"""The local PostgreSQL for Prefect: `ensure_local_postgres` creates and starts a cluster once,
`tapeflow postgres` answers in lines, and Prefect's server runs its flow runs on it.

Real clusters on free ports of 127.0.0.1 and a real Prefect server; every cluster a test
starts is stopped on its way out, and the server's process group is killed."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
import requests

from tapeflow.cli.postgres import (
    NOT_INSTALLED,
    PG_BIN_ENV,
    ClusterState,
    PostgresError,
    PostgresRefused,
    ensure_local_postgres,
    find_bin_dir,
    local_postgres_status,
    stop_local_postgres,
)

BIN = Path(sys.executable).parent
TAPEFLOW = str(BIN / "tapeflow")
PREFECT = str(BIN / "prefect")


def _installed() -> bool:
    try:
        find_bin_dir()
    except PostgresRefused:
        return False
    return True


pytestmark = pytest.mark.slow
needs_postgres = pytest.mark.skipif(not _installed(), reason="PostgreSQL's programs (initdb, pg_ctl, psql) are "
                                    "not installed: apt-get install postgresql")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(url: str, sql: str) -> list[asyncpg.Record]:
    """Rows of `sql` through asyncpg on Prefect's URL (the driver name dropped)."""

    async def go() -> list[asyncpg.Record]:
        con = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=10)
        try:
            return await con.fetch(sql)
        finally:
            await con.close()

    return asyncio.run(go())


@pytest.fixture
def base(tmp_path: Path) -> Iterator[Path]:
    """A folder for clusters; under root the server runs as `postgres`, which cannot enter
    pytest's private tmp_path, so there it is a folder of its own that others may pass through."""
    if os.geteuid() != 0:
        yield tmp_path
        return
    own = Path(tempfile.mkdtemp(prefix="tapeflow-pg-test-"))
    own.chmod(0o711)
    try:
        yield own
    finally:
        shutil.rmtree(own, ignore_errors=True)


@pytest.fixture
def cluster_root(base: Path) -> Iterator[Callable[[str], Path]]:
    """Folders for clusters under `base`; each one's cluster is stopped on the way out."""
    roots: list[Path] = []

    def new(name: str) -> Path:
        roots.append(base / name)
        return base / name

    yield new
    for root in roots:
        if root.exists():
            stop_local_postgres(root)


def tapeflow(args: list[str], home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TAPEFLOW_", "PREFECT_"))}
    clean.update(TAPEFLOW_HOME=str(home), COLUMNS="200", NO_COLOR="1", **env)
    return subprocess.run([TAPEFLOW, *args], env=clean, cwd=home.parent, capture_output=True, text=True, timeout=120)


@needs_postgres
def test_start_creates_a_cluster_once_and_stop_keeps_its_data(cluster_root):
    root, port = cluster_root("pg"), free_port()
    url = ensure_local_postgres(root, port)
    assert url.startswith("postgresql+asyncpg://") and url.endswith(f"@127.0.0.1:{port}/prefect")
    assert [tuple(r) for r in fetch(url, "SELECT 1")] == [(1,)]
    settings = dict(tuple(r) for r in fetch(url, "SELECT name, setting FROM pg_settings WHERE name IN "
                                                 "('listen_addresses', 'max_connections', 'unix_socket_directories')"))
    assert settings == {"listen_addresses": "127.0.0.1", "max_connections": "200",
                        "unix_socket_directories": str(root.resolve() / "run")}
    started = fetch(url, "SELECT pg_postmaster_start_time()")[0][0]
    fetch(url, "CREATE TABLE kept AS SELECT 7 AS n")

    assert ensure_local_postgres(root, port) == url  # a no-op: the same server, not a restart
    assert fetch(url, "SELECT pg_postmaster_start_time()")[0][0] == started
    with pytest.raises(PostgresRefused, match=f"already runs on port {port}"):
        ensure_local_postgres(root, free_port())

    assert local_postgres_status(root).state is ClusterState.RUNNING and local_postgres_status(root).port == port
    assert stop_local_postgres(root) is True
    assert local_postgres_status(root).state is ClusterState.STOPPED
    assert stop_local_postgres(root) is False

    assert ensure_local_postgres(root, port) == url
    assert [tuple(r) for r in fetch(url, "SELECT n FROM kept")] == [(7,)]


@needs_postgres
def test_a_port_another_program_holds_is_refused_before_anything_is_made(cluster_root):
    root = cluster_root("pg")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PostgresRefused, match=f"port {port} on 127.0.0.1 is taken by another program"):
            ensure_local_postgres(root, port)
    assert not root.exists()
    assert local_postgres_status(root).state is ClusterState.ABSENT


@needs_postgres
def test_the_command_starts_reports_and_stops_the_cluster_in_tapeflow_home(cluster_root):
    home = cluster_root("home")
    home.mkdir()
    cluster_root("home/postgres")  # the command's cluster, stopped on the way out whatever happens
    port = str(free_port())

    started = tapeflow(["postgres", "start", "--port", port], home)
    assert started.returncode == 0, started.stderr
    lines = started.stdout.strip().splitlines()
    url = f"postgresql+asyncpg://{'postgres' if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name}"
    assert lines[-1].startswith(f"PREFECT_API_DATABASE_CONNECTION_URL={url}")
    assert lines[-1].endswith(f"@127.0.0.1:{port}/prefect")
    assert (home / "postgres" / "data" / "PG_VERSION").is_file() and (home / "postgres" / "postgres.log").is_file()
    assert [tuple(r) for r in fetch(lines[-1].split("=", 1)[1], "SELECT 1")] == [(1,)]

    again = tapeflow(["postgres", "start", "--port", port], home)
    assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] == lines[-1], again.stderr

    running = tapeflow(["postgres", "status"], home)
    assert running.returncode == 0 and f"runs on 127.0.0.1:{port}" in running.stdout, running.stderr
    stopped = tapeflow(["postgres", "stop"], home)
    assert stopped.returncode == 0 and "stopped PostgreSQL" in stopped.stdout, stopped.stderr
    after = tapeflow(["postgres", "status"], home)
    assert after.returncode == 1 and "PostgreSQL is stopped" in after.stdout, after.stdout + after.stderr


@needs_postgres
def test_a_start_that_fails_names_the_servers_reason_and_its_log(cluster_root):
    root, port = cluster_root("pg"), free_port()
    ensure_local_postgres(root, port)
    stop_local_postgres(root)
    with (root / "data" / "postgresql.conf").open("a") as conf:
        conf.write("shared_buffers = plenty\n")
    with pytest.raises(PostgresError, match="PostgreSQL did not start: .*FATAL.*contains errors") as failed:
        ensure_local_postgres(root, port)
    assert str(root.resolve() / "postgres.log") in str(failed.value) and "\n" not in str(failed.value)
    assert local_postgres_status(root).state is ClusterState.STOPPED


def test_without_postgresql_the_command_says_how_to_install_it_in_one_line(tmp_path):
    empty = tmp_path / "no-postgres"
    empty.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    for command in ("start", "status", "stop"):
        result = tapeflow(["postgres", command], home, **{PG_BIN_ENV: str(empty)})
        assert result.returncode == 2, result.stdout + result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and NOT_INSTALLED in lines[0] and str(empty) in lines[0], result.stderr
        assert "Traceback" not in result.stdout + result.stderr
    assert not (home / "postgres").exists()


@needs_postgres
def test_prefect_server_keeps_its_flow_runs_in_postgres(cluster_root, tmp_path):
    url = ensure_local_postgres(cluster_root("pg"), free_port())
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAPEFLOW_", "PREFECT_"))}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_API_DATABASE_CONNECTION_URL=url,
               PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", PREFECT_UI_ENABLED="false")
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port),
                                   "--analytics-off"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not _healthy(api):
            assert server.poll() is None, f"the server exited:\n{log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"the server was not healthy in 120 s:\n{log_path.read_text()[-3000:]}"
            time.sleep(0.5)

        probe = ("from prefect import flow\n"
                 "@flow(name='postgres-probe')\n"
                 "def probe() -> int:\n"
                 "    return 42\n"
                 "assert probe() == 42\n")
        ran = subprocess.run([sys.executable, "-c", probe], env=env | {"PREFECT_API_URL": api}, capture_output=True,
                             text=True, timeout=120)
        assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]

        rows = fetch(url, "SELECT r.state_type::text FROM flow_run r JOIN flow f ON f.id = r.flow_id "
                          "WHERE f.name = 'postgres-probe'")
        assert [r[0] for r in rows] == ["COMPLETED"]
        assert "database is locked" not in log_path.read_text()
    finally:
        _kill_group(server)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, then SIGKILL to whatever of it is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass


def _healthy(api: str) -> bool:
    try:
        return requests.get(f"{api}/health", timeout=2).json() is True
    except (requests.RequestException, ValueError):
        return False


@needs_postgres
@pytest.mark.skipif(os.geteuid() != 0, reason="only under root does the server run as another user, `postgres`")
def test_under_root_a_folder_postgres_cannot_reach_is_refused_in_one_line(tmp_path):
    hidden = tmp_path / "private"
    hidden.mkdir(mode=0o700)
    with pytest.raises(PostgresRefused, match="the postgres system user cannot reach"):
        ensure_local_postgres(hidden / "pg", free_port())
    assert local_postgres_status(hidden / "pg").state is ClusterState.ABSENT
