"""`tapeflow promote`, `tapeflow promotions` and `tapeflow paper-gap`: the staged release
from the command line (records in the warehouse; see tapeflow/live/promotion.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from tapeflow.backtest.costs import cost_preset
from tapeflow.cli.console import EXIT_REFUSED, err, out
from tapeflow.cli.output import parse_params, print_frame, print_metrics
from tapeflow.config import load_settings
from tapeflow.live.launch import warehouse_of_session
from tapeflow.live.paper_gap import GapError, measure_gap, store_gap
from tapeflow.live.promotion import (
    InvalidPromotion,
    PromotionRefused,
    list_promotions,
    promote,
)
from tapeflow.model import Mode
from warehouse import open_warehouse


def promote_command(
    strategy: Annotated[str, typer.Argument(help="a strategy name (tapeflow strategies lists them)")],
    to: Annotated[str, typer.Option("--to", help="paper or live")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="name=value, repeatable")] = None,
    override_reason: Annotated[str | None, typer.Option(help="go live before the minimum of reconciled paper "
                                                              "sessions; the reason is recorded")] = None,
) -> None:
    """Promote STRATEGY with its parameters to paper or live (live: enough reconciled paper sessions)."""

    settings = load_settings()
    try:
        done = promote(open_warehouse(settings), strategy, parse_params(param), to, override_reason=override_reason,
                       min_paper_sessions=settings.min_paper_sessions)
    except InvalidPromotion as exc:
        err.print(f"[red]{exc}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None
    except PromotionRefused as exc:
        err.print(f"[red]{exc}[/red]", soft_wrap=True)
        raise typer.Exit(EXIT_REFUSED) from None
    note = f"; override: {done.override_reason}" if done.override_reason else ""
    out.print(f"{done.strategy} {done.params} (params {done.params_hash}) promoted to {done.stage.value} at "
              f"{done.promoted_at:%Y-%m-%d %H:%M %Z} with {done.paper_sessions} reconciled paper session(s){note}",
              soft_wrap=True)
    if done.stage is Mode.LIVE:
        out.print("trading it live also needs TAPEFLOW_MODE=live and TAPEFLOW_LIVE_CONFIRMED=true", soft_wrap=True)


def promotions_command() -> None:
    """Every promotion, with the reconciled paper sessions of its parameter set."""

    print_frame(list_promotions(open_warehouse(load_settings())), title="promotions")


def paper_gap_command(
    session_id: Annotated[str, typer.Argument(help="a paper trading_sessions.session_id")],
    costs: Annotated[str | None, typer.Option(help="the sim broker's cost preset; default TAPEFLOW_SIM_COSTS")] = None,
) -> None:
    """Replay a paper session's decisions through the backtest engine; store and print the gap."""

    settings = load_settings()
    warehouse = warehouse_of_session(settings, open_warehouse(settings), session_id)  # a replayed day has its own file
    try:
        report = measure_gap(warehouse, session_id, cost_preset(costs or settings.sim_costs))
    except (GapError, ValueError) as exc:
        err.print(f"[red]{exc}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None
    store_gap(warehouse, report)
    shown = report.decisions.select("decided_at", "symbol", "action", "outcome", "paper_qty", "backtest_qty",
                                    "paper_price", "backtest_price", "paper_time", "backtest_time", "gap", "cause")
    print_frame(shown, title=f"{session_id}: per decision (gap = paper - backtest)", max_rows=200)
    print_frame(report.trades, title="per round trip", max_rows=200)
    print_metrics(report.summary(), "gap (paper P&L - backtest P&L), by cause")


def register(app: typer.Typer) -> None:
    app.command("promote")(promote_command)
    app.command("promotions")(promotions_command)
    app.command("paper-gap")(paper_gap_command)
