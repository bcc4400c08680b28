"""Soak: `tapeflow serve` on SQLite or PostgreSQL, three deployment runs at once, and
`tapeflow demo` beside the stack in the same TAPEFLOW_HOME; then every log is searched for
`database is locked`.

    .venv/bin/python bench/soak_postgres.py --database postgres
    .venv/bin/python bench/soak_postgres.py --database sqlite

Prints one line per run and per log with its count of `database is locked`. Exit 1 if any run
failed or any log has one. Everything lives in a temporary folder, removed at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tapeflow.cli.postgres import ensure_local_postgres, stop_local_postgres
from tapeflow.config import PROJECT_DIR

BIN = Path(sys.executable).parent
READY = re.compile(r"^ready\b", re.MULTILINE)
LOCKED = "database is locked"
RUNS = [
    ("ingest-bars/bundled-spy-minute-bars", {"start": "2011-03-01", "end": "2011-03-04"}),
    ("backtest/backtest-opening-range", {}),
    ("walk-forward/walk-forward-sma-cross", {}),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(serve: subprocess.Popen, out: Path, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if READY.search(out.read_text(errors="replace")):
            return
        if serve.poll() is not None:
            raise SystemExit(f"tapeflow serve exited {serve.returncode}:\n{out.read_text()[-3000:]}")
        time.sleep(0.5)
    raise SystemExit("tapeflow serve was not ready in time")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="postgres")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tapeflow-soak-"))
    root.chmod(0o711)  # as root, the postgres user must reach its cluster below
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TAPEFLOW_"))}
    env.update(TAPEFLOW_HOME=str(root / "home"), PYTHONUNBUFFERED="1", TAPEFLOW_LOCK_TIMEOUT_S="120")
    port = free_port()
    if args.database == "postgres":
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = ensure_local_postgres(root / "pg", free_port())
    out = root / "serve.out"
    serve = subprocess.Popen([str(BIN / "tapeflow"), "serve", "--database", args.database, "--port", str(port),
                              "--reports-port", str(free_port())],
                             env=env, cwd=PROJECT_DIR, stdout=out.open("w"), stderr=subprocess.STDOUT,
                             start_new_session=True)
    failed = 0
    try:
        wait_ready(serve, out)
        api_env = {**env, "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
        prefect = str(BIN / "prefect")
        subprocess.run([prefect, "deployment", "run", "ingest-bars/bundled-daily-bars", "--watch"], env=api_env,
                       cwd=PROJECT_DIR, capture_output=True, check=True)
        subprocess.run([prefect, "deployment", "run", "ingest-universe/bundled-universes", "--watch"], env=api_env,
                       cwd=PROJECT_DIR, capture_output=True, check=True)
        # The backtest reads minute bars that the concurrent ingest only writes again.
        subprocess.run([prefect, "deployment", "run", "ingest-bars/bundled-spy-minute-bars", "--watch"], env=api_env,
                       cwd=PROJECT_DIR, capture_output=True, check=True)
        started = time.monotonic()
        runs = [subprocess.Popen([prefect, "deployment", "run", name, "--watch",
                                  *[f"--param={k}={v}" for k, v in params.items()]],
                                 env=api_env, cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for name, params in RUNS]
        # The demo beside the stack: its own flows, the same warehouse file.
        demo = subprocess.run([str(BIN / "tapeflow"), "demo"], env=env, cwd=PROJECT_DIR, capture_output=True, text=True)
        print(f"demo: exit {demo.returncode}, {LOCKED!r} x{(demo.stdout + demo.stderr).count(LOCKED)}")
        if demo.returncode:
            print("  " + "\n  ".join((demo.stdout + demo.stderr).strip().splitlines()[-4:]))
        failed += demo.returncode != 0
        for (name, _), run in zip(RUNS, runs, strict=True):
            text, _ = run.communicate(timeout=900)
            ok = run.returncode == 0 and "Completed" in text
            failed += not ok
            print(f"{name}: {'completed' if ok else 'FAILED'}")
            if not ok:
                print("  " + "\n  ".join(text.strip().splitlines()[-4:]))
        print(f"three runs and the demo: {time.monotonic() - started:.0f} s")
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
        if args.database == "postgres":
            stop_local_postgres(root / "pg")
    for log in sorted((root / "home" / "logs").glob("*.log")):
        count = log.read_text(errors="replace").count(LOCKED)
        failed += count > 0
        print(f"{log.name}: {LOCKED!r} x{count}")
    shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
