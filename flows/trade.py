"""Trade one strategy through today's market session (paper by default), or replay a stored
day on a simulated clock against the simulated broker."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.variables import Variable

from flows.hooks import alert_on_failure
from tapeflow.calendar.exchange import get_calendar, ny_day
from tapeflow.config import load_settings
from tapeflow.live.launch import live_session, replay_session
from tapeflow.live.session import SessionReport, SessionRules
from tapeflow.risk.sizing import Sizing
from warehouse import open_warehouse

KILL_VARIABLE = "tapeflow_kill_switch"  # set it in the Prefect UI: "all", or strategy names separated by commas

log = logging.getLogger(__name__)


def prefect_kill_switch(strategy: str):
    """Reads the kill-switch variable each cycle; an unreadable variable never stops trading."""

    def engaged() -> str | None:
        try:
            value = Variable.get(KILL_VARIABLE, default="") or ""
        except Exception as exc:
            log.warning("could not read the Prefect variable %s: %s", KILL_VARIABLE, type(exc).__name__)
            return None
        names = {v.strip() for v in str(value).split(",") if v.strip()}
        if names & {"all", strategy}:
            return f"Prefect variable {KILL_VARIABLE} = {value!r}"
        return None

    return engaged


@flow(name="trade-session", on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def trade_session(
    strategy: str = "opening_range",
    params: dict[str, float] | None = None,
    replay_day: date | None = None,
    cycle_s: float = 60.0,
    position_fraction: float = 0.10,
    max_positions: int = 10,
    max_position_pct: float = 0.25,
    risk_per_trade: float | None = None,
    stop_loss_pct: float | None = None,
    daily_loss_limit_pct: float | None = 0.02,
    flatten_on_breaker: bool = False,
) -> dict[str, object]:
    """Prepare (reconcile, promoted parameters, data freshness), decide every `cycle_s` seconds
    until the close, exit before it, reconcile; `replay_day` replays a stored day instead."""
    logger = get_run_logger()
    settings = load_settings()
    warehouse = open_warehouse(settings)
    rules = SessionRules(cycle_s=cycle_s, sizing=Sizing(position_fraction, max_positions, risk_per_trade),
                         max_position_pct=max_position_pct, stop_loss_pct=stop_loss_pct,
                         daily_loss_limit_pct=daily_loss_limit_pct, flatten_on_breaker=flatten_on_breaker)
    if replay_day is not None:
        launched = replay_session(settings, warehouse, strategy, replay_day, params, rules=rules)
    else:
        today = ny_day(datetime.now(UTC))
        if not get_calendar().is_session(today):
            logger.info("%s is not a trading day: no session", today)
            return {"status": "no session", "day": today.isoformat()}
        launched = live_session(settings, warehouse, strategy, params, rules=rules,
                                external_kill=prefect_kill_switch(strategy))
    report = launched.session.run()
    publish(report, launched.warehouse.path)
    logger.info("session %s: %s", report.session_id, report.status)
    return {**report.as_dict(), "warehouse": str(launched.warehouse.path)}


def publish(report: SessionReport, where) -> None:
    """The day in a markdown artifact: counts, P&L and alerts."""
    lines = [f"# {report.session_id}", "", "| | |", "|---|---|"]
    for name in ("status", "cycles", "decisions", "orders_sent", "rejected", "fills", "realized_pnl", "equity_start",
                 "equity_end", "reconciled"):
        value = getattr(report, name)
        lines.append(f"| {name} | {value:,.2f} |" if isinstance(value, float) else f"| {name} | {value} |")
    lines += ["", f"Rows in `{where}`.", "", "## Alerts", ""] + [f"- {a}" for a in report.alerts or ["none"]]
    create_markdown_artifact("\n".join(lines), key="trade-session", description=report.session_id)
