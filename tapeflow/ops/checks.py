"""Health checks at an instant: each looks at the warehouse (or a broker) at `now` and returns
findings, an alert with a stable dedup key (kind:component:...:date) and a severity.

Checks only read. Heartbeats and data freshness matter only while the regular session is
open; the broker, the breaker, the kill switch and rejections are looked at whenever asked.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

import duckdb

from tapeflow.brokers.base import Broker, BrokerError, Disconnected, QueryFailed
from tapeflow.brokers.ledger import Ledger
from tapeflow.calendar.exchange import NEW_YORK, ExchangeCalendar, Phase, get_calendar, ny_day, ny_day_bounds
from tapeflow.model import Side, check_aware
from tapeflow.ops.alerts import Alert
from warehouse.connection import Warehouse

if TYPE_CHECKING:
    from tapeflow.config import Settings

MONITOR_COMPONENT = "monitor"
"""The monitor's own heartbeat: its newest row is when the previous check ran."""
SESSION_COMPONENT = "trade_session:{strategy}"
"""The heartbeat component a trading session of `strategy` writes every cycle."""
POSITION_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Finding:
    """One thing wrong, as the alert to raise and the key that deduplicates it."""

    kind: str
    key: str
    alert: Alert

    @property
    def severity(self) -> str:
        return self.alert.severity


@dataclass(frozen=True)
class MonitorConfig:
    """Thresholds and the feeds to watch (a replay source is history: never fresh, never checked)."""

    heartbeat_max_age: timedelta = timedelta(minutes=3)
    bars_max_age: timedelta = timedelta(minutes=10)
    watchlist_max_age: timedelta = timedelta(minutes=10)
    fill_grace: timedelta = timedelta(minutes=2)
    bars_source: str | None = None
    watchlist_source: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> MonitorConfig:
        return cls(
            heartbeat_max_age=timedelta(seconds=settings.monitor_heartbeat_max_age_s),
            bars_max_age=timedelta(seconds=settings.monitor_bars_max_age_s),
            watchlist_max_age=timedelta(seconds=settings.monitor_watchlist_max_age_s),
            fill_grace=timedelta(seconds=settings.monitor_fill_grace_s),
            bars_source=settings.market_data_source,
            watchlist_source=settings.watchlist_source,
        )


def _finding(kind: str, parts: Iterable[object], *, component: str, severity: str, title: str, message: str,
             now: datetime, **context: object) -> Finding:
    key = ":".join([kind, *(str(p) for p in parts)])
    alert = Alert(component=component, severity=severity, title=title, message=message,
                  context={"kind": kind, **context}, at=now)
    return Finding(kind, key, alert)


