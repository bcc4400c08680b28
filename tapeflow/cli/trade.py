"""`tapeflow trade` (a session now, or a replayed day) and `tapeflow sessions` (what ran, in the
warehouse and in the replays); `tapeflow kill-switch` is registered here from its own module."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from tapeflow.brokers.live_gate import LiveNotConfirmed
from tapeflow.calendar.hours import no_session_now
from tapeflow.cli.console import err, refuse
from tapeflow.cli.flow_runs import running_flows
from tapeflow.cli.kill_switch import kill_switch_command
from tapeflow.cli.output import OutputFormat, check_option, chosen_strategy, parse_params, print_frame
from tapeflow.cli.trading_views import line, print_session_result, print_sessions
from tapeflow.config import load_settings
from tapeflow.live.clock import WallClock
from tapeflow.live.launch import NoSession, ReplayRunning, check_replay, check_session
from tapeflow.live.recorded import list_sessions
from warehouse import WarehouseMissing, open_warehouse


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

    # Everything that can be refused is refused here, in one line, before Prefect starts (tens of seconds).
    params = parse_params(param)
    chosen_strategy(strategy, params)
    if through is not None and (replay_day is None or through < replay_day):
        refuse("--through needs --replay-day on or before it, e.g. --replay-day 2011-03-01 --through 2011-03-04")
    if fresh and replay_day is None:
        refuse("--fresh starts a replay over: it goes with --replay-day, e.g. --replay-day 2011-03-08 --fresh")
    if stop_loss_pct is not None:
        check_option("--stop-loss-pct", 0 < stop_loss_pct < 1, "a fraction within (0, 1)", stop_loss_pct,
                     "--stop-loss-pct 0.02")
    settings = load_settings()
    try:
        if replay_day is not None:  # not a trading day, too little history, a replay running elsewhere
            check_replay(settings, open_warehouse(settings), strategy, replay_day.date(), params or None,
                         through=through.date() if through else None)
        else:  # no session now (and when the next opens), no promotion, too little history
            check_session(settings, open_warehouse(settings), strategy, params or None, WallClock().now())
    except NoSession as exc:
        refuse(f"{exc}; --replay-day DAY replays a stored day instead")
    except (ValueError, ReplayRunning, LiveNotConfirmed, WarehouseMissing) as exc:
        refuse(str(exc))
    with running_flows(settings):
        from flows.trade import trade_session  # deferred: Prefect takes seconds to import and reads its settings then

        result = trade_session(strategy=strategy, params=params or None,
                               replay_day=replay_day.date() if replay_day else None, stop_loss_pct=stop_loss_pct,
                               replay_through=through.date() if through else None, fresh=fresh)
    if result.get("status") == "refused":
        refuse(f"refused: {result['reason']}")
    if result.get("status") == "no session":  # the day turned while Prefect started
        refuse(no_session_now(WallClock().now()) or f"no trading session on {result.get('day')}")
    alerts = result.pop("alerts", [])
    for note in result.pop("recovery", []):
        line(f"recovered: {note}")
    print_session_result(strategy, result)
    for alert in alerts:
        line(f"alert: {alert}")



def sessions_command(
    limit: Annotated[int, typer.Option(help="how many, newest first")] = 20,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="table, csv or json")] = OutputFormat.TABLE,
) -> None:
    """Trading sessions recorded, newest first: paper and live ones in the warehouse, replayed
    days in their replay files (the `where` of each)."""

    check_option("--limit", limit >= 1, "at least 1", limit, "--limit 50")
    settings = load_settings()
    listing = list_sessions(settings, open_warehouse(settings), limit)
    for path, why in listing.unread:
        err.print(f"not read ({why}): {path}", style="yellow", markup=False, highlight=False, emoji=False)
    if fmt is OutputFormat.TABLE:
        print_sessions(listing.sessions, limit, complete=not listing.unread)
    else:
        print_frame(listing.sessions, fmt)


def register(app: typer.Typer) -> None:
    app.command("trade")(trade_command)
    app.command("sessions")(sessions_command)
    app.command("kill-switch")(kill_switch_command)  # its own light module: it starts fast

