"""Walk-forward, perturbation and the parameter grid by symbol: is a strategy's edge real out
of sample, robust to its parameters, and on how many names? Folds, sweeps and symbol batches
fan out as tasks on the flow's task runner: two local threads, or the Dask cluster at
TAPEFLOW_DASK_ADDRESS (flows/runners.py reads it when each run starts)."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import date
from pathlib import Path
from uuid import uuid4

from prefect import flow, get_run_logger, unmapped
from prefect.artifacts import create_markdown_artifact
from prefect.futures import as_completed
from prefect.runtime import flow_run

from flows.hooks import alert_on_failure
from flows.parameters import UNSET, CostPreset, Objective, OptionalName, ParamGrid, StrategyName, StrategyParams, Symbols
from flows.runners import ResearchTaskRunner
from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.costs import cost_preset
from tapeflow.backtest.run import Backtest, assumptions
from tapeflow.progress import tracked
from tapeflow.research.grid import batches, combined, grid_candidates, ranking, refusals
from tapeflow.research.perturb import sweep_points
from tapeflow.research.summaries import perturbation_markdown, walk_forward_markdown
from tapeflow.research.walkforward import folds, searched, sessions_of
from tapeflow.strategy.registry import get_strategy
from tasks.backtest import keep, load_history, rows_of, simulate_run, write_report
from tasks.research import fit_fold, grid_symbols, ranking_run, scan_batch, stitch_folds, sweep, sweep_batch, write_grid_report
from tasks.universe import run_universe

SWEEP_BATCHES = 8
"""A perturbation's runs go out in at most this many tasks (each carries the whole history)."""
RANKING_KEPT = 20
"""A parameter grid's run records this many of its best candidates in its metrics (the CSV has them all)."""


def watchlist_of(strategy_cls) -> str | None:
    """The scanner's stored lists for a strategy that trades a watchlist, as a backtest reads them."""
    return "scanner" if strategy_cls.uses_watchlist else None


