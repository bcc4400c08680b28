"""Walk-forward optimisation: choose parameters on the past, judge them only on what came after.

Folds
    `folds(sessions, train, test, step, anchored)` cuts a list of sessions (dates) or bar start
    instants (the "points") into folds. Fold k trains on `train` consecutive points and tests
    on the `test` points right after them; the next fold starts `step` points later (default:
    `test`, so the test windows tile the data without overlap). Rolling folds keep the train
    length fixed; anchored folds train from the first point every time. Points are sorted and
    de-duplicated. Only whole test windows are made: the points left over at the end (fewer
    than `test`) are not tested.

    Every window is half-open, [start, end), on a bar's START instant (`ts`):
    - for sessions (dates), a session's window boundary is 00:00 New York on that date, so a
      session's pre-market, regular and after-hours bars all fall in the same window; the end
      of the last window is 00:00 New York the day after its last session;
    - for instants (bar starts, e.g. `bars["ts"].unique().sort()`), the boundary is the
      instant itself; the end of the last window is the last instant plus the median spacing.
    A fold's test_start equals its train_end.

What one window's run sees (`run_window`)
    The strategy is run on `history.until(end)`: everything knowable at the window's end,
    including all the history BEFORE the window. That is the warm-up: an SMA(30) needs 30
    closes before it can signal, and those closes are the past, not the future. Only signals
    whose `at` lies in [start, end) are kept and simulated, against the same bars up to `end`
    (the bars before the window only give prices and liquidity; no order can fill before the
    window's first signal). The book starts flat with `config.cash` in every window. The
    equity curve is kept from the window's first bar (bar ends after `start`); a position
    still open at the end is marked at the last close, not sold. A signal on the window's last
    bar cannot fill inside the window ("placed: never filled"). No bar starting at or after
    `end` is visible to the strategy or the simulator.

Choosing (`walk_forward`)
    Per fold, every combination of `grid` is run on the TRAIN window only and scored by
    `compute_metrics(result)[objective]`; larger is better. A missing, None or NaN objective
    ranks last. Ties go to the combination enumerated first: itertools.product over the
    grid's keys in their order, each key's values in their order (the default grid lists the
    default value first, so a tie keeps the default). Combinations the strategy refuses
    (ValueError from `strategy_cls(**params)`, e.g. fast >= slow) are skipped and listed.
    The chosen combination then runs on the TEST window only.

    Default grid (`default_grid`): every numeric parameter at its default, default x 0.8 and
    default x 1.2, clipped to its range, ints rounded half up, duplicates dropped. Parameters
    are varied in declaration order while the number of combinations stays within
    `max_combinations` (64); a parameter that would exceed it is held at its default (and
    said so in `notes`). A user grid larger than `max_combinations` is refused.

Reporting
    Results are OUT OF SAMPLE: each fold's test-window metrics, and the overall metrics on
    the stitched out-of-sample equity curve: fold by fold, each test window's equity is
    rescaled so that it starts where the previous one ended (the first starts from
    `config.cash`), i.e. the folds' returns are compounded. Test windows must not overlap.
    Fills, trades and decisions of the stitched result are the folds' own (unscaled dollars).
    The in-sample objective of every candidate is kept, labelled `in_sample_*`, for
    comparison only (its gap to the out-of-sample number is the overfitting).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

from tapeflow.backtest.adjust import adjusted_signals, price_actions
from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.engine import BacktestResult
from tapeflow.backtest.liquidity import with_liquidity
from tapeflow.backtest.metrics import compute_metrics
from tapeflow.backtest.universe import simulate_in
from tapeflow.calendar.exchange import NEW_YORK, ny_day_bounds
from tapeflow.progress import tracked
from tapeflow.sources.universe import Membership
from tapeflow.strategy.history import History

MAX_COMBINATIONS = 64
DEFAULT_PCT = 0.20


@dataclass(frozen=True)
class Fold:
    """One fold's windows, each [start, end) on bar start instants (UTC)."""

    index: int
    train_start: datetime
    train_end: datetime
    test_start: datetime
    test_end: datetime


# --------------------------------------------------------------------------------------------
# folds


