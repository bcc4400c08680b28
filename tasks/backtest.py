"""Tasks for backtests: load the history, run, report, record."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.handoff import write_handoff
from tapeflow.backtest.loading import history_between
from tapeflow.backtest.report import equity_png_path, render_report
from tapeflow.backtest.run import Backtest, run_backtest
from tapeflow.backtest.runs import RunRows, run_rows, store_runs
from tapeflow.calendar.exchange import ny_day_bounds
from tapeflow.config import load_settings, report_url
from tapeflow.model import Role, Timeframe
from tapeflow.progress import tracked
from tapeflow.research.summaries import backtest_markdown, metric_rows, setting_rows
from tapeflow.sources.universe import Membership, Universe
from tapeflow.strategy.history import History
from tapeflow.strategy.warmup import history_from, session_warmup
from tasks.handoff import run_in_warehouse_pool
from warehouse import open_warehouse

RECORD_DEPLOYMENT = "record-results/record-handed-back-results"
"""The warehouse pool's deployment that records what compute machines hand back."""


def window(start: date, end: date) -> tuple[datetime, datetime]:
    """New York days start..end as [start, end) instants."""
    return ny_day_bounds(start)[0], ny_day_bounds(end)[1]


@task(cache_policy=NO_CACHE)
def load_history(timeframe: str, symbols: list[str] | None, start: date, end: date, watchlist_source: str | None,
                 news: bool = False, warmup_bars: int = 0) -> tuple[History, dict]:
    """Bars (and watchlist snapshots, scored headlines when asked) for the window and the
    warm-up before it, plus a note of what the data was."""
    with open_warehouse(load_settings()).read() as con:  # the warm-up a session of `start` would load
        first, _ = history_from(con, Timeframe(timeframe), session_warmup(Timeframe(timeframe), warmup_bars), start)
    last = window(start, end)[1]
    return history_between(load_settings(), timeframe, symbols, first, last, watchlist=watchlist_source is not None,
                           watchlist_source=watchlist_source, news=news)


@task(cache_policy=NO_CACHE)
def simulate_run(strategy, history: History, config: BacktestConfig, start: datetime | None = None,
                 members: Membership | None = None, record: Universe | None = None) -> Backtest:
    with tracked(f"backtest {strategy.name}"):  # one vectorised pass: a start and an end, nothing between
        run = run_backtest(strategy, history, config, start=start, members=members, record=record)
    get_run_logger().info("%s %s: %d fills, final equity %.2f", run.strategy, run.params,
                          run.result.fills.height, run.result.final_equity)
    return run


@task(cache_policy=NO_CACHE)
def write_report(run: Backtest, run_id: str, title: str) -> str:
    """The HTML tearsheet (with its PNG charts and trades.csv) under TAPEFLOW_HOME/reports/<run_id>/."""
    path = render_report(run.result, run_id=run_id, title=title, metrics=run.metrics, assumptions=run.assumptions,
                         out_dir=load_settings().home.resolve() / "reports", bars=run.bars, benchmark=run.benchmark)
    return str(path)


def rows_of(run: Backtest, run_id: str, *, kind: str, timeframe: str, start: date, end: date, snapshot: dict,
            report_path: str | None, parent_run_id: str | None = None, fold: int | None = None) -> RunRows:
    """The warehouse rows of a run over New York days start..end."""
    return run_rows(run_id, run, kind=kind, timeframe=timeframe, window=window(start, end), data_snapshot=snapshot,
                    report_path=report_path, parent_run_id=parent_run_id, fold=fold)


def keep(runs: list[RunRows]) -> None:
    """Record runs in the warehouse, or on a compute machine (TAPEFLOW_ROLE=compute) hand them
    back for the warehouse pool to record; either way the flow goes on only once they are kept."""
    if load_settings().role is Role.COMPUTE:
        hand_back(runs)
    else:
        record(runs)


@task(cache_policy=NO_CACHE, tags=["duckdb-writer"])
def record(runs: list[RunRows]) -> None:
    store_runs(open_warehouse(load_settings()), runs)


@task(cache_policy=NO_CACHE)
def hand_back(runs: list[RunRows]) -> str:
    """Leave the runs' rows as Parquet in the handoff folder and wait for the warehouse pool's
    `record-results` run to record them."""
    folder = write_handoff(load_settings().handoff_path, runs)
    recorded = run_in_warehouse_pool(RECORD_DEPLOYMENT, {"folder": str(folder)}, f"the results in {folder}")
    get_run_logger().info("handed back %d run(s); recorded by flow run %s", len(runs), recorded.name)
    return str(folder)


@task(cache_policy=NO_CACHE)
def publish_summary(run: Backtest, run_id: str, report_path: str | None, title: str,
                    settings: Mapping[str, object]) -> None:
    """The run in the Prefect UI: a summary with the equity chart, the metrics and the settings
    as tables, and a link that opens the HTML report (when `tapeflow serve` serves reports)."""
    key = f"backtest-{run.strategy.replace('_', '-')}"
    url = report_url(run_id)
    chart = equity_png_path(Path(report_path)) if report_path else None
    create_markdown_artifact(key=key, description=title, markdown=backtest_markdown(
        run, run_id, report_path, title=title, report_url=url, chart=chart.read_bytes() if chart and chart.exists() else None))
    create_table_artifact(key=f"{key}-metrics", table=metric_rows(run), description=f"{title}: metrics")
    create_table_artifact(key=f"{key}-settings", table=setting_rows(run, settings), description=f"{title}: settings")
    if url:
        create_link_artifact(key=f"{key}-report", link=url, link_text=f"report: {title}", description=title)