@flow(name="walk-forward", task_runner=ResearchTaskRunner(),
      on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def walk_forward(
    strategy: StrategyName = "sma_cross",
    grid: ParamGrid = UNSET,
    objective: Objective = "sharpe",
    symbols: Symbols = UNSET,
    start: date = date(2009, 8, 21),
    end: date = date(2010, 8, 20),
    train_sessions: int = 120,
    test_sessions: int = 40,
    anchored: bool = False,
    cash: float = 100_000.0,
    costs: CostPreset = "retail-default",
    universe: OptionalName = UNSET,
) -> dict[str, object]:
    """Per fold: choose parameters on the train window by `objective`, judge them on the test
    window; the out-of-sample windows are stitched into one curve and recorded (with
    `universe`, entries only on its members at each decision).

    Args:
        strategy: The registered strategy to fit.
        grid: Values tried per parameter, e.g. {"fast": [8, 10, 12]}; blank means each parameter's own search range.
        objective: Metric the train window maximises.
        symbols: Symbols to trade; empty means every symbol of the strategy's timeframe.
        start: First New York day.
        end: Last New York day.
        train_sessions: Sessions in each train window.
        test_sessions: Sessions in each test window.
        anchored: Train windows all start at start (else they roll).
        cash: Starting cash, in dollars.
        costs: Cost preset: commissions, spread and slippage.
        universe: Universe whose members at each decision may be entered; blank: no filter.
    """
    strategy_cls = get_strategy(strategy)
    config = BacktestConfig(cash=cash, costs=cost_preset(costs))  # the execution policy sessions use
    _, candidates, _ = searched(strategy_cls, grid)  # a grid it cannot search fails before any data is read
    run_id = str(flow_run.id or uuid4())
    members, described = run_universe(universe, strategy_cls.timeframe, symbols, start, end)
    history, snapshot = load_history(strategy_cls.timeframe, symbols, start, end, watchlist_of(strategy_cls),
                                     news=strategy_cls.uses_news)
    plan = folds(sessions_of(history), train_sessions, test_sessions, anchored=anchored)
    if not plan:
        raise ValueError(f"{start}..{end} is too short for a {train_sessions}+{test_sessions} session fold")

    with tracked(f"walk-forward {strategy}", total=len(plan)) as progress:
        # Each fold gets only what its windows can see (a fold runs on history.until(test_end) anyway):
        # on a Dask cluster that is what crosses the wire, once per fold.
        seen = [history.until(fold.test_end) for fold in plan]
        fitted = fit_fold.map(unmapped(strategy_cls), seen, unmapped(candidates), unmapped(objective), plan,
                              unmapped(config), unmapped(members))
        for done in as_completed(list(fitted)):  # in the order they finish: folds run side by side
            progress.advance(detail=done.result().line(objective))
    results = [f.result() for f in fitted]
    oos = stitch_folds(strategy, results, config, history, members, described)
    report = write_report(oos, run_id, f"{strategy} walk-forward (out of sample), {start}..{end}")
    runs = [rows_of(oos, run_id, kind="walk_forward", timeframe=strategy_cls.timeframe, start=start, end=end,
                    snapshot=snapshot, report_path=report)]
    for fold in results:
        detail = Backtest(strategy, fold.params, fold.result,
                          {**fold.out_of_sample, f"in_sample_{objective}": fold.in_sample_objective},
                          assumptions(config, history, record=members.universe if members else described,
                                      applied=members is not None))
        runs.append(rows_of(detail, f"{run_id}-fold{fold.fold.index}", kind="walk_forward_fold",
                            timeframe=strategy_cls.timeframe, start=fold.fold.test_start.date(),
                            end=fold.fold.test_end.date(), snapshot=snapshot, report_path=None, parent_run_id=run_id,
                            fold=fold.fold.index))
    keep(runs)  # the run and its folds in one transaction

    create_markdown_artifact(key=f"walk-forward-{strategy.replace('_', '-')}",
                             markdown=walk_forward_markdown(strategy, objective, results, oos, report))
    get_run_logger().info("walk-forward %s: %d folds, OOS %s %s", strategy, len(results), objective, oos.metrics.get(objective))
    return {"run_id": run_id, "report": report, "folds": len(results), **{f"oos_{k}": v for k, v in oos.metrics.items()},
            "per_fold": [fold.row(objective) for fold in results]}


@flow(name="perturb", task_runner=ResearchTaskRunner(), on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def perturbation(
    strategy: StrategyName = "sma_cross",
    params: StrategyParams = UNSET,
    symbols: Symbols = UNSET,
    start: date = date(2009, 8, 21),
    end: date = date(2010, 8, 20),
    pct: float = 0.20,
    objective: Objective = "sharpe",
    cash: float = 100_000.0,
    costs: CostPreset = "retail-default",
    universe: OptionalName = UNSET,
    grid_steps: int = 2,
) -> dict[str, object]:
    """Move every numeric parameter by ±pct, and run a grid of `grid_steps` steps either way:
    plateau or spike? (With `universe`, entries only on its members at each decision.)

    Args:
        strategy: The registered strategy to perturb.
        params: The parameters perturbed around; blank fields keep the strategy's defaults.
        symbols: Symbols to trade; empty means every symbol of the strategy's timeframe.
        start: First New York day.
        end: Last New York day.
        pct: Move of each parameter either way, as a fraction (0.2 = ±20%).
        objective: Metric compared across the runs.
        cash: Starting cash, in dollars.
        costs: Cost preset: commissions, spread and slippage.
        universe: Universe whose members at each decision may be entered; blank: no filter.
        grid_steps: Steps of the grid either way of each parameter.
    """
    strategy_cls = get_strategy(strategy)
    config = BacktestConfig(cash=cash, costs=cost_preset(costs))  # the execution policy sessions use
    members, described = run_universe(universe, strategy_cls.timeframe, symbols, start, end)
    history, snapshot = load_history(strategy_cls.timeframe, symbols, start, end, watchlist_of(strategy_cls),
                                     news=strategy_cls.uses_news)
    points = sweep_points(strategy_cls, params.values(), pct, grid_steps)  # a bad point fails here, before any run
    # At most SWEEP_BATCHES tasks, so the history crosses to a Dask cluster that many times, not once per run.
    batches = [points[i::SWEEP_BATCHES] for i in range(min(SWEEP_BATCHES, len(points)))]
    with tracked(f"perturb {strategy}", total=len(points)) as progress:
        runs = sweep_batch.map(unmapped(strategy_cls), unmapped(history), batches, unmapped(config),
                               unmapped(objective), unmapped(members))
        for done in as_completed(list(runs)):  # in the order they finish: batches go side by side
            progress.advance(len(done.result()))
    by_batch = [run.result() for run in runs]
    outcomes = [by_batch[i % len(batches)][i // len(batches)] for i in range(len(points))]  # back in plan order
    result = sweep(strategy_cls, history, params.values(), config, pct, objective, members, grid_steps,
                   known=list(zip(points, outcomes, strict=True)))
    run_id = str(flow_run.id or uuid4())
    point = simulate_run(strategy_cls(**result.params), history, config, None, members, described)
    verdict = {"verdict": result.verdict, "reason": result.reason, "grid_share": result.grid_share,
               "runs": result.runs.to_dicts()}
    keep([rows_of(Backtest(strategy, result.params, point.result, {**point.metrics, **verdict}, point.assumptions), run_id,
                  kind="perturbation", timeframe=strategy_cls.timeframe, start=start, end=end, snapshot=snapshot,
                  report_path=None)])
    create_markdown_artifact(key=f"perturb-{strategy.replace('_', '-')}", markdown=perturbation_markdown(strategy, result))
    return {"run_id": run_id, "verdict": result.verdict, "reason": result.reason, "point": result.params,
            f"point_{objective}": result.point_objective, "grid_share": result.grid_share,
            "runs": result.runs.height, "per_run": result.runs.to_dicts(),
            "sensitivities": [asdict(s) for s in result.sensitivities]}


@flow(name="param-grid", task_runner=ResearchTaskRunner(), on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def param_grid(
    strategy: StrategyName = "sma_cross",
    grid: ParamGrid = UNSET,
    objective: Objective = "sharpe",
    symbols: Symbols = UNSET,
    start: date = date(2009, 8, 21),
    end: date = date(2010, 8, 20),
    cash: float = 100_000.0,
    costs: CostPreset = "retail-default",
    batch_size: int = 25,
) -> dict[str, object]:
    """A per-symbol scan: each symbol backtested alone (its own account) with every candidate of the
    grid, candidates ranked by the median objective across symbols; symbols go out in batches,
    each task loading only its own batch's bars, so memory stays bounded.

    Args:
        strategy: The registered strategy to scan.
        grid: Values tried per parameter, e.g. {"fast": [8, 10, 12]}; blank means each parameter's own search range.
        objective: Metric the candidates are ranked by (its median across symbols).
        symbols: Symbols to scan; empty means every symbol of the strategy's timeframe with bars in the window.
        start: First New York day.
        end: Last New York day.
        cash: Starting cash of each symbol's own account, in dollars.
        costs: Cost preset: commissions, spread and slippage.
        batch_size: Symbols per task: each task holds this many symbols' history at most.
    """
    strategy_cls = get_strategy(strategy)
    config = BacktestConfig(cash=cash, costs=cost_preset(costs))
    searched_grid, _, _ = searched(strategy_cls, grid)  # a grid it cannot search fails before any data is read
    candidates = grid_candidates(searched_grid)
    timeframe = strategy_cls.timeframe.value
    scanned = grid_symbols(timeframe, start, end, symbols)
    if not scanned:
        raise ValueError(f"no {timeframe} bars{' of ' + ', '.join(symbols) if symbols else ''} in the warehouse "
                         f"for {start}..{end}: ingest them first")
    missing = sorted(set(symbols or ()) - set(scanned))
    if missing:
        get_run_logger().warning("param-grid: no %s bars in %s..%s for %s: not scanned", timeframe, start, end,
                                 ", ".join(missing))
    plan = batches(scanned, batch_size)
    with tracked(f"param-grid {strategy}", total=len(scanned)) as progress:
        scans = scan_batch.map(unmapped(strategy_cls), plan, unmapped(candidates), unmapped(config), unmapped(objective),
                               unmapped(start), unmapped(end), unmapped(watchlist_of(strategy_cls)),
                               unmapped(strategy_cls.uses_news))
        for done in as_completed(list(scans)):  # in the order they finish: batches go side by side
            progress.advance(len(done.result().loaded))
    parts = [s.result() for s in scans]
    table = combined([part.rows for part in parts])
    ranked = ranking(table)  # never empty: `searched` refused a grid without one accepted candidate
    run_id = str(flow_run.id or uuid4())
    csv_path, summary_path = write_grid_report(strategy, objective, table, ranked, batch_size, run_id)
    best = ranked.row(0, named=True)
    best_params = json.loads(best["params"])
    summary = {"per_symbol_scan": True, "objective": objective, "symbols": len(scanned), "batch_size": batch_size,
               "candidates": len(candidates), "best_params": best_params,
               f"median_{objective}": best["median_objective"], "positive_share": best["positive_share"],
               "ranking": ranked.head(RANKING_KEPT).to_dicts(), "table": csv_path}
    if len(scanned) <= batch_size:  # one batch of history: small enough to run the best as one portfolio
        history, snapshot = load_history(timeframe, scanned, start, end, watchlist_of(strategy_cls),
                                         news=strategy_cls.uses_news)
        point = simulate_run(strategy_cls(**best_params), history, config)
        recorded = Backtest(strategy, point.params, point.result, {**point.metrics, **summary}, point.assumptions)
    else:  # a portfolio of every symbol would hold them all at once: the scan's numbers are the record
        recorded, snapshot = ranking_run(strategy, summary, config, timeframe)
    keep([rows_of(recorded, run_id, kind="param_grid", timeframe=timeframe, start=start, end=end, snapshot=snapshot,
                  report_path=summary_path)])
    create_markdown_artifact(key=f"param-grid-{strategy.replace('_', '-')}", markdown=Path(summary_path).read_text())
    get_run_logger().info("param-grid %s: %d symbols x %d candidates in %d batches; best %s", strategy, len(scanned),
                          len(candidates), len(plan), best["params"])
    return {"run_id": run_id, "table": csv_path, "summary": summary_path, "symbols": scanned,
            "batches": [list(part.loaded) for part in parts], "best": best_params,
            "ranking": ranked.to_dicts(), "refused": refusals(table)}
