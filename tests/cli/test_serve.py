"""End to end: `tapeflow serve` brings the local Prefect stack up, a `prefect deployment run` of
the minute ingest completes on its worker and lands in the warehouse, and SIGTERM stops it all.

This starts real processes (Prefect server, worker, flow run) from the project's virtualenv,
in a fresh PREFECT_HOME and TAPEFLOW_HOME, on a free port of 127.0.0.1. Everything it starts is
in one new session / process group, which the test kills on its way out whatever happened.
"""

from __future__ import annotations

import csv
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TAPEFLOW = BIN / "tapeflow"
PREFECT = BIN / "prefect"
MINUTE_FILE = PROJECT_DIR / "data" / "intraday" / "nt-spy-minute-2011-03.csv"
DAY = date(2011, 3, 1)

READY = re.compile(r"^ready\b", re.MULTILINE)  # the line serve prints once the worker is started
READY_TIMEOUT_S = 150
RUN_TIMEOUT_S = 120
STOP_TIMEOUT_S = 30

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (TAPEFLOW.exists() and PREFECT.exists()) or not hasattr(os, "killpg"),
        reason="needs the virtualenv's tapeflow and prefect console scripts, on POSIX",
    ),
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_refuses(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
        return False


def expected_minute_bars(day: date) -> int:
    """SPY minute bars whose start lies in New York day `day`, counted from the file itself.

    Stamps are bar END times in UTC (`yyyymmdd HHMMSS;o;h;l;c;v`); the bar starts a minute earlier.
    """
    new_york = ZoneInfo("America/New_York")
    n = 0
    with MINUTE_FILE.open(newline="") as f:
        for row in csv.reader(f, delimiter=";"):
            end = datetime.strptime(row[0], "%Y%m%d %H%M%S").replace(tzinfo=UTC)
            if (end - timedelta(minutes=1)).astimezone(new_york).date() == day:
                n += 1
    return n


class Output:
    """Collects a process's merged stdout/stderr on a thread, so reads never block the test."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self._chunks: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _pump(self, stream) -> None:
        for line in iter(stream.readline, ""):
            with self._lock:
                self._chunks.append(line)
        stream.close()

    @property
    def text(self) -> str:
        with self._lock:
            return "".join(self._chunks)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def log_tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"--- {path.name}: missing"
    tail = path.read_text(errors="replace").splitlines()[-lines:]
    return f"--- {path.name} (last {len(tail)} lines):\n" + "\n".join(tail)


def descendants(root: int) -> set[int]:
    """PIDs below `root` in the process tree (Linux /proc; empty elsewhere)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Field 4 is the ppid; the command name (field 2) may hold spaces, so split after ")".
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not Path("/proc").is_dir()
    return state != "Z"


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def wait_for(predicate, timeout_s: float, interval_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()


def stack_env(tmp_path: Path) -> dict[str, str]:
    """The caller's environment minus any Prefect or tapeflow settings, plus a fresh home for each."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TAPEFLOW_"))}
    env.update(
        TAPEFLOW_HOME=str(tmp_path / "home"),
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        DO_NOT_TRACK="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        # `serve` prints through rich to a pipe: flush each line so "ready" arrives when printed.
        PYTHONUNBUFFERED="1",
    )
    return env


def run_cli(argv: list[str], env: dict[str, str], timeout_s: float) -> subprocess.CompletedProcess:
    """Run a short-lived command in its own process group; kill the group if it overstays."""
    proc = subprocess.Popen(argv, env=env, cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{' '.join(argv[:3])} ... did not finish in {timeout_s:g} s:\n{out[-4000:]}")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything it left behind in its group
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(argv, proc.returncode, out, None)


def kill_group(proc: subprocess.Popen, extra: set[int]) -> None:
    """Clean-up whatever happened: SIGTERM to serve (it stops its children), then SIGKILL to its
    process group and to any descendant seen outside it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid in extra:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if proc.poll() is None:
        proc.wait(timeout=10)


def test_serve_runs_minute_ingest_deployment_and_stops_on_sigterm(tmp_path: Path) -> None:
    expected = expected_minute_bars(DAY)
    assert expected > 0, "the bundled minute file has no bars on the test day"

    port = free_port()
    env = stack_env(tmp_path)
    logs = tmp_path / "home" / "logs"
    api_env = {**env, "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}

    serve = subprocess.Popen(
        [str(TAPEFLOW), "serve", "--port", str(port), "--reports-port", str(free_port())],
        env=env, cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    output = Output(serve)
    seen: set[int] = set()  # every descendant of serve observed while the stack was up

    def diagnostics(what: str) -> str:
        return "\n".join([what, "--- tapeflow serve output:", output.text[-6000:],
                          log_tail(logs / "server.log"), log_tail(logs / "worker-warehouse.log"), log_tail(logs / "worker-compute.log")])

    t0 = time.monotonic()

    def phase(name: str) -> None:  # shown with -s, or in the captured output of a failure
        print(f"[{time.monotonic() - t0:6.1f} s] {name}", flush=True)

    try:
        # 1. `tapeflow serve` comes up.
        up = wait_for(lambda: READY.search(output.text) is not None or serve.poll() is not None,
                      READY_TIMEOUT_S, 0.25)
        if serve.poll() is not None:
            pytest.fail(diagnostics(f"tapeflow serve exited with code {serve.returncode} before ready"))
        if not up:
            pytest.fail(diagnostics(f"tapeflow serve not ready within {READY_TIMEOUT_S} s"))
        seen |= descendants(serve.pid)
        phase("serve ready")

        # 2. A deployment run of the minute ingest completes on the stack's worker.
        run = run_cli(
            [str(PREFECT), "deployment", "run", "ingest-bars/bundled-spy-minute-bars",
             "--param", f"start={DAY}", "--param", f"end={DAY}",
             "--watch", "--watch-timeout", str(RUN_TIMEOUT_S)],
            api_env, RUN_TIMEOUT_S + 15,
        )
        seen |= descendants(serve.pid)
        assert run.returncode == 0, diagnostics(f"prefect deployment run exited {run.returncode}:\n{run.stdout}")
        assert serve.poll() is None, diagnostics("tapeflow serve exited during the flow run")
        phase("deployment run completed")

        # 3. Its rows are in the warehouse, and the run is recorded with what it fetched.
        sql_env = {**env, "TAPEFLOW_LOCK_TIMEOUT_S": "10"}
        bars = run_cli([str(TAPEFLOW), "sql", "SELECT count(*) AS n FROM bars WHERE timeframe='1m'",
                        "--format", "csv"], sql_env, 60)
        assert bars.returncode == 0, bars.stdout
        assert bars.stdout.split() == ["n", str(expected)], bars.stdout
        runs = run_cli([str(TAPEFLOW), "sql", "SELECT source, fetched FROM ingest_runs", "--format", "csv"],
                       sql_env, 60)
        assert runs.returncode == 0, runs.stdout
        assert runs.stdout.split() == ["source,fetched", f"replay,{expected}"], runs.stdout
        phase("warehouse checked")

        # 4. SIGTERM to serve alone (as a supervisor sends it) stops the whole stack cleanly.
        seen |= descendants(serve.pid)
        assert seen, "tapeflow serve has no child processes while up"
        serve.send_signal(signal.SIGTERM)
        try:
            code = serve.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(diagnostics(f"tapeflow serve still running {STOP_TIMEOUT_S} s after SIGTERM"))
        output.join(timeout=5)
        assert code == 0, diagnostics(f"tapeflow serve exited {code} on SIGTERM")
        assert re.search(r"^stopped$", output.text, re.MULTILINE), diagnostics("no 'stopped' in the output")
        assert wait_for(lambda: group_gone(serve.pid), 5), (
            "processes of tapeflow serve's group outlived it: "
            + ", ".join(str(p) for p in sorted(seen) if alive(p))
        )
        left = [p for p in sorted(seen) if alive(p)]
        assert not left, f"child processes of tapeflow serve outlived it: {left}"
        assert port_refuses(port), f"port {port} still accepts connections after serve stopped"
        phase(f"stopped; {len(seen)} child processes seen, none left")
    finally:
        kill_group(serve, seen)
