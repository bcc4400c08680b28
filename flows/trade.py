"""Trade one strategy through today's market session (paper by default), or replay stored
days on a simulated clock against the simulated broker."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.variables import Variable

from flows.hooks import alert_on_failure
from flows.parameters import StrategyName
from tapeflow.calendar.exchange import get_calendar, ny_day
from tapeflow.config import load_settings
from tapeflow.live.launch import ReplayMismatch, ReplayRunning, live_session, replay_session
from tapeflow.live.session import SessionAlreadyRunning, SessionReport, SessionRules
from tapeflow.risk.policy import DEFAULT_POLICY, policy_from
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
    strategy: StrategyName = "opening_range",
    params: dict[str, float] | None = None,
    replay_day: date | None = None,
    cycle_s: float = 60.0,
    position_fraction: float = DEFAULT_POLICY.sizing.fraction,
    max_positions: int = DEFAULT_POLICY.sizing.max_positions,
    max_position_pct: float | None = DEFAULT_POLICY.max_position_pct,
    risk_per_trade: float | None = DEFAULT_POLICY.sizing.risk_per_trade,
    stop_loss_pct: float | None = DEFAULT_POLICY.stop_loss_pct,
    daily_loss_limit_pct: float | None = DEFAULT_POLICY.daily_loss_limit_pct,
    flatten_on_breaker: bool = DEFAULT_POLICY.flatten_on_breaker,
    replay_through: date | None = None,
    fresh: bool = False,
) -> dict[str, object]:
    """Prepare (reconcile, promoted parameters, warm-up, data freshness), decide every `cycle_s`
    seconds until the close under the execution policy backtests use, reconcile; `replay_day`
    (to `replay_through`) replays stored days instead, one session a day on one account,
    resuming its file where it stopped unless `fresh`. A session another process runs is
    refused (status "refused")."""
    logger = get_run_logger()
    settings = load_settings()
    warehouse = open_warehouse(settings)
    policy = policy_from(position_fraction, max_positions, risk_per_trade, max_position_pct, stop_loss_pct,
                         daily_loss_limit_pct, flatten_on_breaker)
    rules = SessionRules(cycle_s=cycle_s, policy=policy)
    try:
        if replay_day is not None:
            launched = replay_session(settings, warehouse, strategy, replay_day, params, rules=rules,
                                      through=replay_through, fresh=fresh)
        else:
            today = ny_day(datetime.now(UTC))
            if not get_calendar().is_session(today):
                logger.info("%s is not a trading day: no session", today)
                return {"status": "no session", "day": today.isoformat()}
            launched = live_session(settings, warehouse, strategy, params, rules=rules,
                                    external_kill=prefect_kill_switch(strategy))
        reports = launched.run()
    except (SessionAlreadyRunning, ReplayRunning, ReplayMismatch) as exc:  # nothing ran: not a failure
        logger.error("refused: %s", exc)
        return {"status": "refused", "reason": str(exc)}
    for report in reports:
        publish(report, launched.warehouse.path)
        logger.info("session %s: %s", report.session_id, report.status)
    report = reports[-1]
    days = {"days": len(reports), "realized_pnl_all_days": sum(r.realized_pnl for r in reports)} if len(reports) > 1 else {}
    return {**report.as_dict(), **days, "warehouse": str(launched.warehouse.path)}


def publish(report: SessionReport, where) -> None:
    """The day in a markdown artifact: counts, P&L and alerts."""
    lines = [f"# {report.session_id}", "", "| | |", "|---|---|"]
    for name in ("status", "cycles", "decisions", "orders_sent", "rejected", "fills", "realized_pnl", "equity_start",
                 "equity_end", "reconciled"):
        value = getattr(report, name)
        lines.append(f"| {name} | {value:,.2f} |" if isinstance(value, float) else f"| {name} | {value} |")
    lines += ["", f"Rows in `{where}`.", "", "## Alerts", ""] + [f"- {a}" for a in report.alerts or ["none"]]
    if report.recovery:
        lines += ["", "## Recovery after a restart", ""] + [f"- {note}" for note in report.recovery]
    create_markdown_artifact("\n".join(lines), key="trade-session", description=report.session_id)