def sessions_of(history: History | pl.DataFrame) -> list[date]:
    """The New York dates of the bars' starts: the sessions to hand to `folds`."""
    bars = history.bars if isinstance(history, History) else history
    return bars["ts"].dt.convert_time_zone(str(NEW_YORK)).dt.date().unique().sort().to_list()


def _boundaries(points: Sequence[date] | Sequence[datetime]) -> list[datetime]:
    """n + 1 window boundaries (UTC) for n sorted distinct points."""
    if all(isinstance(p, datetime) for p in points):
        if any(p.tzinfo is None for p in points):
            raise ValueError("instants must be timezone-aware")
        instants = sorted({p.astimezone(UTC) for p in points})
        gaps = [b - a for a, b in itertools.pairwise(instants)]
        spacing = statistics.median(gaps) if gaps else timedelta(microseconds=1)
        return instants + [instants[-1] + spacing]
    if any(isinstance(p, datetime) or not isinstance(p, date) for p in points):
        raise ValueError("points must be all dates (sessions) or all datetimes (bar starts)")
    days = sorted(set(points))
    return [ny_day_bounds(d)[0] for d in days] + [ny_day_bounds(days[-1])[1]]


def folds(
    sessions: Sequence[date] | Sequence[datetime],
    train: int,
    test: int,
    step: int | None = None,
    anchored: bool = False,
) -> list[Fold]:
    """Walk-forward folds over `sessions` (dates, e.g. `sessions_of(history)`, or bar start
    instants): `train`, `test` and `step` count them. See the module docstring."""
    step = test if step is None else step
    for name, value in (("train", train), ("test", test), ("step", step)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    if not sessions:
        raise ValueError("no sessions to cut into folds")
    bounds = _boundaries(sessions)
    n = len(bounds) - 1
    if train + test > n:
        raise ValueError(f"{n} points cannot hold one fold of {train} train + {test} test")
    out = []
    for index, first in enumerate(range(0, n - train - test + 1, step)):
        split = first + train
        out.append(Fold(index, bounds[0 if anchored else first], bounds[split], bounds[split], bounds[split + test]))
    return out


# --------------------------------------------------------------------------------------------
# grids


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def move(param, value: int | float, factor: float) -> int | float:
    """`value` x `factor`, clipped to the parameter's range (ints rounded half up)."""
    x = min(max(value * factor, param.low), param.high)
    if param.kind is int:
        return int(min(max(_round_half_up(x), param.low), param.high))
    return float(x)


def numeric_params(strategy_cls) -> list:
    """The parameters a search may move: numeric and tunable (not sizing knobs like qty)."""
    return [p for p in strategy_cls.params if p.kind in (int, float) and p.tunable]


def default_grid(strategy_cls, pct: float = DEFAULT_PCT, max_combinations: int = MAX_COMBINATIONS) -> tuple[dict[str, list], list[str]]:
    """Each numeric parameter at default, -pct, +pct (see the module docstring), and notes on
    the parameters held at their default to stay within `max_combinations`."""
    grid: dict[str, list] = {}
    notes: list[str] = []
    size = 1
    for param in numeric_params(strategy_cls):
        values = list(dict.fromkeys([param.default, move(param, param.default, 1 - pct), move(param, param.default, 1 + pct)]))
        if size * len(values) <= max_combinations:
            grid[param.name] = values
            size *= len(values)
        else:
            grid[param.name] = [param.default]
            notes.append(f"{param.name} held at its default {param.default}: varying it would exceed {max_combinations} combinations")
    return grid, notes


def combinations(strategy_cls, grid: Mapping[str, Sequence]) -> tuple[list[dict[str, Any]], list[str]]:
    """Every combination of `grid` the strategy accepts, in enumeration order, and a note per
    refused one."""
    names = list(grid)
    accepted, refused = [], []
    for values in itertools.product(*(list(grid[n]) for n in names)):
        params = dict(zip(names, values, strict=True))
        try:
            strategy = strategy_cls(**params)
        except ValueError as exc:
            refused.append(f"{_fmt(params)} refused by the strategy: {exc}")
            continue
        accepted.append({k: strategy.p[k] for k in names})
    return accepted, refused


def _fmt(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


# --------------------------------------------------------------------------------------------
# one window


def run_window(strategy, history: History, start: datetime, end: datetime, config: BacktestConfig,
               members: Membership | None = None) -> BacktestResult:
    """The strategy's signals with `at` in [start, end), simulated on what was knowable at
    `end`, starting flat with `config.cash` (entries only on `members`' symbols of the moment,
    when given); the equity curve from the window's first bar."""
    known = history.until(end)
    priced = price_actions(known, config.adjust)  # decided on and booked across corporate actions, as a backtest is
    signals = adjusted_signals(strategy, known, priced).filter((pl.col("at") >= start) & (pl.col("at") < end))
    result = simulate_in(with_liquidity(known.bars, known.liquidity), signals, config, members, timeframe=strategy.timeframe,
                         steps=priced.steps)
    return replace(result, equity=result.equity.filter(pl.col("ts") > start))


def score(metrics: Mapping[str, Any], objective: str) -> float | None:
    """The objective as a finite float, or None (missing, None, NaN or not a number)."""
    value = metrics.get(objective)
    try:
        value = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------------------------
# walk-forward


@dataclass(frozen=True)
class FoldResult:
    fold: Fold
    params: dict[str, Any]  # chosen on the train window
    in_sample_objective: float | None  # IN-SAMPLE (train window) objective of the chosen params
    in_sample: pl.DataFrame  # IN-SAMPLE: every candidate, its objective and rank (1 = chosen)
    out_of_sample: dict[str, object]  # metrics of the chosen params on the test window
    result: BacktestResult  # the test-window run

    def line(self, objective: str) -> str:
        """The fold in a few words, for progress: its choice and both sides of the objective."""
        return (f"fold {self.fold.index}: {objective} {_num(self.in_sample_objective)} in sample, "
                f"{_num(score(self.out_of_sample, objective))} out ({_fmt(self.params)})")

    def row(self, objective: str) -> dict[str, Any]:
        """The fold as plain values: the New York days it tested, its choice and its numbers."""
        marks = self.result.equity["ts"]
        last = marks.max() if marks.len() else self.fold.test_end - timedelta(microseconds=1)
        return {
            "fold": self.fold.index, "test_first": self.fold.test_start.astimezone(NEW_YORK).date(),
            "test_last": last.astimezone(NEW_YORK).date(),  # type: ignore[union-attr]
            "params": dict(self.params), f"in_sample_{objective}": self.in_sample_objective,
            f"oos_{objective}": score(self.out_of_sample, objective),
            "oos_total_return": score(self.out_of_sample, "total_return"), "oos_trades": self.out_of_sample.get("trades"),
        }


def _num(value: float | None) -> str:
    return "none" if value is None else f"{value:.2f}"


@dataclass(frozen=True)
class WalkForward:
    strategy: str
    objective: str
    grid: dict[str, list]
    folds: tuple[FoldResult, ...]
    result: BacktestResult  # the stitched out-of-sample run (equity compounded across folds)
    metrics: dict[str, object]  # OUT OF SAMPLE, on the stitched curve
    notes: tuple[str, ...]  # parameters held at default, combinations refused

    @property
    def equity(self) -> pl.DataFrame:
        return self.result.equity

    def summary(self) -> pl.DataFrame:
        """One row per fold: windows, chosen params, in-sample objective, out-of-sample metrics."""
        rows = []
        for f in self.folds:
            rows.append({
                "fold": f.fold.index, "train_start": f.fold.train_start, "train_end": f.fold.train_end,
                "test_start": f.fold.test_start, "test_end": f.fold.test_end, "params": _fmt(f.params),
                f"in_sample_{self.objective}": f.in_sample_objective,
                f"oos_{self.objective}": score(f.out_of_sample, self.objective),
                "oos_total_return": score(f.out_of_sample, "total_return"),
                "oos_max_drawdown": score(f.out_of_sample, "max_drawdown"),
            })
        return pl.DataFrame(rows)


def walk_forward(
    strategy_cls,
    history: History,
    grid: Mapping[str, Sequence] | None = None,
    objective: str = "sharpe",
    *,
    folds: Sequence[Fold],
    config: BacktestConfig = BacktestConfig(),
    max_combinations: int = MAX_COMBINATIONS,
    members: Membership | None = None,
) -> WalkForward:
    """Choose params per fold on its train window, run them on its test window, stitch the
    test windows: see the module docstring for the rules (`members`: the universe entries keep to)."""
    if not folds:
        raise ValueError("no folds")
    ordered = sorted(folds, key=lambda f: f.test_start)
    for a, b in itertools.pairwise(ordered):
        if b.test_start < a.test_end:
            raise ValueError(f"test windows of folds {a.index} and {b.index} overlap: out-of-sample results cannot be stitched")
    grid, candidates, notes = searched(strategy_cls, grid, max_combinations)

    results = []
    with tracked(f"walk-forward {strategy_cls.name}", total=len(ordered)) as progress:
        for fold in ordered:
            results.append(run_fold(strategy_cls, history, candidates, objective, fold, config, members))
            progress.advance(detail=results[-1].line(objective))

    stitched = stitch([r.result for r in results], config)
    return WalkForward(strategy_cls.name, objective, dict(grid), tuple(results), stitched, compute_metrics(stitched), tuple(notes))


def searched(strategy_cls, grid: Mapping[str, Sequence] | None = None,
             max_combinations: int = MAX_COMBINATIONS) -> tuple[dict[str, list], list[dict[str, Any]], list[str]]:
    """The grid a walk-forward searches (the default one when None), the combinations the
    strategy accepts, and notes on what was held or refused; ValueError for a grid it cannot search."""
    notes: list[str] = []
    if grid is None:
        grid, held = default_grid(strategy_cls, max_combinations=max_combinations)
        notes += held
    else:
        grid = {k: list(v) for k, v in grid.items()}
        known = {p.name for p in strategy_cls.params}
        unknown = sorted(set(grid) - known)
        if unknown:
            raise ValueError(f"{strategy_cls.name} has no parameter {', '.join(unknown)}")
        if any(not v for v in grid.values()):
            raise ValueError("every grid entry needs at least one value")
        size = math.prod(len(v) for v in grid.values())
        if size > max_combinations:
            raise ValueError(f"the grid has {size} combinations, more than max_combinations={max_combinations}")
    candidates, refused = combinations(strategy_cls, grid)
    if not candidates:
        raise ValueError(f"the strategy refused every combination of the grid ({refused[0]})")
    return dict(grid), candidates, notes + refused


def run_fold(strategy_cls, history: History, candidates: Sequence[Mapping[str, Any]], objective: str, fold: Fold,
             config: BacktestConfig, members: Membership | None = None) -> FoldResult:
    """Every candidate on the fold's train window, the best by `objective` on its test window."""
    scored = []
    for order, params in enumerate(candidates):
        run = run_window(strategy_cls(**params), history, fold.train_start, fold.train_end, config, members)
        scored.append((order, params, score(compute_metrics(run), objective)))
    ranked = sorted(scored, key=lambda s: (s[2] is None, -(s[2] or 0.0), s[0]))
    _, chosen, chosen_score = ranked[0]
    rank = {order: i + 1 for i, (order, _, _) in enumerate(ranked)}
    in_sample = pl.DataFrame(
        [{**params, f"in_sample_{objective}": value, "rank": rank[order]} for order, params, value in scored],
        schema_overrides={f"in_sample_{objective}": pl.Float64},
    )
    test_run = run_window(strategy_cls(**chosen), history, fold.test_start, fold.test_end, config, members)
    return FoldResult(fold, dict(chosen), chosen_score, in_sample, compute_metrics(test_run), test_run)


def stitch(runs: Sequence[BacktestResult], config: BacktestConfig) -> BacktestResult:
    """Chain the runs' equity curves (in order, not overlapping): each is rescaled to start
    where the previous ended, the first from `config.cash`."""
    level = config.cash
    curves = []
    for run in runs:
        if not run.equity.height:
            continue
        factor = level / run.start_cash
        curves.append(run.equity.with_columns(pl.col("cash", "positions", "equity") * factor))
        level = float(run.equity["equity"][-1]) * factor
    first = runs[0]
    concat = lambda frames, empty: pl.concat(frames) if frames else empty  # noqa: E731
    return BacktestResult(
        fills=concat([r.fills for r in runs], first.fills),
        trades=concat([r.trades for r in runs], first.trades),
        equity=concat(curves, first.equity.clear()),
        decisions=concat([r.decisions for r in runs], first.decisions),
        config=config,
        start_cash=config.cash,
    )
