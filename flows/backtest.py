"""Backtest a strategy on warehouse data, record the run, and write its report."""

from __future__ import annotations

from datetime import date
from uuid import uuid4

from prefect import flow
from prefect.runtime import flow_run

from flows.hooks import alert_on_failure
from flows.parameters import UNSET, CostPreset, OffAtZero, OptionalName, OptionalWatchlist, StrategyName, StrategyParams, Symbols
from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.costs import cost_preset
from tapeflow.model import AdjustMode
from tapeflow.research.summaries import backtest_title
from tapeflow.risk.policy import DEFAULT_POLICY, policy_from
from tapeflow.strategy.registry import get_strategy
from tasks.backtest import (
    keep,
    load_history,
    publish_summary,
    rows_of,
    simulate_run,
    window,
    write_report,
)
from tasks.universe import run_universe


@flow(name="backtest", on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def backtest(
    strategy: StrategyName = "sma_cross",
    params: StrategyParams = UNSET,
    symbols: Symbols = UNSET,
    start: date = date(2009, 8, 21),
    end: date = date(2010, 8, 20),
    cash: float = 100_000.0,
    costs: CostPreset = "retail-default",
    position_fraction: float = DEFAULT_POLICY.sizing.fraction,
    max_positions: int = DEFAULT_POLICY.sizing.max_positions,
    stop_loss_pct: OffAtZero = DEFAULT_POLICY.stop_loss_pct or UNSET,
    daily_loss_limit_pct: OffAtZero = DEFAULT_POLICY.daily_loss_limit_pct or UNSET,
    watchlist_source: OptionalWatchlist = UNSET,
    risk_per_trade: OffAtZero = DEFAULT_POLICY.sizing.risk_per_trade or UNSET,
    max_position_pct: OffAtZero = DEFAULT_POLICY.max_position_pct or UNSET,
    universe: OptionalName = UNSET,
    adjust: AdjustMode = AdjustMode.SPLITS,
) -> dict[str, object]:
    """Backtest a strategy on the warehouse's bars under the execution policy sessions use,
    record the run and write its HTML report.

    Args:
        strategy: The registered strategy to run.
        params: The strategy's parameters; blank fields keep the strategy's defaults.
        symbols: Symbols to trade; empty means every symbol of the strategy's timeframe.
        start: First New York day traded (the warm-up bars before it are read too).
        end: Last New York day traded.
        cash: Starting cash, in dollars.
        costs: Cost preset: commissions, spread and slippage (see docs/backtesting.md).
        position_fraction: Fraction of equity per entry (0..1).
        max_positions: Most positions held at once.
        stop_loss_pct: Protective stop below the entry, as a fraction (0.05 = 5%); 0 turns it off.
        daily_loss_limit_pct: Loss in a day, as a fraction of the day's starting equity, that stops new entries; 0 turns it off.
        watchlist_source: Stored watchlist a watchlist strategy reads; blank means the scanner's.
        risk_per_trade: Fraction of equity risked to the stop per entry; 0 sizes by position_fraction.
        max_position_pct: Largest position as a fraction of equity; 0 turns the cap off.
        universe: Universe whose members at each decision may be entered (tapeflow universe list); blank: no filter.
        adjust: Prices adjusted for splits, for splits and dividends (total-return), or raw; never before an action was knowable.
    """
    chosen = get_strategy(strategy)(**params.values())
    policy = policy_from(position_fraction, max_positions, risk_per_trade, max_position_pct, stop_loss_pct,
                         daily_loss_limit_pct)
    config = BacktestConfig(cash=cash, costs=cost_preset(costs), policy=policy, adjust=AdjustMode(adjust))
    run_id = str(flow_run.id or uuid4())
    members, described = run_universe(universe, chosen.timeframe, symbols, start, end)  # an unknown name fails here

    history, snapshot = load_history(chosen.timeframe, symbols, start, end,
                                     (watchlist_source or "scanner") if chosen.uses_watchlist else None, news=chosen.uses_news,
                                     warmup_bars=chosen.warmup_bars())
    run = simulate_run(chosen, history, config, window(start, end)[0], members, described)
    title = backtest_title(run, start, end)
    report = write_report(run, run_id, title)
    keep([rows_of(run, run_id, kind="backtest", timeframe=chosen.timeframe, start=start, end=end, snapshot=snapshot,
                  report_path=report)])
    publish_summary(run, run_id, report, title, {
        "symbols": ", ".join(symbols or []) or "all", "cash": cash, "costs": costs, "adjust": AdjustMode(adjust).value,
        "universe": universe, "position_fraction": position_fraction, "max_positions": max_positions,
        "stop_loss_pct": stop_loss_pct, "daily_loss_limit_pct": daily_loss_limit_pct,
        "risk_per_trade": risk_per_trade, "max_position_pct": max_position_pct,
        "watchlist_source": (watchlist_source or "scanner") if chosen.uses_watchlist else None})
    return {"run_id": run_id, "report": report, **run.metrics}
