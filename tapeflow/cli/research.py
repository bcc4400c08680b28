"""`tapeflow walk-forward`, `tapeflow perturb` and `tapeflow grid`: the research flows from the
command line, every argument checked before Prefect starts, then the folds, the verdict or the ranking."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import date
from typing import Annotated, Any, cast

import typer
from rich.markup import escape
from rich.table import Table

from tapeflow.backtest.costs import cost_preset
from tapeflow.backtest.metrics import Metrics
from tapeflow.cli.console import EXIT_BUSY, err, out, refuse
from tapeflow.cli.flow_runs import running_flows
from tapeflow.cli.output import (
    EndOpt,
    StartOpt,
    StrategyArg,
    SymbolOpt,
    check_option,
    chosen_strategy,
    parse_params,
    print_metrics,
    require_sentiment_model,
    strategy_window,
)
from tapeflow.cli.universe import require_membership
from tapeflow.config import Settings, load_settings
from tapeflow.research.stored import stored_sessions
from tapeflow.research.walkforward import MAX_COMBINATIONS, default_grid, folds, move, searched
from tapeflow.strategy.base import Param, Strategy
from warehouse import WarehouseBusy, WarehouseMissing, open_warehouse

OBJECTIVES = tuple(f.name for f in fields(Metrics))
HEADLINE = ("total_return", "annual_return", "sharpe", "max_drawdown", "trades", "win_rate", "commissions",
            "slippage", "final_equity")

ObjectiveOpt = Annotated[str, typer.Option(help="the metric to maximise, e.g. sharpe, total_return, calmar")]
CashOpt = Annotated[float, typer.Option(help="starting cash")]
CostsOpt = Annotated[str, typer.Option(help="retail-default, liquid-etf, large-cap, small-cap, flat-commission or none")]
GRID_SHOWN = 10
GridOpt = Annotated[list[str] | None, typer.Option(
    "--param", "-p", help="name=value[,value...]: that parameter's values in the grid (one value holds it); "
                          "the others as in the default grid (default, -20%, +20%)")]
UniverseOpt = Annotated[str | None, typer.Option(help="enter only the members of this recorded universe at each "
                                                      "decision (tapeflow universe show NAME)")]


def walk_forward_command(
    strategy: StrategyArg,
    param: GridOpt = None,
    symbol: SymbolOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    train: Annotated[int, typer.Option(help="sessions each fold chooses its parameters on")] = 120,
    test: Annotated[int, typer.Option(help="sessions right after, each fold's choice is judged on")] = 40,
    anchored: Annotated[bool, typer.Option("--anchored", help="every fold trains from the first session "
                                                              "(default: the train window rolls)")] = False,
    objective: ObjectiveOpt = "sharpe",
    cash: CashOpt = 100_000.0,
    costs: CostsOpt = "retail-default",
    universe: UniverseOpt = None,
) -> None:
    """Walk a strategy forward on the warehouse: per fold, choose parameters on --train sessions,
    judge them on the --test sessions after; the judged windows are stitched and recorded."""
    strategy_cls = type(chosen_strategy(strategy, {}))  # a wrong name is refused before Prefect starts
    grid = _grid(strategy_cls, param)
    check_option("--train", train >= 1, "a number of sessions >= 1", train, "--train 120")
    check_option("--test", test >= 1, "a number of sessions >= 1", test, "--test 40")
    start, end = strategy_window(strategy_cls.timeframe, start, end)
    settings = _checked(strategy_cls, objective, cash, costs, universe)
    sessions = _sessions(settings, strategy_cls, symbol, start.date(), end.date())
    try:
        plan = folds(sessions, train, test, anchored=anchored)
    except ValueError:
        refuse(f"--train/--test: the {len(sessions)} stored sessions of {start:%Y-%m-%d}..{end:%Y-%m-%d} cannot hold one "
                f"fold of {train} train + {test} test sessions: e.g. --train {max(1, len(sessions) * 3 // 4)} "
                f"--test {max(1, len(sessions) // 4)}, or a longer window")
    searched_grid, candidates, _ = searched(strategy_cls, grid)
    out.print(f"walk-forward {strategy_cls.name} on {len(sessions)} stored sessions, {start:%Y-%m-%d}..{end:%Y-%m-%d}",
              highlight=False)
    out.print(f"{_count(len(plan), 'fold')} ({'anchored' if anchored else 'rolling'}): each chooses on {train} sessions, "
              f"is judged on the {test} after", highlight=False)
    out.print(f"grid: {_grid_words(strategy_cls, searched_grid)} ({_count(len(candidates), 'combination')}), "
              f"by {objective}", highlight=False)
    with running_flows(settings):
        from flows.research import walk_forward  # deferred: Prefect takes seconds to import and reads its settings then

        summary = walk_forward(strategy=strategy_cls.name, grid=grid, objective=objective, symbols=symbol or None,
                               start=start.date(), end=end.date(), train_sessions=train, test_sessions=test,
                               anchored=anchored, cash=cash, costs=costs, universe=universe)
    varied = [name for name, values in searched_grid.items() if len(values) > 1]
    per_fold = cast(list[dict[str, Any]], summary["per_fold"])
    out.print(fold_table(per_fold, objective, varied))
    shown = HEADLINE if objective in HEADLINE else (objective, *HEADLINE)
    print_metrics({k: summary.get(f"oos_{k}") for k in shown}, "out of sample (stitched)")
    out.print(walk_forward_verdict(per_fold, objective, summary.get(f"oos_{objective}")), highlight=False)
    out.print(f"run {summary['run_id']} recorded, with its {_count(len(per_fold), 'fold')}; report:", highlight=False)
    out.print(str(summary["report"]), soft_wrap=True, highlight=False)


def perturb_command(
    strategy: StrategyArg,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="name=value, repeatable: the point "
                                                                          "tested (default: the defaults)")] = None,
    symbol: SymbolOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    pct: Annotated[float, typer.Option(help="how far each parameter moves either way, as a fraction")] = 0.20,
    grid_steps: Annotated[int, typer.Option(help="grid values each side of the point, up to --pct away "
                                                 "(0: no grid)")] = 2,
    objective: ObjectiveOpt = "sharpe",
    cash: CashOpt = 100_000.0,
    costs: CostsOpt = "retail-default",
    universe: UniverseOpt = None,
) -> None:
    """Move each parameter of a point by ±--pct alone, and run a grid around it: a plateau
    keeps its edge nearby, a spike does not. The verdict is recorded with every run's numbers."""
    params = parse_params(param)
    point = chosen_strategy(strategy, params)  # a wrong name or parameter is refused before Prefect starts
    check_option("--pct", math.isfinite(pct) and 0 < pct < 1, "a fraction between 0 and 1", pct, "--pct 0.2")
    check_option("--grid-steps", 0 <= grid_steps <= 10, "a whole number 0..10", grid_steps, "--grid-steps 2")
    start, end = strategy_window(point.timeframe, start, end)
    settings = _checked(type(point), objective, cash, costs, universe)
    sessions = _sessions(settings, type(point), symbol, start.date(), end.date())
    out.print(f"perturb {point.name} at {', '.join(f'{k}={v}' for k, v in point.p.items())}, each moved ±{pct:.0%}",
              highlight=False)
    out.print(f"{len(sessions)} stored sessions, {start:%Y-%m-%d}..{end:%Y-%m-%d}; by {objective}; "
              + (f"grid {grid_steps} step{'s' if grid_steps > 1 else ''} a side" if grid_steps else "no grid"),
              highlight=False)
    with running_flows(settings):
        from flows.research import perturbation  # deferred: Prefect takes seconds to import and reads its settings then

        summary = perturbation(strategy=point.name, params=dict(point.p), symbols=symbol or None, start=start.date(),
                               end=end.date(), pct=pct, objective=objective, cash=cash, costs=costs, universe=universe,
                               grid_steps=grid_steps)
    out.print(sensitivity_table(cast(list[dict[str, Any]], summary["sensitivities"]), objective, pct))
    out.print(runs_table(cast(list[dict[str, Any]], summary["per_run"]), dict(point.p), objective, pct))
    share = summary.get("grid_share")
    out.print(f"verdict: [bold]{escape(str(summary['verdict']))}[/bold]: {escape(str(summary['reason']))}",
              highlight=False)
    if share is not None:
        out.print(f"grid: {share:.0%} of its runs would pass as neighbours (shown, not judged)", highlight=False)
    out.print(f"recorded as run {summary['run_id']}", highlight=False)


