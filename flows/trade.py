"""Trade one strategy through today's market session (paper by default), or replay stored
days on a simulated clock against the simulated broker."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.variables import Variable

from flows.hooks import alert_on_failure
from flows.parameters import UNSET, OffAtZero, OptionalDay, StrategyName, StrategyParams
from flows.secrets import vendor_settings
from flows.session_view import PrefectSessionView, publish
from tapeflow.calendar.exchange import get_calendar, ny_day
from tapeflow.live.launch import ReplayMismatch, ReplayRunning, live_session, replay_session
from tapeflow.live.session import SessionAlreadyRunning, SessionRules
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
    params: StrategyParams = UNSET,
    replay_day: OptionalDay = UNSET,
    cycle_s: float = 60.0,
    position_fraction: float = DEFAULT_POLICY.sizing.fraction,
    max_positions: int = DEFAULT_POLICY.sizing.max_positions,
    max_position_pct: OffAtZero = DEFAULT_POLICY.max_position_pct or UNSET,
    risk_per_trade: OffAtZero = DEFAULT_POLICY.sizing.risk_per_trade or UNSET,
    stop_loss_pct: OffAtZero = DEFAULT_POLICY.stop_loss_pct or UNSET,
    daily_loss_limit_pct: OffAtZero = DEFAULT_POLICY.daily_loss_limit_pct or UNSET,
    flatten_on_breaker: bool = DEFAULT_POLICY.flatten_on_breaker,
    replay_through: OptionalDay = UNSET,
    fresh: bool = False,
) -> dict[str, object]:
    """Trade one strategy through today's session (paper by default), or replay stored days.

    Prepares (reconcile, promoted parameters, warm-up, data freshness), decides every `cycle_s`
    seconds until the close under the execution policy backtests use, then reconciles. While
    it runs, the flow run shows its progress, its book (artifact `trade-session-book`) and
    emits events for fills, the breaker and the kill switch. A session another process runs
    is refused (status "refused").

    Args:
        strategy: Registered strategy to trade, e.g. opening_range.
        params: Strategy parameters by name; empty uses those last promoted for paper.
        replay_day: Replay this stored day on a simulated clock and broker instead of trading today.
        cycle_s: Seconds between decision cycles (cycles land on bar ends).
        position_fraction: Share of equity one entry may use.
        max_positions: Most positions held at once.
        max_position_pct: Largest position as a share of equity; 0 or empty for no cap.
        risk_per_trade: Share of equity risked per entry down to its stop; 0 or empty sizes by fraction.
        stop_loss_pct: Protective stop this far under each entry (0.01 = 1%); 0 or empty for none.
        daily_loss_limit_pct: Day's loss that trips the breaker and locks entries; 0 or empty for none.
        flatten_on_breaker: Sell everything the strategy holds when the breaker trips.
        replay_through: Last day of a replay of several days (one session a day, one account).
        fresh: Replay from the start, discarding a replay file left unfinished.
    """
    logger = get_run_logger()
    settings = vendor_settings()  # broker keys may live in Secret blocks
    warehouse = open_warehouse(settings)
    policy = policy_from(position_fraction, max_positions, risk_per_trade, max_position_pct, stop_loss_pct,
                         daily_loss_limit_pct, flatten_on_breaker)
    rules = SessionRules(cycle_s=cycle_s, policy=policy)
    view = PrefectSessionView()
    chosen = params.values() or None  # none given: the parameters last promoted
    try:
        if replay_day is not None:
            launched = replay_session(settings, warehouse, strategy, replay_day, chosen, rules=rules,
                                      through=replay_through, fresh=fresh, observer=view)
        else:
            today = ny_day(datetime.now(UTC))
            if not get_calendar().is_session(today):
                logger.info("%s is not a trading day: no session", today)
                return {"status": "no session", "day": today.isoformat()}
            launched = live_session(settings, warehouse, strategy, chosen, rules=rules,
                                    external_kill=prefect_kill_switch(strategy), observer=view)
        view.where = launched.warehouse.path
        reports = launched.run()
    except (SessionAlreadyRunning, ReplayRunning, ReplayMismatch) as exc:  # nothing ran: not a failure
        logger.error("refused: %s", exc)
        return {"status": "refused", "reason": str(exc)}
    for report in reports:
        if report.session_id not in view.published:  # a day a resumed replay had finished before
            publish(report, launched.warehouse.path)
        logger.info("session %s: %s", report.session_id, report.status)
    report = reports[-1]
    days = {"days": len(reports), "realized_pnl_all_days": sum(r.realized_pnl for r in reports)} if len(reports) > 1 else {}
    return {**report.as_dict(), **days, "warehouse": str(launched.warehouse.path)}

