"""Tasks for paper versus backtest: which sessions, measure and store one, publish it."""

from __future__ import annotations

from datetime import date

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from tapeflow.backtest.costs import cost_preset
from tapeflow.config import load_settings
from tapeflow.live.paper_gap import GapReport, measure_gap, paper_sessions, store_gap
from warehouse import open_warehouse


@task(cache_policy=NO_CACHE)
def sessions_to_compare(day: date, strategy: str | None) -> list[str]:
    """The paper sessions of New York day `day` (one strategy's, or every one)."""
    return paper_sessions(open_warehouse(load_settings()), day, strategy)


@task(cache_policy=NO_CACHE, tags=["duckdb-writer"])
def measure_and_store(session_id: str, costs: str | None) -> GapReport:
    """Replay the session with the sim broker's cost preset, store the report in paper_gaps."""
    settings = load_settings()
    warehouse = open_warehouse(settings)
    report = measure_gap(warehouse, session_id, cost_preset(costs or settings.sim_costs), cash=settings.sim_cash)
    store_gap(warehouse, report)
    get_run_logger().info("%s: paper %.2f, backtest %.2f, gap %.2f", session_id, report.paper_pnl,
                          report.backtest_pnl, report.gap)
    return report


@task(cache_policy=NO_CACHE)
def publish_gap(report: GapReport) -> None:
    """A markdown artifact per strategy: the gap by cause and per round trip."""
    lines = [f"# {report.session.session_id}", "", "| cause | paper - backtest |", "|---|---:|"]
    lines += [f"| {cause} | {value:,.2f} |" for cause, value in report.totals.items()]
    lines += [f"| **gap** | **{report.gap:,.2f}** |", "",
              "| symbol | entered | paper P&L | backtest P&L | gap | cause |", "|---|---|---:|---:|---:|---|"]
    lines += [f"| {t['symbol']} | {t['entered_at']:%H:%M} | {t['paper_pnl']:,.2f} | {t['backtest_pnl']:,.2f} | "
              f"{t['gap']:,.2f} | {t['cause']} |" for t in report.trades.iter_rows(named=True)]
    key = f"paper-gap-{report.session.strategy.replace('_', '-')}"
    create_markdown_artifact(key=key, markdown="\n".join(lines),
                             description=f"paper vs backtest {report.session.session_id}")

