"""The demo's walk-forward (sma_cross, 3x3 grid, the daily panel, its universe) on local threads,
and on a Dask cluster of 1 and 2 single-threaded worker processes (TAPEFLOW_DASK_ADDRESS).

    .venv/bin/python bench/bench_dask_research.py --runs 3

Every way must give the same out-of-sample metrics (the script checks) before its time counts.
Each cluster gets one untimed warm-up run first: its workers import tapeflow and Prefect then.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import date

for name, value in {"PREFECT_HOME": tempfile.mkdtemp(prefix="bench-prefect-"), "TAPEFLOW_HOME": tempfile.mkdtemp(
        prefix="bench-home-"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING"}.items():
    os.environ[name] = value  # before Prefect reads its settings
for name in ("PREFECT_API_URL", "TAPEFLOW_DASK_ADDRESS"):
    os.environ.pop(name, None)

from distributed import Client, LocalCluster, get_task_stream  # noqa: E402
from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from flows.ingest import ingest_bars  # noqa: E402
from flows.research import walk_forward  # noqa: E402
from flows.universe import ingest_universe  # noqa: E402
from tapeflow.model import Timeframe  # noqa: E402
from tapeflow.sources.universe_files import PANEL_UNIVERSE  # noqa: E402

ARGS = dict(strategy="sma_cross", grid={"fast": [8, 10, 12], "slow": [24, 30, 36], "qty": [0]},
            start=date(2009, 8, 21), end=date(2010, 8, 20), costs="retail-default", universe=PANEL_UNIVERSE)


def timed(runs: int) -> tuple[list[float], dict]:
    """Wall seconds of each walk-forward run, and the last run's summary."""
    times, summary = [], {}
    for _ in range(runs):
        began = time.perf_counter()
        summary = walk_forward(**ARGS)
        times.append(time.perf_counter() - began)
    return times, summary


def outcome(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in ("run_id", "report")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with prefect_test_harness():
        ingest_bars(source="replay", timeframe=Timeframe.DAY, start=ARGS["start"], end=ARGS["end"])
        ingest_universe()
        rows: list[tuple[str, float]] = []
        local, expected = timed(args.runs)
        rows.append(("local threads (2)", statistics.median(local)))
        for workers in (1, 2):
            with LocalCluster(n_workers=workers, processes=True, threads_per_worker=1, host="127.0.0.1",
                              dashboard_address=None) as cluster, Client(cluster) as client:
                os.environ["TAPEFLOW_DASK_ADDRESS"] = cluster.scheduler_address
                timed(1)  # warm-up: the workers import tapeflow and Prefect
                with get_task_stream(client) as stream:
                    times, summary = timed(args.runs)
                del os.environ["TAPEFLOW_DASK_ADDRESS"]
            folds = [t for t in stream.data if t["key"].startswith("fit_fold")]
            busy = sum(s["stop"] - s["start"] for t in folds for s in t["startstops"] if s["action"] == "compute")
            print(f"{workers} worker(s): {len(folds)} folds on {len({t['worker'] for t in folds})} worker(s), "
                  f"{busy / args.runs:.2f} s of fold compute per walk-forward")
            if outcome(summary) != outcome(expected):
                raise SystemExit(f"{workers} worker(s) gave other results than local threads")
            rows.append((f"Dask, {workers} worker process{'es' if workers > 1 else ''}", statistics.median(times)))
    one = rows[1][1]
    print(f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{expected['folds']} folds x 9 combinations, median of {args.runs}; load {os.getloadavg()[0]:.1f}")
    print("| way | median walk-forward | speed-up vs 1 worker |\n|---|---:|---:|")
    for way, median in rows:
        print(f"| {way} | {median:.2f} s | {one / median:.2f}x |")


if __name__ == "__main__":
    main()
