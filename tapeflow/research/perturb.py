"""Perturbation: is a parameter choice a plateau, or a lone spike that will not survive?

`perturb` backtests (`run_backtest` on the whole `history` given) the chosen point, then:

Neighbours (these decide the verdict)
    Each numeric parameter (or those named in `vary`) is moved ALONE to value x (1 - pct) and
    value x (1 + pct), clipped to its range; ints are rounded half up. A move that lands back
    on the point's value (rounding, or the point already at its range limit) is dropped: that
    side has no neighbour, and the sensitivity row says so. A move the strategy refuses
    (ValueError from `strategy_cls(**params)`, e.g. fast >= slow) is skipped and listed in
    `skipped`; it is neither a pass nor a failure.

Grid (reported, does not decide the verdict)
    Per varied parameter, the values point x (1 + pct * k / grid_steps) for k = -grid_steps ..
    grid_steps (clipped, rounded, de-duplicated); parameters are added to the grid in
    declaration order while the number of combinations stays within `max_grid` (64), the
    others are held at the point (listed in `notes`). Every combination is run (refused ones
    skipped). `grid_share` is the share of the grid runs that pass the neighbour test below.

The rule (objective O, default "sharpe" from `compute_metrics`, larger is better; P = O at the
point, N = O at a neighbour, ratio = N / P)
    - P missing/None/NaN or P <= 0: verdict "no edge" (there is no result to be robust).
    - A neighbour PASSES when N is a finite number > 0 (the same sign as P) and
      ratio >= min_ratio (0.5: it keeps at least half the point's objective). A neighbour
      whose objective is None (no trades, no variation) fails.
    - No neighbour could be run at all (every move dropped or refused): "untested".
    - Every neighbour that ran passes: "plateau". Otherwise: "spike", and `reason` names the
      failing neighbours with their numbers.
    Per parameter, `sensitivities` gives the objective at -pct, at the point and at +pct, the
    two ratios and the worst of them (None when a side is missing or its objective is None).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import polars as pl

from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.run import run_backtest
from tapeflow.progress import tracked
from tapeflow.research.walkforward import move, numeric_params, score
from tapeflow.sources.universe import Membership
from tapeflow.strategy.history import History

MAX_GRID = 64
MIN_RATIO = 0.5


@dataclass(frozen=True)
class Sensitivity:
    """One parameter moved alone by -pct and +pct (None: no such neighbour)."""

    param: str
    low_value: int | float | None
    point_value: int | float
    high_value: int | float | None
    objective_low: float | None
    objective_point: float | None
    objective_high: float | None
    ratio_low: float | None
    ratio_high: float | None
    worst_ratio: float | None
    note: str


@dataclass(frozen=True)
class Perturbation:
    strategy: str
    params: dict[str, Any]  # the point, as the strategy coerced it
    objective: str
    pct: float
    min_ratio: float
    point_objective: float | None
    point_total_return: float | None
    sensitivities: tuple[Sensitivity, ...]
    runs: pl.DataFrame  # kind (point | -pct | +pct | grid), moved, the params, objective, total_return, passes
    grid_share: float | None  # share of grid runs that pass (information, not the verdict)
    verdict: str  # plateau | spike | no edge | untested
    reason: str
    skipped: tuple[str, ...]  # moves the strategy refused
    notes: tuple[str, ...]


Outcome = tuple[float | None, float | None] | str
"""One run's (objective, total_return), or the strategy's refusal as a string."""


@dataclass(frozen=True)
class _Plan:
    point: dict[str, Any]
    movable: dict[str, Any]  # numeric parameters by name
    names: list[str]
    axes: dict[str, list]
    grid: list[dict[str, Any]]
    neighbours: list[dict[str, Any]]
    notes: list[str]


def _plan(strategy_cls, params: Mapping[str, Any], pct: float, grid_steps: int, vary: Sequence[str] | None,
          max_grid: int) -> _Plan:
    """The point, its neighbours and the grid around it (refusing bad arguments first)."""
    if not 0 < pct < 1:
        raise ValueError(f"pct must be within (0, 1), got {pct}")
    if grid_steps < 0:
        raise ValueError("grid_steps must be >= 0")
    point = dict(strategy_cls(**params).p)  # refuses a bad point outright
    movable = {p.name: p for p in numeric_params(strategy_cls)}
    names = list(movable) if vary is None else list(vary)
    unknown = [n for n in names if n not in movable]
    if unknown:
        raise ValueError(f"{strategy_cls.name} has no numeric parameter {', '.join(unknown)}")

    grid_notes: list[str] = []
    axes: dict[str, list] = {}
    size = 1
    for name in names:
        param, value = movable[name], point[name]
        steps = range(-grid_steps, grid_steps + 1)
        values = sorted({move(param, value, 1 + pct * k / grid_steps) if grid_steps else value for k in steps})
        if size * len(values) <= max_grid:
            axes[name] = values
            size *= len(values)
        else:
            grid_notes.append(f"grid: {name} held at {value}: varying it would exceed {max_grid} combinations")
    combos = ({**point, **dict(zip(axes, values, strict=True))} for values in itertools.product(*axes.values()))
    grid = [candidate for candidate in combos if candidate != point]
    neighbours = [{**point, n: move(movable[n], point[n], f)} for n in names for f in (1 - pct, 1 + pct)]
    return _Plan(point, movable, names, axes, grid, neighbours, grid_notes)


def sweep_points(strategy_cls, params: Mapping[str, Any], pct: float = 0.20, grid_steps: int = 2, *,
                 vary: Sequence[str] | None = None, max_grid: int = MAX_GRID) -> list[dict[str, Any]]:
    """Every distinct parameter set `perturb` runs, in its order: to fan them out as separate runs."""
    plan = _plan(strategy_cls, params, pct, grid_steps, vary, max_grid)
    distinct = {_key(c): c for c in [plan.point, *plan.neighbours, *plan.grid]}
    return list(distinct.values())


def sweep_outcome(strategy_cls, history: History, candidate: Mapping[str, Any], config: BacktestConfig,
                  objective: str, members: Membership | None = None) -> Outcome:
    """One parameter set's run: (objective, total_return), or the strategy's refusal."""
    try:
        strategy = strategy_cls(**candidate)
    except ValueError as exc:
        return str(exc)
    metrics = run_backtest(strategy, history, config, members=members).metrics
    if objective not in metrics:
        raise KeyError(f"no metric {objective!r}; compute_metrics gives {', '.join(metrics)}")
    return (score(metrics, objective), score(metrics, "total_return"))


def perturb(
    strategy_cls,
    history: History,
    params: Mapping[str, Any],
    config: BacktestConfig = BacktestConfig(),
    pct: float = 0.20,
    grid_steps: int = 2,
    *,
    objective: str = "sharpe",
    min_ratio: float = MIN_RATIO,
    vary: Sequence[str] | None = None,
    max_grid: int = MAX_GRID,
    members: Membership | None = None,
    known: Sequence[tuple[Mapping[str, Any], Outcome]] = (),
) -> Perturbation:
    """Run the point, its ±pct neighbours and a small grid around it (entries only on `members`'
    symbols of the moment, when given); `known` outcomes (run elsewhere) are not run again."""
    plan = _plan(strategy_cls, params, pct, grid_steps, vary, max_grid)
    point, movable, names, axes = plan.point, plan.movable, plan.names, plan.axes
    grid, neighbours, grid_notes = plan.grid, plan.neighbours, plan.notes
    planned = {_key(c) for c in [point, *neighbours, *grid]}

    cache: dict[tuple, Outcome] = {_key(c): outcome for c, outcome in known}
    planned -= cache.keys()  # the progress counts only the runs made here

    def run(candidate: dict[str, Any]) -> Outcome:
        """(objective, total_return), or the strategy's refusal as a string."""
        key = _key(candidate)
        if key not in cache:
            cache[key] = sweep_outcome(strategy_cls, history, candidate, config, objective, members)
            moved = {k: v for k, v in candidate.items() if v != point[k]}
            outcome = cache[key]
            progress.advance(detail=f"{_fmt(moved) or 'the point'}: " + (
                "refused" if isinstance(outcome, str) else f"{objective} {_num(outcome[0])}"))
        return cache[key]

    # Every run known already (fanned out by the caller, who reports them): no second progress.
    with tracked(f"perturb {strategy_cls.name}", total=len(planned)) if planned else nullcontext() as progress:
        first = run(point)
        assert not isinstance(first, str)
        p_obj, p_ret = first
        has_edge = p_obj is not None and p_obj > 0

        def passes(value: float | None) -> bool | None:
            if not has_edge:
                return None
            return value is not None and value > 0 and value / p_obj >= min_ratio

        rows: list[dict[str, Any]] = [{"kind": "point", "moved": "", **point, "objective": p_obj, "total_return": p_ret, "passes": None}]
        skipped: list[str] = []
        sensitivities: list[Sensitivity] = []
        failures: list[str] = []
        ran = 0
        for name in names:
            param, value = movable[name], point[name]
            side: dict[str, tuple[Any, float | None, float | None] | None] = {}
            notes = []
            for label, factor in (("-pct", 1 - pct), ("+pct", 1 + pct)):
                moved = move(param, value, factor)
                if moved == value:
                    side[label] = None
                    notes.append(f"{label}: no distinct value (rounds or clips back to {value})")
                    continue
                candidate = {**point, name: moved}
                outcome = run(candidate)
                if isinstance(outcome, str):
                    side[label] = None
                    skipped.append(f"{name}={moved} ({label}): refused by the strategy: {outcome}")
                    notes.append(f"{label}: {name}={moved} refused by the strategy")
                    continue
                obj, ret = outcome
                ran += 1
                ratio = obj / p_obj if has_edge and obj is not None else None
                ok = passes(obj)
                rows.append({"kind": label, "moved": name, **candidate, "objective": obj, "total_return": ret, "passes": ok})
                side[label] = (moved, obj, ratio)
                if ok is False:
                    failures.append(
                        f"{name}={moved} ({label}): {objective} {_num(obj)} vs {_num(p_obj)} at the point"
                        + (f", ratio {ratio:.2f}" if ratio is not None else "")
                    )
            low, high = side["-pct"], side["+pct"]
            ratios = [s[2] for s in (low, high) if s is not None]
            worst = None if not ratios or any(r is None for r in ratios) else min(ratios)
            sensitivities.append(Sensitivity(
                param=name, low_value=low[0] if low else None, point_value=value, high_value=high[0] if high else None,
                objective_low=low[1] if low else None, objective_point=p_obj, objective_high=high[1] if high else None,
                ratio_low=low[2] if low else None, ratio_high=high[2] if high else None, worst_ratio=worst,
                note="; ".join(notes),
            ))

        grid_passes = []
        for candidate in grid:
            outcome = run(candidate)
            if isinstance(outcome, str):
                skipped.append(f"grid {_fmt({k: candidate[k] for k in axes})}: refused by the strategy: {outcome}")
                continue
            obj, ret = outcome
            ok = passes(obj)
            grid_passes.append(ok)
            rows.append({"kind": "grid", "moved": ",".join(k for k in axes if candidate[k] != point[k]),
                         **candidate, "objective": obj, "total_return": ret, "passes": ok})
        grid_share = sum(bool(x) for x in grid_passes) / len(grid_passes) if grid_passes and has_edge else None

    if not has_edge:
        verdict, reason = "no edge", f"{objective} at the point is {_num(p_obj)}: not positive, nothing to be robust"
    elif ran == 0:
        verdict, reason = "untested", "no ±pct neighbour could be run (all dropped or refused)"
    elif failures:
        verdict, reason = "spike", f"{len(failures)} of {ran} neighbours fail: " + "; ".join(failures)
    else:
        verdict, reason = "plateau", (
            f"all {ran} neighbours keep >= {min_ratio:.0%} of {objective} {_num(p_obj)} with the same sign"
            + (f" (worst ratio {min(s.worst_ratio for s in sensitivities if s.worst_ratio is not None):.2f})"
               if any(s.worst_ratio is not None for s in sensitivities) else "")
        )
    runs = pl.DataFrame(rows, schema_overrides={"objective": pl.Float64, "total_return": pl.Float64, "passes": pl.Boolean})
    return Perturbation(
        strategy=strategy_cls.name, params=point, objective=objective, pct=pct, min_ratio=min_ratio,
        point_objective=p_obj, point_total_return=p_ret, sensitivities=tuple(sensitivities), runs=runs,
        grid_share=grid_share, verdict=verdict, reason=reason, skipped=tuple(skipped), notes=tuple(grid_notes),
    )


def _num(value: float | None) -> str:
    return "None" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _key(params: Mapping[str, Any]) -> tuple:
    return tuple(sorted(params.items()))


def _fmt(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())
