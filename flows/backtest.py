"""Backtest a strategy on warehouse data, record the run, and write its report."""

from __future__ import annotations

from datetime import date
from uuid import uuid4

from prefect import flow
from prefect.runtime import flow_run

from flows.hooks import alert_on_failure
from flows.parameters import CostPreset, StrategyName, WatchlistName
from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.costs import cost_preset
from tapeflow.model import AdjustMode
from tapeflow.risk.policy import DEFAULT_POLICY, policy_from
from tapeflow.strategy.registry import get_strategy
from tasks.backtest import (
    load_history,
    publish_summary,
    record,
    simulate_run,
    window,
    write_report,
)
from tasks.universe import run_universe


@flow(name="backtest", on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def backtest(
    strategy: StrategyName = "sma_cross",
    params: dict[str, float] | None = None,
    symbols: list[str] | None = None,
    start: date = date(2009, 8, 21),
    end: date = date(2010, 8, 20),
    cash: float = 100_000.0,
    costs: CostPreset = "retail-default",
    position_fraction: float = DEFAULT_POLICY.sizing.fraction,
    max_positions: int = DEFAULT_POLICY.sizing.max_positions,
    stop_loss_pct: float | None = DEFAULT_POLICY.stop_loss_pct,
    daily_loss_limit_pct: float | None = DEFAULT_POLICY.daily_loss_limit_pct,
    watchlist_source: WatchlistName | None = "scanner",
    risk_per_trade: float | None = DEFAULT_POLICY.sizing.risk_per_trade,
    max_position_pct: float | None = DEFAULT_POLICY.max_position_pct,
    universe: str | None = None,
    adjust: AdjustMode = AdjustMode.SPLITS,
) -> dict[str, object]:
    """Run `strategy` with `params` over New York days start..end of the warehouse's bars
    (plus the strategy's warm-up before them), under the execution policy sessions use; with
    `universe`, entries only on its members at each decision; prices adjusted for corporate
    actions as `adjust` says (splits, total-return or raw), never before they were knowable."""
    chosen = get_strategy(strategy)(**(params or {}))
    policy = policy_from(position_fraction, max_positions, risk_per_trade, max_position_pct, stop_loss_pct,
                         daily_loss_limit_pct)
    config = BacktestConfig(cash=cash, costs=cost_preset(costs), policy=policy, adjust=AdjustMode(adjust))
    run_id = str(flow_run.id or uuid4())
    members, described = run_universe(universe, chosen.timeframe, symbols, start, end)  # an unknown name fails here

    history, snapshot = load_history(chosen.timeframe, symbols, start, end,
                                     watchlist_source if chosen.uses_watchlist else None, news=chosen.uses_news,
                                     warmup_bars=chosen.warmup_bars())
    run = simulate_run(chosen, history, config, window(start, end)[0], members, described)
    report = write_report(run, run_id, f"{chosen.name} {dict(chosen.p)}, {start}..{end}")
    record(run, run_id, kind="backtest", timeframe=chosen.timeframe, start=start, end=end, snapshot=snapshot, report_path=report)
    publish_summary(run, run_id, report)
    return {"run_id": run_id, "report": report, **run.metrics}
