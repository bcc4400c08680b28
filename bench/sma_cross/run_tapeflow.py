"""tapeflow's side of the SMA-crossover benchmark: `strategies.sma_cross.SmaCross` signals
through `tapeflow.backtest.engine.simulate`, configured per SMA_CROSS_RULES.md.

The backtest (what "warm" times) starts from the bars in memory as a polars frame and ends
with the fill list and final equity in hand: History (cast + sort), signals, simulate.
Several symbols (shape B) run as one book with 1,000,000 x symbols of cash: rules §6 allow
it, cash never binds, and the totals are the same as 100 separate books.

    .venv/bin/python bench/sma_cross/run_tapeflow.py once A      # the cold run: a fresh process
    .venv/bin/python bench/sma_cross/run_tapeflow.py warm A --runs 5
    .venv/bin/python bench/sma_cross/run_tapeflow.py agree A s10 OUT_STEM
    .venv/bin/python bench/sma_cross/run_tapeflow.py profile A
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import polars as pl  # noqa: E402
from common import (  # noqa: E402
    CASH_PER_SYMBOL,
    FAST,
    MINIMUM,
    PER_SHARE,
    QTY,
    SLOW,
    VARIANTS,
    Outcome,
    bar_length,
    fill_frame,
    load,
    peak_rss_mb,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for a plain checkout

from strategies.sma_cross import SmaCross  # noqa: E402
from tapeflow.backtest.config import BacktestConfig  # noqa: E402
from tapeflow.backtest.costs import Commission, Costs, Slippage  # noqa: E402
from tapeflow.backtest.engine import simulate  # noqa: E402
from tapeflow.risk.policy import RULES_OFF  # noqa: E402
from tapeflow.strategy.history import History  # noqa: E402

_T_IMPORTED = time.perf_counter()
ROOT = Path(__file__).resolve().parents[2]
ENGINE_FILES = ["tapeflow/backtest/engine.py", "tapeflow/backtest/fast.py", "tapeflow/backtest/fills.py",
                "tapeflow/backtest/costs.py", "tapeflow/risk/policy.py", "tapeflow/strategy/history.py", "strategies/sma_cross.py",
                "tapeflow/strategy/base.py"]


def engine_sha256() -> str:
    """Which tapeflow this measured (tapeflow/sim is being worked on while benchmarks run)."""
    import hashlib

    return hashlib.sha256(b"".join((ROOT / f).read_bytes() for f in ENGINE_FILES)).hexdigest()[:16]


def with_ends(bars: pl.DataFrame, length: str) -> pl.DataFrame:
    """Rules §1: a bar labelled ts covers [ts, ts + length) and is knowable at its end."""
    return bars.with_columns((pl.col("ts").dt.offset_by(length)).alias("end_ts"))


def config(bps: int, n_symbols: int) -> BacktestConfig:
    extra = {}
    if "buying_power_multiple" in {f.name for f in dataclasses.fields(BacktestConfig)}:
        extra["buying_power_multiple"] = None  # rules §5: no cash constraint ever binds
    if "policy" in {f.name for f in dataclasses.fields(BacktestConfig)}:
        extra["policy"] = RULES_OFF  # rules §5: fixed quantities, no cap, no breaker
    return BacktestConfig(
        cash=CASH_PER_SYMBOL * n_symbols,
        costs=Costs(commission=Commission(per_share=PER_SHARE, minimum=MINIMUM), slippage=Slippage(bps=bps)),
        **extra,
    )


def backtest(bars: pl.DataFrame, bps: int) -> Outcome:
    """bars: symbol, ts, end_ts, OHLCV (polars, in memory)."""
    history = History(bars)
    signals = SmaCross(fast=FAST, slow=SLOW, qty=QTY).signals(history)
    result = simulate(history.bars, signals, config(bps, history.bars["symbol"].n_unique()))
    fills = result.fills.select("symbol", pl.col("ts").dt.epoch("us"), "side", "qty", "price")
    return Outcome(fill_frame(fills), result.final_equity)


def load_bars(name: str, head: int | None = None) -> pl.DataFrame:
    return with_ends(load(name, head), bar_length(name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["once", "warm", "agree", "profile"])
    parser.add_argument("data")
    parser.add_argument("variant", nargs="?", default="s0", choices=list(VARIANTS))
    parser.add_argument("out", nargs="?")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    bps = VARIANTS[args.variant]

    t_load = time.perf_counter()
    bars = load_bars(args.data)
    t_loaded = time.perf_counter()

    if args.mode == "once":
        outcome = backtest(bars, bps)
        t_done = time.perf_counter()
        print(json.dumps({
            "engine": "tapeflow", "data": args.data, "imports_s": _T_IMPORTED - _T0, "load_s": t_loaded - t_load,
            "backtest_s": t_done - t_loaded, "in_process_s": t_done - _T0, "peak_rss_mb": peak_rss_mb(),
            "engine_sha256": engine_sha256(), **outcome.summary(),
        }))
    elif args.mode == "warm":
        times = []
        outcome = None
        for _ in range(args.runs + 1):  # the first run is the in-process cold one
            start = time.perf_counter()
            outcome = backtest(bars, bps)
            times.append(time.perf_counter() - start)
        print(json.dumps({
            "engine": "tapeflow", "data": args.data, "first_s": times[0], "warm_s": times[1:],
            "warm_median_s": statistics.median(times[1:]), "peak_rss_mb": peak_rss_mb(),
            "engine_sha256": engine_sha256(), **outcome.summary(),
        }))
    elif args.mode == "agree":
        outcome = backtest(bars, bps)
        outcome.save(Path(args.out))
        print(json.dumps({**outcome.summary(), "engine_sha256": engine_sha256()}))
    else:
        import cProfile
        import pstats

        backtest(bars, bps)  # warm
        profiler = cProfile.Profile()
        profiler.enable()
        backtest(bars, bps)
        profiler.disable()
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(30)
        stats.sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
