"""One backtest, end to end in memory: a strategy's signals over a history, through the engine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import polars as pl

from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.engine import BacktestResult, simulate
from tapeflow.backtest.metrics import compute_metrics
from tapeflow.risk.policy import Halt
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
    """A finished run: the result, its metrics and the assumptions a report must state."""

    strategy: str
    params: dict[str, int | float]
    result: BacktestResult
    metrics: Mapping[str, object]
    assumptions: dict[str, object]


def run_backtest(strategy: Strategy, history: History, config: BacktestConfig = BacktestConfig(), *, universe: str = "",
                 start: datetime | None = None, halts: Sequence[Halt] = ()) -> Backtest:
    """Signals from `strategy` over `history`, simulated under `config`: decisions from `start`
    (the history before it is warm-up) and never before the strategy's declared warm-up."""
    first = first_decision(history, strategy.warmup_bars(), start)
    signals = strategy.signals(history)
    if first is not None:
        signals = signals.filter(pl.col("at") >= first)
    result = simulate(history.bars, signals, config, timeframe=strategy.timeframe, halts=halts)
    if start is not None:  # the curve covers the traded window only
        result = replace(result, equity=result.equity.filter(pl.col("ts") >= start))
    return Backtest(strategy.name, dict(strategy.p), result, compute_metrics(result),
                    assumptions(config, history, universe, warmup=(strategy.warmup_bars(), strategy.timeframe.value, first)))


def first_decision(history: History, warmup_bars: int, start: datetime | None) -> datetime | None:
    """The first instant a decision may be taken: once `warmup_bars` bars have ended before the
    bar decided on (the end of the bar after them), and not before `start`."""
    if warmup_bars <= 0 or history.bars.is_empty():
        return start
    ends = history.bars["end_ts"].unique().sort()
    warm = ends[warmup_bars] if warmup_bars < len(ends) else ends[-1] + timedelta(microseconds=1)  # too little data: none
    return warm if start is None else max(warm, start)


def assumptions(config: BacktestConfig, history: History, universe: str = "",
                warmup: tuple[int, str, datetime | None] | None = None) -> dict[str, object]:
    """What a report must state next to the numbers: fills, costs, sizing, risk, universe."""
    costs = config.costs
    return {
        "fill rule": FILL_RULES,
        "slippage": (
            "small-cap model: 2% per side at <= $1M average daily volume down to 0.5% at >= $50M"
            if costs.slippage.small_cap
            else f"{costs.slippage.bps:g} bps per side"
        ),
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
        "universe": universe or ", ".join(history.symbols[:20]) + (" ..." if len(history.symbols) > 20 else ""),
        **({"news": (
            f"{history.news.height} scored headline-ticker rows; each knowable at the later of its publication "
            "and fetch plus an assumed 5 s of scoring, scored after the fact by the current sentiment model"
        )} if not history.news.is_empty() else {}),
        "survivorship": (
            "the universe is the symbols present in the data; names delisted before the window are "
            "absent unless the data includes them (the bundled S&P 500 panel is a 2010 membership "
            "snapshot: survivorship-biased)"
        ),
    }