def _span(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def in_session(now: datetime, calendar: ExchangeCalendar | None = None) -> bool:
    """True while the regular session is open at `now` (holidays and half days included)."""
    return (calendar or get_calendar()).phase_at(check_aware("now", now)) is Phase.REGULAR


# -- warehouse checks ----------------------------------------------------------------------


def missing_heartbeats(con: duckdb.DuckDBPyConnection, now: datetime, config: MonitorConfig,
                       calendar: ExchangeCalendar | None = None) -> list[Finding]:
    """Sessions running today whose newest heartbeat (or start, before the first) is too old."""
    calendar = calendar or get_calendar()
    if not in_session(now, calendar):
        return []
    today = calendar.session_date(now)
    rows = con.execute(
        """SELECT s.strategy, min(s.started_at), max(h.ts)
           FROM trading_sessions s
           LEFT JOIN heartbeats h ON h.component = 'trade_session:' || s.strategy AND h.ts <= ?
           WHERE s.session_date = ? AND s.status = 'running' AND s.started_at <= ?
           GROUP BY s.strategy ORDER BY s.strategy""", [now, today, now]).fetchall()
    found = []
    for strategy, started, beat in rows:
        last = beat if beat is not None else started
        if now - last > config.heartbeat_max_age:
            component = SESSION_COMPONENT.format(strategy=strategy)
            seen = (f"last heartbeat {_span(now - beat)} ago" if beat is not None
                    else f"no heartbeat since it started {_span(now - started)} ago")
            found.append(_finding(
                "missing_heartbeat", [component, today], component=component, severity="critical",
                title=f"{strategy}: session not responding",
                message=f"the {strategy} session is running but silent: {seen} "
                        f"(limit {_span(config.heartbeat_max_age)})",
                now=now, last_heartbeat=beat.isoformat() if beat else None))
    return found


def _newest(con: duckdb.DuckDBPyConnection, source: str, kind: str, fallback_sql: str) -> tuple[datetime | None, str | None]:
    """The newest knowable instant of a feed (freshness record, else the table itself) and its last error."""
    row = con.execute("SELECT last_data_end, last_error FROM source_freshness WHERE source = ? AND kind = ?",
                      [source, kind]).fetchone()
    newest, error = (row[0], row[1]) if row else (None, None)
    if newest is None:
        newest = con.execute(fallback_sql, [source]).fetchone()[0]
    return newest, error


def stale_data(con: duckdb.DuckDBPyConnection, now: datetime, config: MonitorConfig,
               calendar: ExchangeCalendar | None = None) -> list[Finding]:
    """Minute bars and the watchlist of the configured sources, during the regular session."""
    calendar = calendar or get_calendar()
    if not in_session(now, calendar):
        return []
    today = calendar.session_date(now)
    found = []
    source = config.bars_source
    if source and source != "replay":
        newest, error = _newest(con, source, "bars:1m",
                                "SELECT max(end_ts) FROM bars WHERE source = ? AND timeframe = '1m'")
        if newest is None or now - newest > config.bars_max_age:
            found.append(_stale("bars:1m", source, newest, error, config.bars_max_age, now, today))
    source = config.watchlist_source
    if source and source != "replay":
        newest, error = _newest(con, source, "watchlist", "SELECT max(as_of) FROM watchlist_snapshots WHERE source = ?")
        if source == "scanner":
            # The scanner lists once before the open: stale means no list for today.
            pre_open = calendar.session(today).pre_open
            if newest is None or newest < pre_open:
                found.append(_stale("watchlist", source, newest, error, None, now, today))
        elif newest is None or now - newest > config.watchlist_max_age:
            found.append(_stale("watchlist", source, newest, error, config.watchlist_max_age, now, today))
    return found


def _stale(feed: str, source: str, newest: datetime | None, error: str | None, limit: timedelta | None,
           now: datetime, today: date) -> Finding:
    what = "minute bars" if feed.startswith("bars") else "watchlist"
    if newest is None:
        seen = f"no {what} from {source} at all"
    elif limit is None:
        seen = f"no {what} from {source} today (newest {newest.astimezone(NEW_YORK):%Y-%m-%d %H:%M %Z})"
    else:
        seen = f"newest {what} from {source} are {_span(now - newest)} old (limit {_span(limit)})"
    return _finding("stale_data", [feed, source, today], component=f"source:{source}", severity="warning",
                    title=f"stale {what} from {source}", message=seen + (f"; last error: {error}" if error else ""),
                    now=now, feed=feed, newest=newest.isoformat() if newest else None)


def previous_run(con: duckdb.DuckDBPyConnection, now: datetime) -> datetime | None:
    """When the monitor last checked before `now` (its newest heartbeat)."""
    return con.execute("SELECT max(ts) FROM heartbeats WHERE component = ? AND ts < ?",
                       [MONITOR_COMPONENT, now]).fetchone()[0]


def rejected_orders(con: duckdb.DuckDBPyConnection, now: datetime, since: datetime | None = None) -> list[Finding]:
    """Orders rejected after `since` (default: the previous check, else the start of the New York day)."""
    if since is None:
        since = previous_run(con, now) or ny_day_bounds(now)[0]
    rows = con.execute(
        """SELECT client_order_id, strategy, broker, mode, symbol, side, qty, reason, updated_at FROM orders
           WHERE status = 'rejected' AND updated_at > ? AND updated_at <= ? ORDER BY updated_at, client_order_id""",
        [since, now]).fetchall()
    return [_finding("order_rejected", [f"strategy:{strategy}", cid], component=f"strategy:{strategy}",
                     severity="warning", title=f"{broker} rejected {side} {qty:g} {symbol}",
                     message=f"{strategy} order {cid} ({mode}) rejected: {reason or 'no reason given'}",
                     now=now, client_order_id=cid, broker=broker, symbol=symbol)
            for cid, strategy, broker, mode, symbol, side, qty, reason, _ in rows]


def breaker_tripped(con: duckdb.DuckDBPyConnection, now: datetime,
                    calendar: ExchangeCalendar | None = None) -> list[Finding]:
    """Risk locks (the daily-loss breaker) set for today's New York session date."""
    today = (calendar or get_calendar()).session_date(now)
    rows = con.execute("SELECT scope, kind, reason, locked_at FROM risk_locks WHERE session_date = ? AND locked_at <= ? "
                       "ORDER BY scope, kind", [today, now]).fetchall()
    return [_finding("breaker_tripped", [f"risk:{scope}", kind, today], component=f"risk:{scope}", severity="critical",
                     title=f"{kind} breaker tripped for {scope}",
                     message=f"{scope} is locked for {today}: {reason}", now=now, locked_at=locked_at.isoformat())
            for scope, kind, reason, locked_at in rows]


def kill_switch_engaged(con: duckdb.DuckDBPyConnection, now: datetime) -> list[Finding]:
    """Engaged kill switches; the key carries when it was engaged, so re-engaging alerts anew."""
    rows = con.execute("SELECT scope, reason, changed_at, changed_by FROM kill_switch WHERE engaged AND changed_at <= ? "
                       "ORDER BY scope", [now]).fetchall()
    return [_finding("kill_switch", [f"risk:{scope}", changed_at.isoformat()], component=f"risk:{scope}",
                     severity="warning", title=f"kill switch engaged for {scope}",
                     message=f"engaged by {changed_by} at {changed_at.astimezone(NEW_YORK):%Y-%m-%d %H:%M %Z}: {reason}",
                     now=now, changed_by=changed_by)
            for scope, reason, changed_at, changed_by in rows]


def unclean_reconciliations(con: duckdb.DuckDBPyConnection, now: datetime) -> list[Finding]:
    """Accounts whose latest reconciliation found a difference it could not explain."""
    rows = con.execute(
        """SELECT broker, mode, ts, differences FROM reconciliations
           WHERE ts <= ? QUALIFY row_number() OVER (PARTITION BY broker, mode ORDER BY ts DESC) = 1
           ORDER BY broker, mode""", [now]).fetchall()
    found = []
    for broker, mode, ts, differences in rows:
        unexplained = [d for d in json.loads(differences) if not d.get("explained")]
        if not unexplained:
            continue
        details = "; ".join(f"{d.get('kind')} {d.get('symbol') or ''}: {d.get('detail')}".replace("  ", " ")
                            for d in unexplained)
        found.append(_finding("position_drift", [f"broker:{broker}", mode, "reconciliation", ts.isoformat()],
                              component=f"broker:{broker}", severity="critical",
                              title=f"{broker} {mode}: reconciliation not clean",
                              message=f"the reconciliation at {ts.isoformat()} found {details}; new entries are "
                                      "blocked until a clean one", now=now, differences=len(unexplained)))
    return found


def warehouse_findings(warehouse: Warehouse, now: datetime, config: MonitorConfig,
                       calendar: ExchangeCalendar | None = None) -> list[Finding]:
    """Every warehouse check, in one short connection."""
    now = check_aware("now", now)
    calendar = calendar or get_calendar()
    with warehouse.write() as con:  # the writer's connection, as the ledger reads: one config per process
        return [*missing_heartbeats(con, now, config, calendar), *stale_data(con, now, config, calendar),
                *rejected_orders(con, now), *breaker_tripped(con, now, calendar), *kill_switch_engaged(con, now),
                *unclean_reconciliations(con, now)]


# -- broker checks -------------------------------------------------------------------------


def broker_unreachable(name: str, mode: str, error: BaseException, now: datetime) -> Finding:
    """The broker could not be opened or answered a read with an error."""
    today = ny_day(now)
    reason = str(error) or type(error).__name__
    return _finding("broker_disconnected", [f"broker:{name}", mode, today], component=f"broker:{name}",
                    severity="critical", title=f"{name} {mode}: broker unreachable",
                    message=f"{type(error).__name__}: {reason}", now=now)


def broker_findings(broker: Broker, ledger: Ledger, now: datetime, config: MonitorConfig) -> list[Finding]:
    """A disconnected broker, or positions the ledger's fills do not explain.

    A fill the broker made within `fill_grace` that the ledger has not recorded yet is on
    its way (the session records updates each cycle): it explains its share of a difference.
    """
    now = check_aware("now", now)
    mode = broker.mode.value
    try:
        broker.account()
        held = {p.symbol: p.qty for p in broker.positions()}
        recent = broker.fills(now - config.fill_grace) if config.fill_grace > timedelta(0) else []
    except (Disconnected, QueryFailed) as exc:
        return [broker_unreachable(broker.name, mode, exc, now)]
    recorded = ledger.positions()
    known = ledger.fill_ids()
    for fill in recent:
        if fill.fill_id not in known:
            signed = fill.qty if fill.side is Side.BUY else -fill.qty
            held[fill.symbol] = held.get(fill.symbol, 0.0) - signed
    today = ny_day(now)
    found = []
    for symbol in sorted(set(held) | set(recorded)):
        broker_qty, ledger_qty = held.get(symbol, 0.0), recorded.get(symbol, 0.0)
        if abs(broker_qty - ledger_qty) > POSITION_TOLERANCE:
            found.append(_finding(
                "position_drift", [f"broker:{broker.name}", mode, symbol, today], component=f"broker:{broker.name}",
                severity="critical", title=f"{broker.name} {mode}: {symbol} position not in the ledger",
                message=f"{broker.name} holds {broker_qty:g} {symbol} (recent unrecorded fills aside), "
                        f"the ledger's fills say {ledger_qty:g}", now=now, symbol=symbol,
                broker_qty=broker_qty, ledger_qty=ledger_qty))
    return found


def broker_recovered(con: duckdb.DuckDBPyConnection, name: str, mode: str, now: datetime) -> list[Finding]:
    """An answering broker whose latest disconnect alert has no recovery after it: say so once."""
    prefix = f"broker:{name}:{mode}:"
    row = con.execute(
        """SELECT kind, ts FROM alerts WHERE ts <= ? AND ((kind = 'broker_disconnected' AND starts_with(alert_key, ?))
               OR (kind = 'broker_recovered' AND starts_with(alert_key, ?)))
           ORDER BY ts DESC, kind DESC LIMIT 1""",
        [now, f"broker_disconnected:{prefix}", f"broker_recovered:{prefix}"]).fetchone()
    if row is None or row[0] != "broker_disconnected":
        return []
    # One recovery per outage: the key names the disconnect it ends.
    return [_finding("broker_recovered", [f"broker:{name}", mode, row[1].isoformat()], component=f"broker:{name}",
                     severity="info", title=f"{name} {mode}: broker answering again",
                     message=f"{name} answers again (last disconnect alert {row[1].isoformat()})", now=now)]


def check_broker(broker: Broker, warehouse: Warehouse, now: datetime, config: MonitorConfig) -> list[Finding]:
    """Broker checks against the ledger of the broker's own account and mode; a broker that
    answers again after a disconnect alert gets a recovery notice."""
    try:
        found = broker_findings(broker, Ledger(warehouse, broker.name, broker.mode), now, config)
    except BrokerError as exc:  # any other broker failure still means we cannot see the account
        return [broker_unreachable(broker.name, broker.mode.value, exc, now)]
    if any(f.kind == "broker_disconnected" for f in found):
        return found
    with warehouse.write() as con:
        return found + broker_recovered(con, broker.name, broker.mode.value, now)


def worst(findings: Iterable[Finding]) -> str | None:
    """The highest severity among `findings`, or None when there are none."""
    order = {"info": 0, "warning": 1, "critical": 2}
    levels = [f.severity for f in findings]
    return max(levels, key=order.__getitem__) if levels else None
