"""Tasks for walk-forward and perturbation: one fold, one sweep, the stitched result."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.metrics import compute_metrics
from tapeflow.backtest.run import Backtest, assumptions
from tapeflow.research.perturb import Outcome, Perturbation, perturb, sweep_outcome
from tapeflow.research.walkforward import Fold, FoldResult, run_fold, stitch
from tapeflow.sources.universe import Membership, Universe
from tapeflow.strategy.history import History


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