def grid_command(
    strategy: StrategyArg,
    param: GridOpt = None,
    symbol: SymbolOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    batch_size: Annotated[int, typer.Option(help="symbols per task; no task holds more symbols' bars than this")] = 25,
    objective: ObjectiveOpt = "sharpe",
    cash: CashOpt = 100_000.0,
    costs: CostsOpt = "retail-default",
) -> None:
    """Scan a parameter grid symbol by symbol: each symbol backtested alone (its own account) with
    every combination, ranked by the median --objective across symbols; the best is recorded."""
    strategy_cls = type(chosen_strategy(strategy, {}))  # a wrong name is refused before Prefect starts
    grid = _grid(strategy_cls, param)
    check_option("--batch-size", batch_size >= 1, "a number of symbols >= 1", batch_size, "--batch-size 25")
    start, end = strategy_window(strategy_cls.timeframe, start, end)
    settings = _checked(strategy_cls, objective, cash, costs, None)
    sessions = _sessions(settings, strategy_cls, symbol, start.date(), end.date())
    searched_grid, candidates, _ = searched(strategy_cls, grid)
    out.print(f"param grid {strategy_cls.name} by symbol on {len(sessions)} stored sessions, "
              f"{start:%Y-%m-%d}..{end:%Y-%m-%d}", highlight=False)
    out.print(f"grid: {_grid_words(strategy_cls, searched_grid)} ({_count(len(candidates), 'combination')}), "
              f"ranked by the median {objective} across symbols; batches of {_count(batch_size, 'symbol')}", highlight=False)
    with running_flows(settings):
        from flows.research import param_grid  # deferred: Prefect takes seconds to import and reads its settings then

        summary = param_grid(strategy=strategy_cls.name, grid=grid, objective=objective, symbols=symbol or None,
                             start=start.date(), end=end.date(), cash=cash, costs=costs, batch_size=batch_size)
    varied = [name for name, values in searched_grid.items() if len(values) > 1]
    ranked = cast(list[dict[str, Any]], summary["ranking"])
    out.print(grid_table(ranked[:GRID_SHOWN], objective, varied, len(ranked)))
    refused = cast(list[str], summary["refused"])
    if refused:
        out.print(f"{_count(len(refused), 'combination')} refused by the strategy (listed in the summary)", highlight=False)
    scanned = cast(list[str], summary["symbols"])
    sent = len(cast(list, summary["batches"]))
    out.print(f"{_count(len(scanned), 'symbol')} scanned in {sent} batch{'' if sent == 1 else 'es'}; "
              f"recorded as run {summary['run_id']}; every row:", highlight=False)
    out.print(str(summary["table"]), soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("walk-forward")(walk_forward_command)
    app.command("perturb")(perturb_command)
    app.command("grid")(grid_command)


# -- checks, before Prefect starts ----------------------------------------------------------------



def _grid(strategy_cls: type[Strategy], pairs: list[str] | None) -> dict[str, list] | None:
    """The grid -p asks for, laid over the default one (None without -p), or exit 2 in one line."""
    if not pairs:
        return None
    known = {p.name: p for p in strategy_cls.params}
    grid, _ = default_grid(strategy_cls)
    for pair in pairs:
        name, sep, values = (part.strip() for part in pair.partition("="))
        if not sep or not name or not values:
            first = strategy_cls.params[0]
            refuse(f"--param takes name=value[,value...], got {pair!r}: e.g. -p {first.name}={_example(first)}")
        if name not in known:
            refuse(f"--param: {strategy_cls.name} has no parameter {name}; it has {', '.join(known)}")
        numbers = [_number(v) for v in values.split(",")]
        if None in numbers:
            refuse(f"--param {name} takes numbers separated by commas, got {values!r}: e.g. -p {name}={_example(known[name])}")
        try:
            grid[name] = list(dict.fromkeys(known[name].coerce(n) for n in numbers))
        except ValueError as exc:
            refuse(f"--param: {exc}: e.g. -p {name}={_example(known[name])}")
    size = math.prod(len(values) for values in grid.values())
    if size > MAX_COMBINATIONS:
        refuse(f"--param: the grid has {size} combinations and a walk-forward searches at most {MAX_COMBINATIONS}: "
                "name fewer values")
    try:
        searched(strategy_cls, grid)
    except ValueError as exc:  # no combination the strategy accepts
        refuse(f"--param: {exc}")
    return grid


def _number(text: str) -> float | None:
    """A finite number, or None."""
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _example(param: Param) -> str:
    """Values of `param` to show in a message: its default grid, default first."""
    return ",".join(map(str, sorted({param.default, move(param, param.default, 0.8), move(param, param.default, 1.2)})))


def _checked(strategy_cls: type[Strategy], objective: str, cash: float, costs: str, universe: str | None) -> Settings:
    """The options both commands share, checked; the settings they run with."""
    check_option("--objective", objective in OBJECTIVES, f"a metric ({', '.join(OBJECTIVES)})", objective,
                 "--objective sharpe")
    check_option("--cash", math.isfinite(cash) and cash > 0, "a finite amount > 0", cash, "--cash 100000")
    try:
        cost_preset(costs)
    except ValueError as exc:
        refuse(f"--costs: {exc}")
    settings = load_settings()
    if universe:
        require_membership(settings, universe, "--universe")
    require_sentiment_model(settings, strategy_cls)
    return settings


def _sessions(settings: Settings, strategy_cls: type[Strategy], symbols: list[str] | None, start: date,
              end: date) -> list[date]:
    """The sessions the warehouse holds bars on in the window, or exit 2 naming what to ingest."""
    timeframe = strategy_cls.timeframe.value
    try:
        with open_warehouse(settings).read() as con:
            sessions = stored_sessions(con, timeframe, start, end, symbols)
    except WarehouseMissing:
        sessions = []
    except WarehouseBusy as exc:
        err.print(str(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(EXIT_BUSY) from None
    if not sessions:
        of = f" of {', '.join(symbols)}" if symbols else ""
        refuse(f"--start/--end: the warehouse holds no {timeframe} bars{of} on {start}..{end}: ingest them first, "
                f"e.g. tapeflow ingest --timeframe {timeframe} --start {start} --end {end}")
    return sessions


def _grid_words(strategy_cls: type[Strategy], grid: Mapping[str, Sequence]) -> str:
    """The grid in words: each varied parameter's values, then what is held."""
    varied = [f"{name} {', '.join(map(str, values))}" for name, values in grid.items() if len(values) > 1]
    held = {p.name: p.default for p in strategy_cls.params} | {n: v[0] for n, v in grid.items() if len(v) == 1}
    held_words = ", ".join(f"{n}={v}" for n, v in held.items() if n not in grid or len(grid[n]) == 1)
    return "; ".join(varied or ["nothing varied"]) + (f"; held {held_words}" if held_words else "")


# -- tables, each within 80 columns ---------------------------------------------------------------


def fold_table(rows: Sequence[Mapping[str, Any]], objective: str, varied: Sequence[str]) -> Table:
    """One row a fold: the days it was judged on, its choice, the objective on both sides."""
    table = Table(title=f"folds: {objective} in sample (train) and out of sample (test)", title_justify="left",
                  title_style="bold")
    for name in ("fold", "tested", "chosen", "in", "out", "return"):
        table.add_column(name, justify="left" if name in ("tested", "chosen") else "right", no_wrap=name != "chosen")
    for row in sorted(rows, key=lambda r: r["fold"]):
        chosen = ", ".join(f"{k}={v}" for k, v in row["params"].items() if k in varied) or "-"
        table.add_row(str(row["fold"]), _days(row["test_first"], row["test_last"]), chosen,
                      _num(row[f"in_sample_{objective}"]), _num(row[f"oos_{objective}"]), _num(row["oos_total_return"]))
    return table


def grid_table(rows: Sequence[Mapping[str, Any]], objective: str, varied: Sequence[str], total: int) -> Table:
    """The best combinations: what they vary, the median objective across symbols, how many made money."""
    table = Table(title=f"best {len(rows)} of {total}: median {objective} across symbols", title_justify="left",
                  title_style="bold")
    for name in ("rank", "params", objective, "positive", "return", "trades"):
        table.add_column(name, justify="left" if name == "params" else "right", no_wrap=name != "params")
    for row in rows:
        params = json.loads(row["params"])
        table.add_row(str(row["rank"]), ", ".join(f"{k}={params[k]}" for k in varied) or "-",
                      _num(row["median_objective"]), f"{row['positive_share']:.0%}", _num(row["median_total_return"]),
                      str(row["trades"]))
    return table


def walk_forward_verdict(rows: Sequence[Mapping[str, Any]], objective: str, stitched: object) -> str:
    """The in-sample objective the folds chose by against what they then made out of sample."""
    chosen = [r[f"in_sample_{objective}"] for r in rows if r[f"in_sample_{objective}"] is not None]
    held = sum(1 for r in rows if (r[f"oos_{objective}"] or 0) > 0)
    in_sample = f"{statistics.fmean(chosen):.3f} (folds' mean)" if chosen else "-"
    return f"{objective}: {in_sample} in sample, {_num(stitched)} out of sample; {held}/{len(rows)} folds above 0"


def sensitivity_table(rows: Sequence[Mapping[str, Any]], objective: str, pct: float) -> Table:
    """One row a parameter: its value moved down and up, the objective there and the worst ratio."""
    table = Table(title=f"{objective}, each parameter moved alone", title_justify="left", title_style="bold")
    for name in ("parameter", "values", f"-{pct:.0%}", "point", f"+{pct:.0%}", "worst"):
        table.add_column(name, justify="left" if name in ("parameter", "values") else "right", no_wrap=True)
    for row in rows:
        values = " / ".join("-" if v is None else str(v) for v in (row["low_value"], row["point_value"], row["high_value"]))
        table.add_row(row["param"], values, _num(row["objective_low"]), _num(row["objective_point"]),
                      _num(row["objective_high"]), _num(row["worst_ratio"]))
    return table


def runs_table(rows: Sequence[Mapping[str, Any]], point: Mapping[str, Any], objective: str, pct: float) -> Table:
    """Every run: the point, each neighbour and the grid, by what moved."""
    table = Table(title=f"every run ({len(rows)}): what moved from the point", title_justify="left", title_style="bold")
    for name in ("run", "moved", objective, "return", "passes"):
        table.add_column(name, justify="right" if name in (objective, "return") else "left", no_wrap=name != "moved")
    kinds = {"-pct": f"-{pct:.0%}", "+pct": f"+{pct:.0%}"}
    for row in rows:
        moved = ", ".join(f"{k}={row[k]}" for k in point if row.get(k) != point[k]) or "-"
        passes = {True: "yes", False: "no", None: "-"}[row["passes"]]
        table.add_row(kinds.get(row["kind"], row["kind"]), moved, _num(row["objective"]), _num(row["total_return"]), passes)
    return table


def _num(value: object) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"


def _days(first: date, last: date) -> str:
    """A window of days, the year said once when both ends share it."""
    return f"{first:%Y-%m-%d}..{last:%m-%d}" if first.year == last.year else f"{first:%Y-%m-%d}..{last:%Y-%m-%d}"
