"""Backtest a strategy on warehouse data, record the run, and write its report."""

from __future__ import annotations

from datetime import date
from uuid import uuid4

from prefect import flow
from prefect.runtime import flow_run

from flows.hooks import alert_on_failure
from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.costs import cost_preset
from tapeflow.risk.sizing import Sizing
from tapeflow.strategy.registry import get_strategy
from tasks.backtest import (
    load_history,
    publish_summary,
    record,
    simulate_run,
    write_report,
)


def build_config(cash: float, costs: str, position_fraction: float, max_positions: int,
                 stop_loss_pct: float | None, daily_loss_limit_pct: float | None,
                 risk_per_trade: float | None = None) -> BacktestConfig:
    return BacktestConfig(
        cash=cash, costs=cost_preset(costs), sizing=Sizing(position_fraction, max_positions, risk_per_trade),
        stop_loss_pct=stop_loss_pct, daily_loss_limit_pct=daily_loss_limit_pct,
    )


@flow(name="backtest", on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def backtest(
    strategy: str = "sma_cross",
    params: dict[str, float] | None = None,
    symbols: list[str] | None = None,
    start: date = date(2009, 8, 21),
    end: date = date(2010, 8, 20),
    cash: float = 100_000.0,
    costs: str = "retail",
    position_fraction: float = 0.10,
    max_positions: int = 10,
    stop_loss_pct: float | None = None,
    daily_loss_limit_pct: float | None = 0.02,
    watchlist_source: str | None = "scanner",
    risk_per_trade: float | None = None,
) -> dict[str, object]:
    """Run `strategy` with `params` over New York days start..end of the warehouse's bars."""
    chosen = get_strategy(strategy)(**(params or {}))
    config = build_config(cash, costs, position_fraction, max_positions, stop_loss_pct, daily_loss_limit_pct,
                          risk_per_trade)
    run_id = str(flow_run.id or uuid4())

    history, snapshot = load_history(chosen.timeframe, symbols, start, end,
                                     watchlist_source if chosen.uses_watchlist else None, news=chosen.uses_news)
    run = simulate_run(chosen, history, config)
    report = write_report(run, run_id, f"{chosen.name} {dict(chosen.p)}, {start}..{end}")
    record(run, run_id, kind="backtest", timeframe=chosen.timeframe, start=start, end=end, snapshot=snapshot, report_path=report)
    publish_summary(run, run_id, report)
    return {"run_id": run_id, "report": report, **run.metrics}
