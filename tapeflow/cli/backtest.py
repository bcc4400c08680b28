"""`tapeflow backtest`: a strategy on a bars file (`--bars`, in this process) or on the warehouse
(through the flow); it starts on this module alone, so a file's backtest pays for no Prefect."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Annotated
from uuid import uuid4

import typer

from tapeflow.backtest.bar_file import BarFileRefused, load_bar_file
from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.costs import cost_preset
from tapeflow.backtest.run import run_backtest
from tapeflow.cli.console import EXIT_REFUSED, err, out
from tapeflow.cli.flow_runs import running_flows
from tapeflow.cli.output import (
    BarsOpt,
    EndOpt,
    ParamOpt,
    StartOpt,
    StrategyArg,
    SymbolOpt,
    check_option,
    chosen_strategy,
    parse_params,
    print_metrics,
    require_sentiment_model,
    require_warehouse,
    strategy_window,
)
from tapeflow.cli.universe import require_membership
from tapeflow.config import load_settings
from tapeflow.model import AdjustMode
from tapeflow.risk.policy import DEFAULT_POLICY
from tapeflow.strategy.history import History


def backtest_command(
    strategy: StrategyArg,
    param: ParamOpt = None,
    bars: BarsOpt = None,
    symbol: SymbolOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    cash: float = 100_000.0,
    costs: Annotated[str, typer.Option(
        help="retail-default, liquid-etf, large-cap, small-cap, flat-commission or none")] = "retail-default",
    fills_out: Annotated[str | None, typer.Option(help="write the fills here (.parquet or .csv)")] = None,
    equity_out: Annotated[str | None, typer.Option(help="write the equity curve here (.parquet or .csv)")] = None,
    universe: Annotated[str | None, typer.Option(help="enter only the members of this recorded universe at each "
                                                      "decision (tapeflow universe show NAME)")] = None,
    adjust: Annotated[AdjustMode, typer.Option(help="prices adjusted for splits and spin-offs (default), also for "
                                                    "dividends (total-return), or raw")] = AdjustMode.SPLITS,
    stop_loss_pct: Annotated[float | None, typer.Option(help="protective stop under each entry, e.g. 0.02")] = None,
) -> None:
    """Backtest a strategy; with --bars on any file, otherwise on the warehouse through the flow."""

    params = parse_params(param)
    chosen = chosen_strategy(strategy, params)  # a wrong name or parameter is refused before Prefect starts
    check_option("--cash", math.isfinite(cash) and cash > 0, "a finite amount > 0", cash, "--cash 100000")
    start, end = strategy_window(chosen.timeframe, start, end)
    try:
        preset = cost_preset(costs)
    except ValueError as exc:
        err.print(f"--costs: {exc}", style="red", markup=False, highlight=False)
        raise typer.Exit(EXIT_REFUSED) from None
    if stop_loss_pct is not None:
        check_option("--stop-loss-pct", 0 < stop_loss_pct < 1, "a fraction within (0, 1)", stop_loss_pct,
                     "--stop-loss-pct 0.02")
    members = require_membership(load_settings(), universe, "--universe") if universe else None  # before Prefect starts
    if bars is None:
        require_warehouse(load_settings())
        require_sentiment_model(load_settings(), chosen)
    if bars is None:
        with running_flows(load_settings()):
            from flows.backtest import backtest as backtest_flow  # deferred: Prefect takes seconds to import and reads its settings then

            summary = backtest_flow(strategy=strategy, params=params, symbols=symbol, start=start.date(),
                                    end=end.date(), cash=cash, costs=costs, universe=universe, adjust=adjust,
                                    **({"stop_loss_pct": stop_loss_pct} if stop_loss_pct is not None else {}))
        print_metrics(summary, f"backtest {strategy}")
        return

    history = bar_file_history(bars, chosen.timeframe, symbol)
    from tapeflow.backtest.report import render_report  # deferred: matplotlib

    try:
        config = BacktestConfig(cash=cash, costs=preset, adjust=adjust,
                                policy=replace(DEFAULT_POLICY, stop_loss_pct=stop_loss_pct))
        run = run_backtest(chosen, history, config, universe=bars, members=members)
    except (ValueError, OSError, LookupError) as exc:  # LookupError: no sentiment model for a news strategy
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    for path, frame in ((fills_out, run.result.fills), (equity_out, run.result.equity)):
        if path:
            frame.write_parquet(path) if path.endswith(".parquet") else frame.write_csv(path)
    run_id = f"file-{uuid4().hex[:12]}"
    report = render_report(run.result, run_id=run_id, title=f"{chosen!r} on {bars}", metrics=run.metrics,
                           assumptions=run.assumptions, out_dir=load_settings().home.resolve() / "reports",
                           bars=run.bars, benchmark=run.benchmark)
    print_metrics(run.metrics, f"{chosen!r}")
    out.print(f"fills: {run.result.fills.height}, final equity: {run.result.final_equity:,.2f}")
    out.print(f"report: {report}", soft_wrap=True)


def bar_file_history(path: str, timeframe: str, symbols: list[str] | None) -> History:
    """The rows of a --bars file that ingest's checks keep, the others counted on stderr; a file
    with none usable exits 2 in one line."""
    try:
        loaded = load_bar_file(path, timeframe, symbols)
    except BarFileRefused as exc:
        err.print(str(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(EXIT_REFUSED) from None
    if (line := loaded.quarantine_line()) is not None:
        err.print(line, style="yellow", markup=False, highlight=False)
    return loaded.history
