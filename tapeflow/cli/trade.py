"""`tapeflow trade` (a session now, or a replayed day) and `tapeflow sessions` (what ran);
`tapeflow kill-switch` is registered here from its own module."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from tapeflow.cli.console import EXIT_REFUSED, err, out
from tapeflow.cli.flow_runs import running_flows
from tapeflow.cli.kill_switch import kill_switch_command
from tapeflow.cli.output import chosen_strategy, parse_params, print_frame, print_metrics
from tapeflow.config import load_settings
from tapeflow.live.launch import ReplayRunning, check_replay
from warehouse import WarehouseMissing, open_warehouse
from warehouse.query import run_read_only


def trade_command(
    strategy: Annotated[str, typer.Argument(help="a strategy name, e.g. opening_range (tapeflow strategies lists them)")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="name=value; default: the promoted set")] = None,
    replay_day: Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"],
                                                        help="replay this stored day on a simulated clock")] = None,
    through: Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"],
                                                     help="with --replay-day: replay every trading day to this one")] = None,
    stop_loss_pct: Annotated[float | None, typer.Option(help="protective stop under each entry, e.g. 0.02")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="with --replay-day: start the replay over instead of "
                                                        "resuming its file")] = False,
) -> None:
    """Run the trade-session flow: today's session with the configured broker, or a replay."""

    params = parse_params(param)
    chosen_strategy(strategy, params)  # a wrong name or parameter is refused before Prefect starts
    if through is not None and (replay_day is None or through < replay_day):
        err.print("--through needs --replay-day on or before it, e.g. --replay-day 2011-03-01 --through 2011-03-04")
        raise typer.Exit(EXIT_REFUSED)
    if replay_day is not None:
        settings = load_settings()
        try:  # a day that is no session, too little history, a replay running elsewhere: named before Prefect starts
            check_replay(settings, open_warehouse(settings), strategy, replay_day.date(), params or None,
                         through=through.date() if through else None)
        except (ValueError, ReplayRunning, WarehouseMissing) as exc:
            err.print(str(exc), soft_wrap=True)
            raise typer.Exit(EXIT_REFUSED) from None
    with running_flows(load_settings()):
        from flows.trade import trade_session  # deferred: Prefect takes seconds to import and reads its settings then

        result = trade_session(strategy=strategy, params=params or None,
                               replay_day=replay_day.date() if replay_day else None, stop_loss_pct=stop_loss_pct,
                               replay_through=through.date() if through else None, fresh=fresh)
    if result.get("status") == "refused":
        err.print(f"refused: {result['reason']}", soft_wrap=True)
        raise typer.Exit(EXIT_REFUSED)
    alerts = result.pop("alerts", [])
    for note in result.pop("recovery", []):
        out.print(f"recovered: {note}", soft_wrap=True)
    print_metrics(result, f"trade-session {strategy}")
    for alert in alerts:
        out.print(f"alert: {alert}", soft_wrap=True)


def sessions_command(
    limit: Annotated[int, typer.Option(help="newest first")] = 20,
) -> None:
    """Trading sessions recorded in the warehouse, newest first."""

    frame = run_read_only(open_warehouse(load_settings()),
                          "SELECT session_id, status, reconciled, started_at, finished_at, "
                          "summary->>'orders_sent' AS orders, summary->>'fills' AS fills, "
                          f"summary->>'realized_pnl' AS realized_pnl FROM trading_sessions "
                          f"ORDER BY started_at DESC LIMIT {int(limit)}")
    print_frame(frame, title="trading sessions")


def register(app: typer.Typer) -> None:
    app.command("trade")(trade_command)
    app.command("sessions")(sessions_command)
    app.command("kill-switch")(kill_switch_command)  # its own light module: it starts fast

