"""Tasks for walk-forward, perturbation and the parameter grid: one fold, one sweep, the
stitched result, one batch of symbols."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.loading import history_between
from tapeflow.backtest.metrics import compute_metrics
from tapeflow.backtest.run import Backtest, assumptions
from tapeflow.config import load_settings
from tapeflow.research.grid import BatchScan, grid_markdown, scan_only, scan_symbols, stored_symbols
from tapeflow.research.perturb import Outcome, Perturbation, perturb, sweep_outcome
from tapeflow.research.walkforward import Fold, FoldResult, run_fold, stitch
from tapeflow.sources.universe import Membership, Universe
from tapeflow.strategy.history import History
from tasks.backtest import window
from warehouse import open_warehouse
from warehouse.reads import data_snapshot


@task(cache_policy=NO_CACHE)
def fit_fold(strategy_cls, history: History, candidates: list[dict], objective: str, fold: Fold, config: BacktestConfig,
             members: Membership | None = None) -> FoldResult:
    """Choose among the candidates on the fold's train window, run the choice on its test window."""
    return run_fold(strategy_cls, history, candidates, objective, fold, config, members)


@task(cache_policy=NO_CACHE)
def stitch_folds(strategy: str, folds: list[FoldResult], config: BacktestConfig, history: History,
                 members: Membership | None = None, described: Universe | None = None) -> Backtest:
    """The out-of-sample curve, fold after fold, with its metrics."""
    result = stitch([f.result for f in sorted(folds, key=lambda f: f.fold.index)], config)
    return Backtest(strategy, {}, result, compute_metrics(result), assumptions(
        config, history, record=members.universe if members else described, applied=members is not None))


@task(cache_policy=NO_CACHE)
def sweep_batch(strategy_cls, history: History, batch: list[dict], config: BacktestConfig, objective: str,
                members: Membership | None = None) -> list[Outcome]:
    """Some parameter sets of a perturbation sweep: each one's objective and return, or its refusal."""
    return [sweep_outcome(strategy_cls, history, params, config, objective, members) for params in batch]


@task(cache_policy=NO_CACHE)
def sweep(strategy_cls, history: History, params: dict, config: BacktestConfig, pct: float, objective: str,
          members: Membership | None = None, grid_steps: int = 2,
          known: list[tuple[dict, Outcome]] | None = None) -> Perturbation:
    """The verdict over the sweep; `known` runs (fanned out as sweep_batch) are not run again."""
    return perturb(strategy_cls, history, params, config, pct, grid_steps, objective=objective, members=members,
                   known=known or ())


@task(cache_policy=NO_CACHE)
def grid_symbols(timeframe: str, start: date, end: date, symbols: list[str] | None = None) -> list[str]:
    """The symbols a grid scans: those (of `symbols`, when given) with bars in the window."""
    with open_warehouse(load_settings()).read() as con:
        return stored_symbols(con, timeframe, start, end, symbols)


@task(cache_policy=NO_CACHE)
def scan_batch(strategy_cls, symbols: list[str], candidates: Sequence[dict], config: BacktestConfig, objective: str,
               start: date, end: date, watchlist_source: str | None = None, news: bool = False) -> BatchScan:
    """Load this batch's bars (and only them) from the warehouse, then each symbol alone with every candidate."""
    history = _batch_history(strategy_cls.timeframe.value, symbols, start, end, watchlist_source, news)
    loaded = history.symbols
    return BatchScan(tuple(loaded), scan_symbols(strategy_cls, history, loaded, candidates, config, objective))


@task(cache_policy=NO_CACHE)
def write_grid_report(strategy: str, objective: str, table: pl.DataFrame, ranked: pl.DataFrame, batch_size: int,
                      run_id: str) -> tuple[str, str]:
    """The full table as CSV and its summary as markdown under TAPEFLOW_HOME/reports/<run_id>/: their paths."""
    folder = load_settings().home.resolve() / "reports" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, summary_path = folder / "param_grid.csv", folder / "param_grid.md"
    table.write_csv(csv_path)
    summary_path.write_text(grid_markdown(strategy, objective, table, ranked, batch_size, str(csv_path)))
    return str(csv_path), str(summary_path)


@task(cache_policy=NO_CACHE)
def ranking_run(strategy: str, summary: dict, config: BacktestConfig, timeframe: str) -> tuple[Backtest, dict]:
    """A wide scan's record (see `scan_only`) and a note of the data it read."""
    with open_warehouse(load_settings()).read() as con:
        snapshot = data_snapshot(con, timeframe)
    return scan_only(strategy, summary["best_params"], config, summary), snapshot


def _batch_history(timeframe: str, symbols: list[str], start: date, end: date, watchlist_source: str | None,
                   news: bool) -> History:
    """One batch's history (bars, and snapshots or headlines when the strategy reads them)."""
    history, _ = history_between(load_settings(), timeframe, symbols, *window(start, end),
                                 watchlist=watchlist_source is not None, watchlist_source=watchlist_source, news=news)
    return history
