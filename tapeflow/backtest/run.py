"""One backtest, end to end in memory: a strategy's signals over a history, through the engine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import polars as pl

from tapeflow.backtest.adjust import HOLDING_WORDS, MODE_WORDS, PricedActions, adjusted_signals, price_actions
from tapeflow.backtest.benchmark import Benchmark, buy_and_hold
from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.engine import BacktestResult
from tapeflow.backtest.liquidity import with_liquidity
from tapeflow.backtest.metrics import benchmark_metrics, compute_metrics
from tapeflow.backtest.universe import simulate_in, survivorship_line, universe_line
from tapeflow.ingest.price_jumps import find_jumps
from tapeflow.model import AdjustMode
from tapeflow.risk.policy import Halt
from tapeflow.sources.universe import Membership, Universe
from tapeflow.strategy.base import Strategy
from tapeflow.strategy.history import History

FILL_RULES = (
    "Orders fill only on bars that start at or after the decision (decisions happen at bar ends); "
    "market orders at the next bar's open, OPG at the next regular open, CLS at the next regular close; "
    "limit and stop orders against the bar's high and low, at their price or the open when it gaps "
    "through, never better; slippage on every fill but limit fills."
)


@dataclass(frozen=True)
class Backtest:
    """A finished run: the result, its metrics and the assumptions a report must state; the
    bars it ran on and its buy-and-hold benchmark when known (a run read back from the
    warehouse has neither)."""

    strategy: str
    params: dict[str, int | float]
    result: BacktestResult
    metrics: Mapping[str, object]
    assumptions: dict[str, object]
    bars: pl.DataFrame | None = None
    benchmark: Benchmark | None = None


def run_backtest(strategy: Strategy, history: History, config: BacktestConfig = BacktestConfig(), *, universe: str = "",
                 start: datetime | None = None, halts: Sequence[Halt] = (), members: Membership | None = None,
                 record: Universe | None = None) -> Backtest:
    """Signals from `strategy` over `history`, simulated under `config`: decisions from `start`
    (the history before it is warm-up) and never before the strategy's declared warm-up; with
    `members`, entries only on the universe's members at each decision (`record`: a universe
    that only describes the data, for the report)."""
    first = first_decision(history, strategy.warmup_bars(), start)
    priced = price_actions(history, config.adjust)
    signals = adjusted_signals(strategy, history, priced)
    if first is not None:
        signals = signals.filter(pl.col("at") >= first)
    bars = with_liquidity(history.bars, history.liquidity)  # the warehouse's measure of each name, when loaded from it
    result = simulate_in(bars, signals, config, members, timeframe=strategy.timeframe, halts=halts,
                         steps=priced.steps)
    if start is not None:  # the curve covers the traded window only
        result = replace(result, equity=result.equity.filter(pl.col("ts") >= start))
    benchmark = buy_and_hold(bars, config, start=first, steps=priced.steps)
    if benchmark is not None and start is not None:  # the same marks as the run's curve
        benchmark = replace(benchmark, equity=benchmark.equity.filter(pl.col("ts") >= start))
    metrics: dict[str, object] = {**compute_metrics(result)}
    if benchmark is not None:
        metrics |= benchmark_metrics(result, benchmark.equity)
    stated = assumptions(config, history, universe, warmup=(strategy.warmup_bars(), strategy.timeframe.value, first),
                         priced=priced, record=members.universe if members else record, applied=members is not None)
    if benchmark is not None:
        stated["benchmark"] = (f"{benchmark.label}: each name an equal share of the starting cash (fractional "
                               "shares) at its last close before the first decision, bought at market through the "
                               "same fills and costs, then held")
    return Backtest(strategy.name, dict(strategy.p), result, metrics, stated, bars=history.bars, benchmark=benchmark)


def first_decision(history: History, warmup_bars: int, start: datetime | None) -> datetime | None:
    """The first instant a decision may be taken: once `warmup_bars` bars have ended before the
    bar decided on (the end of the bar after them), and not before `start`."""
    if warmup_bars <= 0 or history.bars.is_empty():
        return start
    ends = history.bars["end_ts"].unique().sort()
    warm = ends[warmup_bars] if warmup_bars < len(ends) else ends[-1] + timedelta(microseconds=1)  # too little data: none
    return warm if start is None else max(warm, start)


def assumptions(config: BacktestConfig, history: History, universe: str = "",
                warmup: tuple[int, str, datetime | None] | None = None,
                priced: PricedActions | None = None, *, record: Universe | None = None,
                applied: bool = False) -> dict[str, object]:
    """What a report must state next to the numbers: fills, prices, costs, sizing, risk, universe
    (from `record`, the universes table's row, when there is one; `applied`: membership was applied)."""
    costs = config.costs
    priced = priced or price_actions(history, config.adjust)
    return {
        "fill rule": FILL_RULES,
        "prices": MODE_WORDS[config.adjust] + ("; " + HOLDING_WORDS if config.adjust is not AdjustMode.RAW else ""),
        "corporate actions in the window": priced.lines() or ["none recorded"],
        "data findings": [f"{symbol} {ts:%Y-%m-%d %H:%M} UTC: {detail}" for symbol, ts, detail in
                          find_jumps(history.bars, history.actions, "").select("symbol", "ts", "detail").iter_rows()]
                         or ["no price jump is left unexplained (tapeflow/ingest/price_jumps.py)"],
        "slippage": costs.slippage.describe(),  # the model, its anchors, the impact law, the floor
        "commissions": (
            f"${costs.commission.per_share:g}/share + ${costs.commission.per_order:g}/order, minimum "
            f"${costs.commission.minimum:g}"
            + (f", cap {costs.commission.maximum_pct:.1%} of value" if costs.commission.maximum_pct else "")
            + (f"; SEC fee {costs.commission.sec_fee_rate:g} x sells, TAF ${costs.commission.taf_per_share:g}/share sold"
               if costs.commission.sec_fee_rate or costs.commission.taf_per_share else "")
        ),
        "volume cap": f"{costs.participation:.0%} of each bar's volume" if costs.participation else "none",
        "tick rounding": "yes, against the trader" if costs.round_to_tick else "no",
        "execution policy": config.policy.sentence() + " (the rules sessions trade with: tapeflow/risk/policy.py)",
        **({"warm-up": f"{warmup[0]} {warmup[1]} bars before the first decision"
                       + (f"; decisions from {warmup[2].isoformat()}" if warmup[2] is not None else "")} if warmup else {}),
        "starting cash": f"${config.cash:,.0f}",
        "buying power": (
            f"equity x {config.buying_power_multiple:g} less positions and working buys; entries are cut to fit"
            if config.buying_power_multiple is not None else "not checked"
        ),
        "universe": universe_line(record, applied, history.symbols) if record else (
            universe or ", ".join(history.symbols[:20]) + (" ..." if len(history.symbols) > 20 else "")),
        **({"news": (
            f"{history.news.height} scored headline-ticker rows; each knowable at the later of its publication "
            "and fetch plus an assumed 5 s of scoring, scored after the fact by the current sentiment model"
        )} if not history.news.is_empty() else {}),
        "survivorship": survivorship_line(record) if record else (
            "the universe is the symbols present in the data; names delisted before the window are "
            "absent unless the data includes them (the bundled S&P 500 panel is a 2010 membership "
            "snapshot: survivorship-biased)"
        ),
    }
