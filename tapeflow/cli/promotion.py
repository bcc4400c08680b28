"""`tapeflow promote`, `tapeflow promotions` and `tapeflow paper-gap`: the staged release
from the command line (records in the warehouse; see tapeflow/live/promotion.py)."""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer

from tapeflow.backtest.costs import cost_preset
from tapeflow.cli.console import EXIT_REFUSED, err, out
from tapeflow.cli.output import OutputFormat, ParamOpt, StrategyArg, parse_params, print_frame
from tapeflow.cli.trading_views import print_gap, print_promotions
from tapeflow.config import load_settings
from tapeflow.live.paper_gap import GapError, measure_gap, store_gap
from tapeflow.live.promotion import (
    InvalidPromotion,
    PromotionRefused,
    list_promotions,
    promote,
)
from tapeflow.live.recorded import SessionNotFound, warehouse_of_session
from tapeflow.model import Mode
from warehouse import open_warehouse


def promote_command(
    strategy: StrategyArg,
    to: Annotated[str, typer.Option("--to", help="paper or live")],
    param: ParamOpt = None,
    override_reason: Annotated[str | None, typer.Option(help="go live before the minimum of reconciled paper "
                                                              "sessions; the reason is recorded")] = None,
) -> None:
    """Promote STRATEGY with its parameters to paper or live (live: enough reconciled paper sessions)."""

    settings = load_settings()
    try:
        done = promote(open_warehouse(settings), strategy, parse_params(param), to, override_reason=override_reason,
                       min_paper_sessions=settings.min_paper_sessions)
    except (InvalidPromotion, PromotionRefused) as exc:  # a wrong name or parameter, or too early for live
        _fail(str(exc), EXIT_REFUSED)
    note = f"; override: {done.override_reason}" if done.override_reason else ""
    out.print(f"{done.strategy} {done.params} (params {done.params_hash}) promoted to {done.stage.value} at "
              f"{done.promoted_at:%Y-%m-%d %H:%M %Z} with {done.paper_sessions} reconciled paper session(s){note}",
              soft_wrap=True)
    if done.stage is Mode.LIVE:
        out.print("trading it live also needs TAPEFLOW_MODE=live and TAPEFLOW_LIVE_CONFIRMED=true", soft_wrap=True)


def promotions_command(
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="table, csv or json")] = OutputFormat.TABLE,
) -> None:
    """Every promotion, with the reconciled paper sessions of its parameter set."""

    frame = list_promotions(open_warehouse(load_settings()))
    if fmt is OutputFormat.TABLE:
        print_promotions(frame)
    else:
        print_frame(frame, fmt)


def paper_gap_command(
    session_id: Annotated[str, typer.Argument(help="a paper session's id, from the warehouse or a replay "
                                                   "(tapeflow sessions lists them)")],
    costs: Annotated[str | None, typer.Option(help="the sim broker's cost preset; default TAPEFLOW_SIM_COSTS")] = None,
) -> None:
    """Replay a paper session's decisions through the backtest engine; store and print the gap."""

    settings = load_settings()
    try:
        preset = cost_preset(costs or settings.sim_costs)
    except ValueError as exc:
        _fail(f"--costs: {exc}", EXIT_REFUSED)
    try:
        warehouse = warehouse_of_session(settings, open_warehouse(settings), session_id)  # a replayed day has its own file
    except SessionNotFound as exc:
        _fail(str(exc), EXIT_REFUSED)
    try:
        report = measure_gap(warehouse, session_id, preset)
    except (GapError, ValueError) as exc:  # not paper, or its data does not line up
        _fail(str(exc), 1)
    store_gap(warehouse, report)
    print_gap(report, str(warehouse.path))


def _fail(message: str, code: int) -> NoReturn:
    err.print(message, style="red", markup=False, highlight=False, emoji=False)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("promote")(promote_command)
    app.command("promotions")(promotions_command)
    app.command("paper-gap")(paper_gap_command)
