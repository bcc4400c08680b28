"""What a trading-session cycle costs: replayed cycles (a minute apart from 09:25 New York) on
the simulated broker, of the opening-range strategy on one symbol (the whole day, to the
close), and of the same breakout on 100 watchlist candidates (the names of the pre-market
snapshot; the first `--cycles` minutes: the range, then the breakouts), on generated minute
bars in a temporary warehouse, with this tree and, as the peer, git HEAD (or `--base REV`)
checked out beside it: the whole package of each, strategy and warehouse included.

    .venv/bin/python bench/bench_session_cycles.py --runs 5 --cycles 60

Each day runs in a process of its own, on the tree it measures (the timer starts once the
session is built, so imports do not count); runs are interleaved so that drifting load hits
both alike, and both must trade the same day (fills and realised P&L) before their times count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
# A worker imports the tree it measures (`--tree`), this checkout's or the peer's.
TREE = Path(sys.argv[sys.argv.index("--tree") + 1]) if "--tree" in sys.argv else ROOT
sys.path.insert(0, str(TREE))

from tapeflow.backtest.costs import Costs  # noqa: E402
from tapeflow.brokers.execution import Execution  # noqa: E402
from tapeflow.brokers.ledger import Ledger  # noqa: E402
from tapeflow.calendar.exchange import NEW_YORK, get_calendar  # noqa: E402
from tapeflow.live.clock import SimulatedClock  # noqa: E402
from tapeflow.live.feed import WarehouseFeed  # noqa: E402
from tapeflow.live.launch import START  # noqa: E402
from tapeflow.live.session import TradingSession  # noqa: E402
from tapeflow.model import Mode, Timeframe  # noqa: E402
from tapeflow.strategy.base import Strategy, signal_frame  # noqa: E402
from tapeflow.strategy.history import History  # noqa: E402
from tapeflow.strategy.registry import get_strategy  # noqa: E402
from tapeflow.venues.simulator import SimBroker  # noqa: E402
from warehouse.connection import Warehouse  # noqa: E402
from warehouse.upsert import upsert  # noqa: E402

DAY = date(2023, 11, 21)  # a full session: 390 regular minutes
SIZES = (1, 100)
OpeningRange = get_strategy("opening_range")


class WatchlistBreakout(OpeningRange):  # type: ignore[misc,valid-type]
    """The opening-range breakout on the names of the latest pre-market watchlist snapshot."""

    name = "watchlist_breakout"
    uses_watchlist = True

    def signals(self, history: History) -> pl.DataFrame:
        snapshots = history.watchlist.filter(pl.col("session") == "pre_market")
        if snapshots.is_empty():
            return signal_frame([])
        candidates = snapshots.filter(pl.col("as_of") == pl.col("as_of").max())["ticker"].to_list()
        return super().signals(history.only(candidates))


def store_day(warehouse: Warehouse, symbols: int, seed: int = 7) -> None:
    """A random-walk session of minute bars per symbol (with the previous session's last
    minutes: the data is fresh at the open) and a pre-market watchlist snapshot naming them."""
    rng = np.random.default_rng(seed)
    calendar = get_calendar()
    session = calendar.session(DAY)
    before = calendar.previous_close(session.open)
    starts = [before - timedelta(minutes=k) for k in range(5, 0, -1)]
    minutes = int((session.close - session.open).total_seconds() // 60)
    starts += [session.open + timedelta(minutes=k) for k in range(minutes)]
    frames, now = [], datetime.now(UTC)
    names = [f"S{n:03d}" for n in range(symbols)]
    for name in names:
        walk = 20.0 * np.exp(np.cumsum(rng.normal(0.0003, 0.002, len(starts))))  # drifting up: ranges break
        close = np.round(walk, 2)
        open_ = np.round(np.concatenate([[close[0]], close[:-1]]), 2)
        frames.append(pl.DataFrame({
            "symbol": name, "timeframe": "1m", "ts": starts, "end_ts": [t + timedelta(minutes=1) for t in starts],
            "open": open_, "high": np.maximum(open_, close) + 0.01, "low": np.minimum(open_, close) - 0.01,
            "close": close, "volume": rng.integers(50_000, 500_000, len(starts)).astype(float), "source": "bench",
            "adjustment": "raw", "ingested_at": now}))
    bars = pl.concat(frames).with_columns(pl.col("ts", "end_ts", "ingested_at").dt.cast_time_unit("us"))
    as_of = session.open - timedelta(minutes=30)
    watchlist = pl.DataFrame({"source": "bench", "session": "pre_market", "as_of": as_of, "ticker": names,
                              "rank": list(range(1, symbols + 1)), "score": [90.0] * symbols,
                              "fetched_at": as_of + timedelta(seconds=5), "payload_hash": "bench"})
    with warehouse.write() as con:
        columns = [c[0] for c in con.execute("DESCRIBE bars").fetchall()]
        upsert(con, "bars", bars.select([c for c in columns if c in bars.columns]), ("symbol", "timeframe", "ts"),
               bookkeeping=("ingested_at",))
        columns = [c[0] for c in con.execute("DESCRIBE watchlist_snapshots").fetchall()]
        watchlist = watchlist.with_columns(pl.col("as_of", "fetched_at").dt.cast_time_unit("us").dt.replace_time_zone("UTC"))
        upsert(con, "watchlist_snapshots", watchlist.select([c for c in columns if c in watchlist.columns]),
               ("source", "session", "as_of", "ticker"))


def run_day(seeded: Path, work: Path, cycles: int | None) -> tuple[float, int, int, float]:
    """One replayed day (or its first `cycles` and the close's bookkeeping) in a copy of `seeded`,
    as `replay_session` wires it: seconds, cycles, fills, P&L."""
    path = work / f"run-{time.monotonic_ns()}.duckdb"
    shutil.copyfile(seeded, path)
    warehouse = Warehouse(path)
    strategy: Strategy = OpeningRange() if cycles is None else WatchlistBreakout()
    clock = SimulatedClock(datetime.combine(DAY, START, NEW_YORK))
    broker = SimBroker(warehouse, cash=1_000_000.0, costs=Costs(), now=clock)
    execution = Execution(broker, Ledger(warehouse, broker.name, Mode.PAPER))
    feed = WarehouseFeed(warehouse, Timeframe.MINUTE, warmup_bars=strategy.warmup_bars())
    for bar in feed.latest_bars(clock.now()):
        broker.on_bar(bar)
    trading = TradingSession(strategy, execution, feed, clock, warehouse, day=DAY, market=broker,
                             hold_warehouse=True, alert=lambda *_: None)
    start = time.perf_counter()
    if cycles is None:
        report = trading.run()
    else:  # what `run` does, for the first cycles only
        session = get_calendar().session(DAY)
        with warehouse.held():
            trading.prepare(session)
            for _ in range(cycles):
                trading.cycle(session)
                clock.sleep(60)  # cycles a minute apart, on the minute
            report = trading.finish(session)
    seconds = time.perf_counter() - start
    path.unlink()
    path.with_suffix(".duckdb.wal").unlink(missing_ok=True)
    return seconds, report.cycles, report.fills, round(report.realized_pnl or 0.0, 6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cycles", type=int, default=60, help="cycles of the 100-candidate replay")
    parser.add_argument("--base", default="HEAD", help="the git revision that is the peer")
    parser.add_argument("--tree", help=argparse.SUPPRESS)  # a worker: the tree it imports (read above)
    parser.add_argument("--day", nargs=3, metavar=("SEEDED", "WORK", "CYCLES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.day:  # a worker: one day, its figures as JSON on the last line
        seeded, work, cycles = args.day
        print(json.dumps(run_day(Path(seeded), Path(work), int(cycles) or None)))
        return
    work = Path(tempfile.mkdtemp(prefix="bench-cycles-"))
    peer = work / "peer"
    try:
        subprocess.run(["git", "worktree", "add", "--detach", str(peer), args.base], cwd=ROOT, check=True,
                       capture_output=True)
        ways = {"this tree": ROOT, args.base: peer}
        seeded = {}
        for n in SIZES:
            seeded[n] = work / f"seed-{n}.duckdb"
            store_day(Warehouse(seeded[n]), n)
        times: dict[tuple[int, str], list[float]] = {(n, w): [] for n in SIZES for w in ways}
        traded: dict[tuple[int, str], set[tuple[int, float]]] = {key: set() for key in times}
        cycles: dict[int, int] = {}
        for _ in range(args.runs):  # interleaved, so drifting load hits every way alike
            for n in SIZES:
                for name, tree in ways.items():
                    day = subprocess.run(
                        [sys.executable, __file__, "--tree", str(tree), "--day", str(seeded[n]), str(work),
                         str(0 if n == 1 else args.cycles)], capture_output=True, text=True, check=True)
                    seconds, cycles[n], fills, pnl = json.loads(day.stdout.strip().splitlines()[-1])
                    times[n, name].append(seconds)
                    traded[n, name].add((fills, pnl))
        for n in SIZES:
            outcomes = {w: traded[n, w] for w in ways}
            assert all(len(o) == 1 for o in outcomes.values()) and len({frozenset(o) for o in outcomes.values()}) == 1, \
                f"{n} symbols: the ways traded differently: {outcomes}"
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(peer)], cwd=ROOT, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}; {args.runs} runs each, medians")
    print(f"| symbols | session | cycles | fills | median run | per cycle | ratio to {args.base} |\n|---:|---|---:|---:|---:|---:|---:|")
    for n in SIZES:
        base = statistics.median(times[n, args.base])
        for name in ways:
            day = statistics.median(times[n, name])
            (fills, _), = traded[n, name]
            print(f"| {n} | {name} | {cycles[n]} | {fills} | {day:.2f} s | {1000 * day / cycles[n]:.1f} ms | "
                  f"{day / base:.2f} |")


if __name__ == "__main__":
    main()
