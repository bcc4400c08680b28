"""`tapeflow postgres start|stop|status`: a local PostgreSQL cluster for the Prefect server.

One cluster lives in one folder (default TAPEFLOW_HOME/postgres): its data, unix socket and
log. It listens on 127.0.0.1 only, trusts connections from this machine, and holds a `prefect`
database. PostgreSQL refuses to run as root, so under root its programs run as the `postgres`
system user that Debian's package creates.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TypeVar
from urllib.parse import quote

import typer

from tapeflow.cli.console import err, out, refuse
from tapeflow.config import load_settings

PG_BIN_ENV = "TAPEFLOW_PG_BIN"
DEFAULT_PORT = 5433  # beside, not on, the 5432 a system-wide PostgreSQL takes
DATABASE = "prefect"
SYSTEM_USER = "postgres"
MAX_CONNECTIONS = 200  # the Prefect server holds a pool per process; workers and flow runs add their own
DEBIAN_VERSIONS = Path("/usr/lib/postgresql")
PROGRAMS = ("initdb", "pg_ctl", "psql")
NOT_INSTALLED = "PostgreSQL is not installed: apt-get install postgresql"
# A unix socket's path holds 107 bytes; PostgreSQL adds "/.s.PGSQL.NNNNN.lock" to its folder.
SOCKET_DIR_MAX = 107 - len("/.s.PGSQL.65535.lock")
START_TIMEOUT_S = 60
INCLUDE_LINE = "include_if_exists = 'tapeflow.conf'"

T = TypeVar("T")


class PostgresError(RuntimeError):
    """The cluster did not do what was asked; the message is one line naming the log."""


class PostgresRefused(PostgresError):
    """Something the user fixes (PostgreSQL missing, port taken, folder out of reach); one line."""


class ClusterState(StrEnum):
    ABSENT = "absent"
    STOPPED = "stopped"
    RUNNING = "running"


@dataclass(frozen=True)
class ClusterStatus:
    """Whether a cluster exists in `root` and on which port it runs."""

    root: Path
    state: ClusterState
    port: int | None = None

    def line(self) -> str:
        if self.state is ClusterState.RUNNING:
            return f"PostgreSQL runs on 127.0.0.1:{self.port} (cluster and log in {self.root})"
        if self.state is ClusterState.STOPPED:
            return f"PostgreSQL is stopped (cluster in {self.root}); `tapeflow postgres start` starts it"
        return f"no PostgreSQL cluster in {self.root}; `tapeflow postgres start` creates one"


@dataclass(frozen=True)
class Cluster:
    """Where one cluster's files live, its programs, and the system user that runs them."""

    root: Path
    bin_dir: Path
    user: str  # the server's system user, also its superuser's name

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    def run(self, program: str, *args: str, timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
        """Run one of PostgreSQL's programs as the cluster's user, never raising on its exit code."""
        return self.run_argv([str(self.bin_dir / program), *args], timeout_s=timeout_s)

    def run_argv(self, argv: list[str], *, timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a command as the cluster's user (through runuser under root)."""
        program = Path(argv[0]).name
        if os.geteuid() == 0:
            argv = ["runuser", "-u", self.user, "--", *argv]
        # PG* variables (PGHOST, PGDATA, PGUSER ...) would point the programs at another server.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"LC_ALL": "C", "PGCONNECT_TIMEOUT": "10"}
        try:
            return subprocess.run(argv, env=env, cwd=self.root, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise PostgresError(f"{program} did not finish within {timeout_s:g} s (log: {self.log})") from None


def find_bin_dir(bin_dir: Path | None = None) -> Path:
    """The folder of PostgreSQL's programs: `bin_dir` if given, else the newest Debian version
    under /usr/lib/postgresql, else the one pg_ctl on PATH lives in."""
    if bin_dir is not None:
        candidates = [bin_dir]
    else:
        versions = sorted((p for p in DEBIAN_VERSIONS.glob("*") if p.name.isdigit()), key=lambda p: int(p.name))
        on_path = shutil.which("pg_ctl")
        # resolved: initdb and pg_ctl find `postgres` beside themselves, not beside a symlink
        candidates = [p / "bin" for p in reversed(versions)] + ([Path(on_path).resolve().parent] if on_path else [])
    for candidate in candidates:
        if all((candidate / program).is_file() for program in PROGRAMS):
            return candidate
    where = f"no {', '.join(PROGRAMS)} in {bin_dir}" if bin_dir is not None else "none under /usr/lib/postgresql or on PATH"
    raise PostgresRefused(f"{NOT_INSTALLED} ({where}; --bin-dir or {PG_BIN_ENV} names another folder)")


def database_url(user: str, port: int) -> str:
    """The SQLAlchemy URL Prefect's server takes for the cluster's `prefect` database."""
    return f"postgresql+asyncpg://{quote(user, safe='')}@127.0.0.1:{port}/{DATABASE}"


def ensure_local_postgres(root: Path, port: int, bin_dir: Path | None = None) -> str:
    """Create the cluster in `root` if absent, start it on 127.0.0.1:`port` if stopped, make the
    `prefect` database, and return Prefect's URL for it; running already changes nothing."""
    cluster = _cluster(root, bin_dir)
    status = _status(cluster)
    if status.state is ClusterState.RUNNING:
        if status.port != port:
            raise PostgresRefused(f"the cluster in {cluster.root} already runs on port {status.port}: use --port "
                                  f"{status.port}, or stop it first (tapeflow postgres stop)")
    else:
        if _port_taken(port):
            raise PostgresRefused(f"port {port} on 127.0.0.1 is taken by another program: choose another with --port")
        _prepare_root(cluster)
        if status.state is ClusterState.ABSENT:
            _init(cluster)
        _write_settings(cluster, port)
        _start(cluster)
    _ensure_database(cluster, port)
    return database_url(cluster.user, port)


def stop_local_postgres(root: Path, bin_dir: Path | None = None) -> bool:
    """Stop the cluster in `root` (fast: open sessions are cut); False if none was running."""
    cluster = _cluster(root, bin_dir)
    if _status(cluster).state is not ClusterState.RUNNING:
        return False
    done = cluster.run("pg_ctl", "stop", "-D", str(cluster.data), "-m", "fast", "-w", "-t", str(START_TIMEOUT_S),
                       timeout_s=START_TIMEOUT_S + 10)
    if done.returncode != 0:
        raise PostgresError(f"PostgreSQL did not stop: {_last_line(done)} (log: {cluster.log})")
    return True


def local_postgres_status(root: Path, bin_dir: Path | None = None) -> ClusterStatus:
    """Whether a cluster exists in `root`, and the port it runs on if it runs."""
    return _status(_cluster(root, bin_dir))


def _cluster(root: Path, bin_dir: Path | None) -> Cluster:
    found = find_bin_dir(bin_dir)
    if os.geteuid() != 0:
        return Cluster(root.resolve(), found, pwd.getpwuid(os.geteuid()).pw_name)
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise PostgresRefused(f"PostgreSQL refuses to run as root and there is no `{SYSTEM_USER}` system user: "
                              "apt-get install postgresql creates it, or run tapeflow as another user") from None
    return Cluster(root.resolve(), found, SYSTEM_USER)


def _status(cluster: Cluster) -> ClusterStatus:
    if not (cluster.data / "PG_VERSION").is_file():
        return ClusterStatus(cluster.root, ClusterState.ABSENT)
    done = cluster.run("pg_ctl", "status", "-D", str(cluster.data))
    if done.returncode == 3:  # pg_ctl's "no server running"
        return ClusterStatus(cluster.root, ClusterState.STOPPED)
    if done.returncode != 0:
        raise PostgresError(f"pg_ctl status failed: {_last_line(done)}")
    # postmaster.pid: pid, data folder, start time, port, socket folder, ... (one value a line)
    lines = (cluster.data / "postmaster.pid").read_text().splitlines()
    return ClusterStatus(cluster.root, ClusterState.RUNNING, int(lines[3]))


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _prepare_root(cluster: Cluster) -> None:
    """The folder and its socket folder, owned by the server's user, who must reach them."""
    if len(str(cluster.socket_dir)) > SOCKET_DIR_MAX:
        raise PostgresRefused(f"{cluster.root} is too long a path for PostgreSQL's unix socket "
                              f"({SOCKET_DIR_MAX} characters at most): choose a shorter TAPEFLOW_HOME")
    cluster.socket_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.geteuid() != 0:
        return
    for path in (cluster.root, cluster.socket_dir):
        _own(cluster, path)
    if cluster.run_argv(["test", "-w", str(cluster.socket_dir)]).returncode != 0:
        raise PostgresRefused(f"the {cluster.user} system user cannot reach {cluster.root}: make its parent folders "
                              "searchable (chmod o+x) or choose a TAPEFLOW_HOME it can reach")


def _own(cluster: Cluster, path: Path) -> None:
    if os.geteuid() == 0:
        user = pwd.getpwnam(cluster.user)
        os.chown(path, user.pw_uid, user.pw_gid)


def _init(cluster: Cluster) -> None:
    done = cluster.run("initdb", "-D", str(cluster.data), "-U", cluster.user, "-E", "UTF8", "--locale=C",
                       "-A", "trust", timeout_s=180)
    if done.returncode != 0:
        raise PostgresError(f"initdb failed: {_last_line(done)}")
    hba = cluster.data / "pg_hba.conf"
    hba.write_text("# Written by tapeflow: trust this machine only (the server listens on 127.0.0.1).\n"
                   "local all all trust\n"
                   "host all all 127.0.0.1/32 trust\n"
                   "host all all ::1/128 trust\n")
    _own(cluster, hba)


def _write_settings(cluster: Cluster, port: int) -> None:
    """tapeflow's settings in data/tapeflow.conf, rewritten at each start, included last by postgresql.conf."""
    conf = cluster.data / "tapeflow.conf"
    socket_dir = str(cluster.socket_dir).replace("'", "''")
    conf.write_text("# Written by `tapeflow postgres start` before each start; your own settings go in postgresql.conf.\n"
                    "listen_addresses = '127.0.0.1'\n"
                    f"port = {port}\n"
                    f"unix_socket_directories = '{socket_dir}'\n"
                    f"max_connections = {MAX_CONNECTIONS}\n")
    _own(cluster, conf)
    main = cluster.data / "postgresql.conf"
    if INCLUDE_LINE not in main.read_text():
        with main.open("a") as f:
            f.write(f"\n{INCLUDE_LINE}\n")


def _start(cluster: Cluster) -> None:
    before = cluster.log.stat().st_size if cluster.log.exists() else 0
    done = cluster.run("pg_ctl", "start", "-D", str(cluster.data), "-l", str(cluster.log), "-w",
                       "-t", str(START_TIMEOUT_S), timeout_s=START_TIMEOUT_S + 10)
    if done.returncode != 0:
        raise PostgresError(f"PostgreSQL did not start: {_log_tail(cluster, before) or _last_line(done)} (log: {cluster.log})")


def _ensure_database(cluster: Cluster, port: int) -> None:
    def psql(sql: str) -> subprocess.CompletedProcess[str]:
        return cluster.run("psql", "-X", "-q", "-t", "-A", "-h", "127.0.0.1", "-p", str(port), "-U", cluster.user,
                           "-d", "postgres", "-c", sql)

    exists = f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"
    if psql(exists).stdout.strip() == "1":
        return
    created = psql(f"CREATE DATABASE {DATABASE}")
    # a second `start` at the same moment may have created it first
    if created.returncode != 0 and psql(exists).stdout.strip() != "1":
        raise PostgresError(f"creating the {DATABASE} database failed: {_last_line(created)} (log: {cluster.log})")


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    return lines[-1] if lines else f"exit {done.returncode}"


def _log_tail(cluster: Cluster, since: int) -> str:
    """The server's last FATAL or ERROR line after byte `since` of its log: why this start failed, in its words."""
    try:
        with cluster.log.open("rb") as f:
            f.seek(since)
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    return next((line.strip() for line in reversed(lines) if "FATAL" in line or "ERROR" in line), "")


postgres_app = typer.Typer(no_args_is_help=True, help=__doc__)

PortOption = Annotated[int, typer.Option(min=1, max=65535, help="port on 127.0.0.1")]
BinDirOption = Annotated[Path | None, typer.Option(
    envvar=PG_BIN_ENV, help="folder of PostgreSQL's programs (initdb, pg_ctl, psql); default the newest under "
    "/usr/lib/postgresql, else PATH")]


def _root() -> Path:
    return (load_settings().home / "postgres").resolve()


def _answer(work: Callable[[], T]) -> T:
    """`work`'s result, or its failure in one line: exit 2 for what the user fixes, 1 otherwise."""
    try:
        return work()
    except PostgresRefused as exc:
        refuse(str(exc))
    except PostgresError as exc:
        err.print(str(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(1) from None


@postgres_app.command()
def start(port: PortOption = DEFAULT_PORT, bin_dir: BinDirOption = None) -> None:
    """Start the local cluster (creating it the first time) and print the URL Prefect's server takes."""
    root = _root()
    url = _answer(lambda: ensure_local_postgres(root, port, bin_dir))
    out.print(f"PostgreSQL runs on 127.0.0.1:{port}, database {DATABASE}: {url} (cluster and log in {root})",
              soft_wrap=True, markup=False, highlight=False)
    out.print("Prefect's server runs on it with this in its environment:", markup=False, highlight=False)
    out.print(f"PREFECT_API_DATABASE_CONNECTION_URL={url}", soft_wrap=True, markup=False, highlight=False)


@postgres_app.command()
def stop(bin_dir: BinDirOption = None) -> None:
    """Stop the local cluster; its data stays for the next start."""
    root = _root()
    stopped = _answer(lambda: stop_local_postgres(root, bin_dir))
    out.print(f"stopped PostgreSQL (cluster in {root})" if stopped else f"PostgreSQL was not running (cluster in {root})",
              soft_wrap=True, markup=False, highlight=False)


@postgres_app.command()
def status(bin_dir: BinDirOption = None) -> None:
    """Whether the local cluster runs, and on which port; exits 1 when it does not."""
    found = _answer(lambda: local_postgres_status(_root(), bin_dir))
    out.print(found.line(), soft_wrap=True, markup=False, highlight=False)
    if found.state is not ClusterState.RUNNING:
        raise typer.Exit(1)
