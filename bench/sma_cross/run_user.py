"""tapeflow's side of the user-path and realistic-order timings (issue 20), in one process.

`warm`: what `tapeflow backtest sma_cross --bars FILE` runs, with the CLI's defaults read off the
command itself (cash, cost preset, price adjustment; the default execution policy and buying power
check of BacktestConfig), on the History the CLI builds from the file (`load_bar_file`, untimed).
Timed, bars in memory: the strategy's signals + `simulate` (the engine warm with the defaults).

`realistic`: the SMA rules' market-only configuration (run_tapeflow.py: fixed 100 shares, rules
off, flat commission, no buying power check) and the realistic one (the same plus a 2% stop under
each entry's fill, slippage by each name's liquidity, at most 10% of a bar's volume), interleaved
in one process so that the ratio between them is of the same moments. Timed: History + signals +
simulate, as run_tapeflow.py's warm.

    .venv/bin/python bench/sma_cross/run_user.py warm A --runs 3
    .venv/bin/python bench/sma_cross/run_user.py realistic A --runs 5

The last stdout line is JSON; the first run is reported apart (`first_s`), medians are of the rest.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import statistics
import time
from collections.abc import Callable

from common import MINIMUM, PER_SHARE, data_path, peak_rss_mb
from run_tapeflow import FAST, QTY, ROOT, SLOW, config, engine_sha256, load_bars  # also puts the repository root on sys.path

from strategies.sma_cross import SmaCross
from tapeflow.backtest.bar_file import load_bar_file
from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.costs import Commission, Costs, Slippage, cost_preset
from tapeflow.backtest.engine import BacktestResult, simulate
from tapeflow.backtest.slippage import BY_LIQUIDITY
from tapeflow.risk.policy import RULES_OFF
from tapeflow.strategy.history import History

STOP_LOSS = 0.02
PARTICIPATION = 0.10
# The liquidity model of the CLI's default preset (retail-default): each name's spread from its
# own measured ADV, plus square-root impact; the small-cap preset would fix a class spread instead.
LIQUIDITY = BY_LIQUIDITY


CODE_GLOBS = ("tapeflow/backtest/*.py", "tapeflow/risk/*.py", "tapeflow/strategy/*.py", "strategies/sma_cross.py",
              "tapeflow/cli/backtest.py")


def code_sha256() -> str:
    """Which code these paths ran: every file the CLI's backtest goes through that is likely to
    change for speed (wider than run_tapeflow's engine_sha256, which the SMA table quotes)."""
    import hashlib

    files = sorted({p for pattern in CODE_GLOBS for p in ROOT.glob(pattern)})
    return hashlib.sha256(b"".join(p.relative_to(ROOT).as_posix().encode() + p.read_bytes() for p in files)).hexdigest()[:16]


def cli_defaults() -> dict[str, object]:
    """The defaults of `tapeflow backtest`'s options, read off the command so that the bench
    follows the CLI when they change."""
    from tapeflow.cli.main import app  # deferred: the CLI's imports, only for the command's signature

    (command,) = [c.callback for c in app.registered_commands
                  if (c.name or getattr(c.callback, "__name__", "")) == "backtest"]
    params = inspect.signature(command).parameters
    return {name: params[name].default for name in ("cash", "costs", "adjust")}


def cli_config() -> BacktestConfig:
    """The BacktestConfig `tapeflow backtest --bars` builds with no options given."""
    d = cli_defaults()
    return BacktestConfig(cash=float(d["cash"]), costs=cost_preset(str(d["costs"])), adjust=d["adjust"])  # type: ignore[arg-type]


def realistic_config(n_symbols: int) -> BacktestConfig:
    """The SMA rules' configuration with a 2% stop, liquidity slippage and a 10% volume cap."""
    return dataclasses.replace(
        config(0, n_symbols),
        policy=dataclasses.replace(RULES_OFF, stop_loss_pct=STOP_LOSS),
        costs=Costs(commission=Commission(per_share=PER_SHARE, minimum=MINIMUM), slippage=Slippage(model=LIQUIDITY),
                    participation=PARTICIPATION),
    )


def summary(result: BacktestResult) -> dict[str, object]:
    """What a run did: fills, stop fills (the engine names a stop order `...-stop...`), final equity."""
    fills = result.fills
    stops = int(fills["order_id"].str.contains("-stop").sum()) if "order_id" in fills.columns else None
    return {"fills": fills.height, "stop_fills": stops, "final_equity": result.final_equity,
            "sells": int((fills["side"] == "sell").sum())}


def timed(runs: int, steps: dict[str, Callable[[], BacktestResult]]) -> dict[str, dict[str, object]]:
    """Each step `runs + 1` times, interleaved; the first round apart, medians of the rest
    (runs = 0, for steps of minutes: the first round is the measure)."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    last: dict[str, BacktestResult] = {}
    for _ in range(runs + 1):
        for name, step in steps.items():
            start = time.perf_counter()
            last[name] = step()
            times[name].append(time.perf_counter() - start)
    return {name: {"first_s": t[0], "warm_s": t[1:], "warm_median_s": statistics.median(t[1:] or t), **summary(last[name])}
            for name, t in times.items()}


def user_warm(name: str, runs: int) -> dict[str, object]:
    history = load_bar_file(data_path(name), SmaCross.timeframe).history  # as the CLI reads the file
    strategy = SmaCross()  # the CLI's defaults: fast 10, slow 30, qty 100
    cfg = cli_config()

    def engine() -> BacktestResult:
        return simulate(history.bars, strategy.signals(history), cfg, timeframe=strategy.timeframe)

    return {"config": cfg.describe(), "params": dict(strategy.p), **timed(runs, {"defaults": engine})}


def realistic(name: str, runs: int, head: int | None = None) -> dict[str, object]:
    bars = load_bars(name, head)
    strategy = SmaCross(fast=FAST, slow=SLOW, qty=QTY)
    n = bars["symbol"].n_unique()

    def run(cfg: BacktestConfig) -> Callable[[], BacktestResult]:
        def step() -> BacktestResult:
            history = History(bars)
            return simulate(history.bars, strategy.signals(history), cfg)
        return step

    real = realistic_config(n)
    return {"config": real.describe(), **timed(runs, {"market_only": run(config(0, n)), "realistic": run(real)})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["warm", "realistic"])
    parser.add_argument("data")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--head", type=int, help="realistic: each symbol's first HEAD bars only")
    args = parser.parse_args()
    out = user_warm(args.data, args.runs) if args.mode == "warm" else realistic(args.data, args.runs, args.head)
    print(json.dumps({"engine": "tapeflow", "mode": args.mode, "data": args.data, "head": args.head, **out, "peak_rss_mb": peak_rss_mb(),
                      "engine_sha256": engine_sha256(), "code_sha256": code_sha256()}, default=str))


if __name__ == "__main__":
    main()
