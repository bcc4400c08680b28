"""What watching a trading day costs: a replayed opening-range day (2011-03-03, 395 cycles) with
no observer, with an observer that does nothing (the session's cost of building each cycle's
view), and with the Prefect view (progress, book table, events, against a local Prefect API).

    .venv/bin/python bench/bench_session_view.py --runs 3

Every way must trade the same day (the script checks the fills) before its time counts.
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
os.environ.pop("PREFECT_API_URL", None)

from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from flows.ingest import ingest_bars  # noqa: E402
from flows.session_view import PrefectSessionView  # noqa: E402
from tapeflow.config import load_settings  # noqa: E402
from tapeflow.live.launch import replay_session  # noqa: E402
from tapeflow.model import Timeframe  # noqa: E402
from warehouse import open_warehouse  # noqa: E402

DAY = date(2011, 3, 3)


class Idle:
    """An observer that takes every call and does nothing with it."""

    def on_start(self, *args: object) -> None: ...
    def on_cycle(self, view: object) -> None: ...
    def on_fill(self, fill: object) -> None: ...
    def on_guard(self, *args: object) -> None: ...
    def on_finish(self, *args: object) -> None: ...


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with prefect_test_harness(server_startup_timeout=120):
        ingest_bars(source="replay", symbols=["SPY"], timeframe=Timeframe.MINUTE, start=date(2011, 3, 1),
                    end=date(2011, 3, 4))
        settings = load_settings()
        warehouse = open_warehouse(settings)
        ways = {"no observer": lambda: None, "idle observer": Idle, "Prefect view": PrefectSessionView}
        times: dict[str, list[float]] = {name: [] for name in ways}
        fills: set[int] = set()
        cycles = 0
        for _ in range(args.runs):  # interleaved, so drifting load hits every way alike
            for name, make in ways.items():
                launched = replay_session(settings, warehouse, "opening_range", DAY, None, fresh=True, observer=make())
                start = time.perf_counter()
                [report] = launched.run()
                times[name].append(time.perf_counter() - start)
                fills.add(report.fills)
                cycles = report.cycles
        assert len(fills) == 1, f"the ways traded differently: fills {fills}"
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}; {cycles} cycles a day, {fills.pop()} fills, {args.runs} runs each")
    base = statistics.median(times["no observer"])
    print("| way | median day | per cycle | ratio to no observer |\n|---|---:|---:|---:|")
    for name, measured in times.items():
        day = statistics.median(measured)
        print(f"| {name} | {day:.2f} s | {1000 * day / cycles:.1f} ms | {day / base:.2f} |")


if __name__ == "__main__":
    main()
