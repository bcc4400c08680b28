"""The trading session: one strategy, one account, one trading day, the same strategy code
the backtest ran.

Each cycle (every `cycle_s` on the session's clock): the market's new bars go to the broker
if it is the simulator, order events are recorded, a heartbeat is written, the kill switch
and the day's loss lock are read, then every decision whose time has come (the strategy's
signals on what is knowable now) is recorded in `session_decisions` and only then carried
out by the execution policy (`tapeflow.risk.policy`, the backtest's rules) against the
broker's equity and buying power and the strategy's own positions and orders. Entries get a
protective stop once filled; an intraday strategy is made flat before the close. At the
close: reconcile, snapshot, summary.

Which decisions a day's session takes: an intraday strategy's from the session's pre-open on;
a daily strategy's from the previous close on (its decisions are taken at bar ends, the close,
and go out at the next session's first cycle), or from `decisions_since` when that is later
(a replay's first day). A decision is too old once `max_decision_age` of market time has
passed since it (the hours the market is shut do not count).

Warehouse work: a cycle reads what it needs (bars, snapshots, kill switch, day lock) in one
pass, records its new decisions in one statement before any of them goes out, and writes its
outcomes and heartbeat together at its end. What the session decided is kept in memory as well
(loaded when it starts), so a cycle never reads it back; with the simulator, whose book is in
the warehouse, the whole cycle uses one connection.

Crash safety: decisions are recorded before their orders are sent and every order's client
order id comes from its decision, so a restarted session re-sends exactly the decisions
that had not reached the broker (the broker answers the others: `place` finds them). A
restart takes the session over at once when the process that claimed it is provably gone
(else once its heartbeat is older than a cycle), hands the simulator the bars it missed
while down, and records what it recovered in the session's summary (`recovery`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Protocol

import polars as pl

from tapeflow.brokers.base import BrokerError, BrokerOrder, Disconnected, OrderRejected, OrderUpdate, QueryFailed
from tapeflow.brokers.execution import EntriesBlocked, Execution
from tapeflow.brokers.ids import client_order_id, is_entry_of
from tapeflow.brokers.reconcile import reconcile
from tapeflow.calendar.exchange import NEW_YORK, ExchangeSession, get_calendar, ny_day
from tapeflow.live import owner as owners
from tapeflow.live.feed import CycleRead, WarehouseFeed
from tapeflow.live.identity import decision_order_id, params_hash, session_id
from tapeflow.live.observer import Guard, Holding, SessionObserver, SessionView, WorkingOrder
from tapeflow.live.report import SessionReport
from tapeflow.model import Account, Action, Bar, Order, OrderType, Outcome, Position, Side, Timeframe, TimeInForce
from tapeflow.progress import tracked
from tapeflow.risk.policy import DEFAULT_POLICY, BookView, ExecutionPolicy
from tapeflow.risk.state import day_lock, kill_switch, lock_day, side_kill_switch
from tapeflow.schemas import instant
from tapeflow.strategy.base import Strategy
from warehouse.connection import Warehouse, WarehouseBusy

log = logging.getLogger(__name__)


class SessionClock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class SessionAlreadyRunning(RuntimeError):
    """Another process is running this strategy's session on this account."""


class Market(Protocol):
    """The simulator's side of the market: it gets each bar as it ends, a daily bar's opening
    print once it has opened, and says up to when it has seen each symbol."""

    def on_bar(self, bar: Bar) -> object: ...

    def on_open(self, bar: Bar) -> object: ...

    def marked_through(self) -> dict[str, datetime]: ...


LEASE_SLACK = timedelta(seconds=10)  # a cycle's own work: a heartbeat this much older than a cycle is stale
TIME_EXIT = "time exit: the session is closing"
FLATTEN_ATTEMPTS = 5  # a closing sell that keeps dying (cancelled, rejected) is sent again at most this often
REPORT_EVERY_S = 0.2


AlertHook = Callable[[str, str, str], None]  # kind, severity, message
_DECISION_COLUMNS = ("client_order_id, decided_at, symbol, action, reason, qty, order_type, time_in_force, limit_price, "
                     "stop_price, outcome")


def _log_alert(kind: str, severity: str, message: str) -> None:
    log.warning("[%s] %s: %s", severity, kind, message)


@dataclass(frozen=True)
class Recorded:
    """A decision of this session as `session_decisions` holds it: its row and its outcome so far."""

    row: dict  # at, symbol, action, reason, qty, order_type, time_in_force, limit_price, stop_price
    outcome: str


@dataclass(frozen=True)
class SessionRules:
    """A session's timing; what becomes of its decisions is the execution policy's (the
    backtest's)."""

    cycle_s: float = 60.0
    policy: ExecutionPolicy = DEFAULT_POLICY
    max_decision_age: timedelta = timedelta(minutes=30)  # of market time: older decisions are not sent
    stale_after: timedelta = timedelta(minutes=3)  # minute bars older than this in session: alert

    def __post_init__(self) -> None:
        if self.cycle_s <= 0:
            raise ValueError("cycle_s must be > 0")

    def describe(self) -> dict[str, object]:
        """The rules as a session's record states them."""
        return {**self.policy.describe(), "cycle_s": self.cycle_s,
                "max_decision_age_minutes": self.max_decision_age.total_seconds() / 60}


class TradingSession:
    """Runs `strategy` through `execution` for one trading day on `clock`."""

    def __init__(self, strategy: Strategy, execution: Execution, feed: WarehouseFeed, clock: SessionClock,
                 warehouse: Warehouse, *, rules: SessionRules = SessionRules(), day: date | None = None,
                 market: Market | None = None,
                 external_kill: Callable[[], str | None] | None = None,
                 alert: AlertHook = _log_alert, hold_warehouse: bool = False,
                 decisions_since: datetime | None = None, market_since: datetime | None = None,
                 observer: SessionObserver | None = None) -> None:
        self.strategy = strategy
        self.execution = execution
        self.broker = execution.broker
        self.ledger = execution.ledger
        self.feed = feed
        self.clock = clock
        self.warehouse = warehouse
        self.rules = rules
        self.day = day or ny_day(clock.now())
        self.market = market  # the simulator: it gets each new bar
        self._opened: set[tuple[str, datetime]] = set()
        self.external_kill = external_kill
        self._alert = alert
        # A replay on a simulated clock never waits between cycles: it may hold the file throughout.
        self.hold_warehouse = hold_warehouse
        self.id = session_id(strategy.name, strategy.p, self.broker.name, self.broker.mode.value, self.day)
        self.component = f"trade_session:{strategy.name}"
        # The day's loss lock belongs to this account and mode: a paper breaker never locks live.
        self.lock_scope = f"{strategy.name}@{self.broker.name}:{self.broker.mode.value}"
        self.report = SessionReport(self.id, "running")
        self.policy = rules.policy
        self.breaker = rules.policy.breaker()
        self.decisions_since = decisions_since
        self._session_start: datetime | None = None  # decisions before it belong to other days
        self._exit_at: datetime | None = None  # intraday: from then on no decisions, sell what the strategy holds
        self._taken: set[str] = set()  # decisions recorded by this process
        self._recorded: dict[str, Recorded] = {}  # every decision of the session, by client order id (in order)
        self._unwritten: dict[str, str] = {}  # outcomes the warehouse is yet to get (at the cycle's end)
        self._beat: tuple[datetime, dict] | None = None  # the cycle's heartbeat, written with the outcomes
        self._mine: set[str] | None = None  # the strategy's client order ids, read once a cycle
        self._handed: dict[str, datetime] = {}  # symbol -> end of the last bar the simulator got
        self._market_since = market_since  # bars that ended after it go to the simulator (default: the start)
        self._stale = False
        self._history = None  # this cycle's view of the market
        # What an observer is told (nothing of it is kept without one).
        self.observer = observer
        self._cycles = 0  # the day's cycles, counted at the start
        self._read: tuple[Account, list[Position]] | None = None  # the book as this cycle read it
        self._working: dict[str, BrokerOrder] = {}  # client order id -> a working order, from the broker's answers
        self._heard: set[str] = set()  # fill ids told already (a stream may repeat an event)
        self._guards: dict[Guard, bool] = {}
        self._unrealized_start: float | None = None
        self._observer_failed: set[str] = set()

    # -- the day --------------------------------------------------------------------------

    def run(self) -> SessionReport:
        """Prepare, cycle until the close, finish. A day without a session does nothing."""
        calendar = get_calendar()
        if not calendar.is_session(self.day):
            self.report.status = "no session"
            return self.report
        session = calendar.session(self.day)
        try:
            with self._held() if self.hold_warehouse else nullcontext():
                self.prepare(session)
                try:
                    with tracked(f"session {self.strategy.name} {self.day}", total=self._cycles) as progress:
                        reported = time.monotonic()
                        while self.clock.now() < session.close:
                            self.cycle(session)
                            self.clock.sleep(self._to_next_cycle(self.clock.now()))
                            # A replay runs a day's cycles in seconds: its progress is told a few times a second at most.
                            if time.monotonic() - reported >= REPORT_EVERY_S or self.clock.now() >= session.close:
                                reported = time.monotonic()
                                progress.update(self.report.cycles, detail=self._progress_words())
                except Exception as exc:
                    self._mark_failed(exc)
                    raise
                return self.finish(session)
        finally:
            owners.stopped(self.id)

    def _mark_failed(self, exc: Exception) -> None:
        """A session that dies says so (the monitor and the next start see it), then re-raises."""
        self.alert("session_failed", "critical", f"{self.id} stopped: {type(exc).__name__}: {exc}")
        try:
            with self.warehouse.write() as con:
                self._write_outcomes(con)
                con.execute("UPDATE trading_sessions SET status = 'failed', summary = ? WHERE session_id = ?",
                            [json.dumps(self.report.as_dict(), default=str), self.id])
        except Exception:
            log.exception("could not record the failure of %s", self.id)

    def _cycles_left(self, session: ExchangeSession) -> int:
        """Cycles from now to the close: one now, then one at each multiple of cycle_s before it."""
        now, close = self.clock.now().timestamp(), session.close.timestamp()
        if now >= close:
            return 0
        following = math.floor(now / self.rules.cycle_s + 1) * self.rules.cycle_s
        return 1 + max(0, math.ceil((close - following) / self.rules.cycle_s))

    def _progress_words(self) -> str:
        return (f"{self.clock.now().astimezone(NEW_YORK):%H:%M} New York: {self.report.decisions} decisions, "
                f"{self.report.orders_sent} orders sent")

    def _to_next_cycle(self, now: datetime) -> float:
        """Seconds to the next multiple of cycle_s: cycles land on bar ends."""
        epoch = now.timestamp()
        return math.floor(epoch / self.rules.cycle_s + 1) * self.rules.cycle_s - epoch

    def prepare(self, session: ExchangeSession) -> None:
        """Claim the session, reconcile with the broker, set the breaker's reference equity."""
        with self._held():
            self._prepare(session, self.clock.now())
        self._cycles = self._cycles_left(session)
        if self.observer is not None:
            self._start_watch()

    def _prepare(self, session: ExchangeSession, now: datetime) -> None:
        first_start = self._claim(now)
        self._load_decisions()
        report = reconcile(self.ledger, self.broker, since=session.pre_open - timedelta(days=3))
        if report.adopted_fills:
            self.report.recovery.append(f"adopted {len(report.adopted_fills)} fill(s) made while no session listened")
        if not report.clean:
            self.alert("position_drift", "critical", f"reconciliation before the session is not clean; entries "
                       f"are refused: {report.describe()}")
        account = self.broker.account()
        self.report.equity_start = account.equity
        self.breaker.observe(self.day.toordinal(), account.last_equity or account.equity)
        newest = self.feed.newest_bar_end(until=now)
        if newest is None or now - newest > timedelta(days=4):
            self.alert("stale_data", "warning", f"newest {self.feed.timeframe} bar ends {newest}: the data is stale")
        if self.strategy.timeframe is Timeframe.DAY:
            self._session_start = get_calendar().previous_close(session.open)
        else:
            self._session_start = session.pre_open
        if self.decisions_since is not None:
            self._session_start = max(self._session_start, self.decisions_since)
        self._exit_at = self.policy.exit_at(session.close, self.strategy.timeframe)
        self._market_since = min(self._market_since or now, first_start)
        if self.market is not None:  # a restart: the bars since the simulator last saw each symbol reach it in order
            self._handed = {s: t for s, t in self.market.marked_through().items() if t >= self._market_since}

    def _load_decisions(self) -> None:
        """What the session decided before (a restart): from then on the session keeps it in memory."""
        with self.warehouse.write() as con:
            rows = con.execute(f"SELECT {_DECISION_COLUMNS} FROM session_decisions WHERE session_id = ? "
                               "ORDER BY decided_at, recorded_at, client_order_id", [self.id]).fetchall()
        names = ("at", "symbol", "action", "reason", "qty", "order_type", "time_in_force", "limit_price", "stop_price")
        self._recorded = {r[0]: Recorded(dict(zip(names, r[1:10], strict=True)), r[10]) for r in rows}
        self._unwritten.clear()

    def _claim(self, now: datetime) -> datetime:
        """One process per session. A claim still running is taken over at once when its owner
        is provably gone, or once its heartbeat is older than a cycle; otherwise refused.
        Returns when the session first started (`now`, unless this is a restart)."""
        me = str(owners.Owner.here())
        with self.warehouse.write() as con:
            row = con.execute("SELECT status, owner, started_at FROM trading_sessions WHERE session_id = ?",
                              [self.id]).fetchall()
            beats = con.execute("SELECT max(ts) FROM heartbeats WHERE component = ?", [self.component]).fetchall()
            beat = beats[0][0] if beats else None
            if row and row[0][0] == "running":
                owner = row[0][1]
                fresh = beat is not None and now - beat <= timedelta(seconds=self.rules.cycle_s) + LEASE_SLACK
                if owners.session_owner_gone(owner, self.id):
                    self.report.recovery.append(f"took over from {owner}, which is gone (last heartbeat "
                                                f"{beat.isoformat() if beat else 'never'})")
                elif fresh:
                    raise SessionAlreadyRunning(f"{self.id} is running in {owner or 'another process'} (heartbeat "
                                                f"{beat.isoformat()}): stop that one first, or wait for it to end")
                else:
                    self.report.recovery.append(f"took over from {owner or 'an unknown process'}: its heartbeat "
                                                f"({beat.isoformat() if beat else 'never'}) is older than a cycle")
            elif row and row[0][0] == "failed":
                self.report.recovery.append("restarted after a failure")
            con.execute(
                "INSERT INTO trading_sessions (session_id, strategy, params, params_hash, broker, mode, session_date, "
                "status, started_at, rules, owner) VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?) "
                "ON CONFLICT (session_id) DO UPDATE SET status = 'running', rules = excluded.rules, owner = excluded.owner",
                [self.id, self.strategy.name, json.dumps(dict(self.strategy.p)), params_hash(self.strategy.p),
                 self.broker.name, self.broker.mode.value, self.day, now, json.dumps(self.rules.describe()), me])
        owners.running(self.id)
        return min(row[0][2], now) if row else now

    def cycle(self, session: ExchangeSession) -> None:
        """One pass: market, events, heartbeat, risk, decisions, stops, time exit. A session on
        a broker across the network opens the warehouse for its reads, its decisions and its
        end, never while it waits on the broker, so ingest flows are not locked out; one on the
        simulator holds it for the cycle, a replay throughout (`hold_warehouse`)."""
        self._cycle(session, self.clock.now())

    def _cycle(self, session: ExchangeSession, now: datetime) -> None:
        self.report.cycles += 1
        self._read = None
        self._mine = None
        self._beat = None
        try:
            # The simulator's book is in the warehouse and it never waits on a network: its cycle holds the file.
            # A cycle writes its outcomes (and, unless written with its reads, its heartbeat) at its end.
            with self._held() if self.market is not None else nullcontext():
                self._steps(session, now)
                self._write_cycle()
        except WarehouseBusy as exc:
            self._ride_out(exc)
        if self.observer is not None and self._read is not None:
            self._tell("on_cycle", self._view(now, *self._read))

    def _ride_out(self, busy: WarehouseBusy) -> None:
        """Another process holds the warehouse (a long query): this cycle decides and sends
        nothing, since decisions are recorded before they go out, and the next cycle tries
        again. The kill switch still works, from its side file, at the broker."""
        killed = (self.external_kill() if self.external_kill else None) or side_kill_switch(self.warehouse,
                                                                                            self.strategy.name)
        if killed:
            self._note_killed(killed)
            try:
                for order in self.broker.open_orders():
                    if order.side is Side.BUY and is_entry_of(self.strategy.name, order.client_order_id):
                        self._quietly(lambda o=order: self.broker.cancel(o.client_order_id))  # the ledger syncs later
            except Exception as exc:  # the simulator keeps its book in the busy warehouse
                log.warning("%s: entries not cancelled while the warehouse is busy: %s", self.id, exc)
        self.alert("warehouse_busy", "warning", f"{busy}: this cycle decided and sent nothing; the next one "
                   "tries again")

    def _held(self) -> AbstractContextManager[None]:
        """The warehouse held for a burst of the session's small statements, on one DuckDB thread."""
        return self.warehouse.held(threads=1)

    def _steps(self, session: ExchangeSession, now: datetime) -> None:
        # One transaction for the cycle's reads, the simulator's bars and, with the simulator
        # (no network to wait on), its book and the heartbeat: one commit, the costly part.
        local = self.market is not None
        with self._held(), self.warehouse.write():
            # Frames first, plain rows last: DuckDB builds no frame on a connection whose last row is unread.
            market = self._read_market(now)
            if local:
                self._hand_over(now, market.ended)
            book = self._read_book(now) if local else None
            stored_kill = kill_switch(self.warehouse, self.strategy.name)
            stored_lock = day_lock(self.warehouse, self.lock_scope, self.day)
            self._write_cycle()
        book = book if local else self._read_book(now)
        if book is None:
            return  # nothing is decided blind; the next cycle tries again
        account, positions, held = book
        self._check_freshness(now, session, market.newest_end)
        try:
            killed = self._killed(stored_kill)
            if killed:  # the kill switch takes back the working entries; the breaker's lock only refuses new ones
                self._stand_down(killed)
            locked = None if killed else stored_lock
            if not killed:  # the lock is read only when the kill switch is off
                self._guard(Guard.DAY_LOCK, locked)
            stop = killed or locked
            self._history = market.history  # what is knowable now: every step of the cycle sees this
            self._read = (account, positions)
            self._retry_unsent(now, account, held, stop)
            if self._closing(now):
                self._time_exit(now)
            else:
                self._decide(now, account, held, stop)
                self._protect(now, held)
        except (Disconnected, QueryFailed) as exc:  # the next cycle carries on where this one stopped
            self.alert("broker_disconnected", "critical", f"{self.broker.name}: {exc}")

    def _read_book(self, now: datetime) -> tuple[Account, list[Position], dict[str, float]] | None:
        """The broker's order events, account and positions, and the heartbeat that reports them;
        None (and an alert) when the broker does not answer."""
        try:
            self._heard_from(self.execution.sync())
            account, positions = self.broker.book()
        except (Disconnected, QueryFailed) as exc:
            self.alert("broker_disconnected", "critical", f"{self.broker.name}: {exc}")
            self._heartbeat(now, {"broker": "unreachable"})
            return None
        held = {p.symbol: p.qty for p in positions if p.qty}
        self._heartbeat(now, {"equity": account.equity, "positions": held})
        return account, positions, held

    def _read_market(self, now: datetime) -> CycleRead:
        """The cycle's market in one read, with the bars that ended since the simulator (if it
        is the market) last got each symbol's."""
        if self.market is None:
            return self.feed.read(now, watchlist=self.strategy.uses_watchlist)
        oldest = min(min(self._handed.values(), default=self._market_since), self._market_since)
        return self.feed.read(now, after=oldest, seen=self._handed, watchlist=self.strategy.uses_watchlist)

    def _hand_over(self, now: datetime, ended: list[Bar] | None = None) -> None:
        """Give the simulator every bar that has ended since it last got one of that symbol
        (`ended`, when the cycle has read them), however late it reached the warehouse; of a
        daily bar, its opening print once it has opened (a market-on-open order fills then,
        not at the day's end)."""
        assert self.market is not None
        oldest = min(min(self._handed.values(), default=self._market_since), self._market_since)
        if self.feed.timeframe is Timeframe.DAY:
            for bar in self.feed.bars_opened(oldest, now):
                if (bar.symbol, bar.ts) not in self._opened:
                    self.market.on_open(bar)
                    self._opened.add((bar.symbol, bar.ts))
        if ended is None:
            ended = self.feed.bars_ended(oldest, now, seen=self._handed)
        due = [bar for bar in ended if bar.end > self._handed.get(bar.symbol, self._market_since)]
        # A batch in one transaction where the market takes one (the simulator); else bar by bar.
        on_bars = getattr(self.market, "on_bars", None)
        if on_bars is not None:
            on_bars(due)
        else:
            for bar in due:
                self.market.on_bar(bar)
        for bar in due:
            self._handed[bar.symbol] = bar.end

    def finish(self, session: ExchangeSession) -> SessionReport:
        """End of day: record the last events, reconcile, snapshot, summarise."""
        with self._held():
            return self._finish(session, self.clock.now())

    def _finish(self, session: ExchangeSession, now: datetime) -> SessionReport:
        self._write_cycle()  # outcomes a busy warehouse kept from the last cycle
        if self.market is not None:
            self._hand_over(now)  # the bars that ended by the close trade what was working
        self._heard_from(self.execution.sync())
        report = reconcile(self.ledger, self.broker, since=session.pre_open)
        if not report.clean:
            self.alert("position_drift", "critical", report.describe())
        if self.policy.has_time_exit(self.strategy.timeframe):
            left = {s: q for s, q in self.ledger.positions(self.strategy.name).items() if q > 0}
            if left:
                self.alert("position_left_open", "critical", "still held at the close, though the strategy is flat "
                           "by then: " + ", ".join(f"{q:g} {s}" for s, q in sorted(left.items())))
        account = self.broker.account()
        self._mine = None
        mine = self._my_orders()
        fills = [f for f in self.ledger.fills() if f.client_order_id in mine]  # every day's: costs carry over
        self.report.fills = sum(1 for f in fills if f.ts >= session.pre_open)
        self.report.realized_pnl = _realized(fills, since=session.pre_open)
        self.report.equity_end = account.equity
        self.report.reconciled = report.clean
        self.report.status = "finished" if self.report.status == "running" else self.report.status
        with self.warehouse.write() as con:
            con.execute("UPDATE trading_sessions SET status = ?, finished_at = ?, reconciled = ?, summary = ? "
                        "WHERE session_id = ?", [self.report.status, now, report.clean,
                                                 json.dumps(self.report.as_dict(), default=str), self.id])
        if self.observer is not None:  # the closing book (one read of positions a day), with the ledger's P&L
            closing = replace(self._view(now, account, self.broker.positions()), realized_pnl=self.report.realized_pnl)
            self._tell("on_finish", self.report, closing)
        return self.report

    def _check_freshness(self, now: datetime, session: ExchangeSession, newest: datetime | None) -> None:
        """In session, minute bars must keep coming (`newest`: the newest bar's end): alert once when they stop."""
        if self.feed.timeframe is not Timeframe.MINUTE or not session.open + self.rules.stale_after <= now < session.close:
            return
        stale = newest is None or now - newest >= self.rules.stale_after
        if stale and not self._stale:
            seen = newest.astimezone(NEW_YORK).strftime("%H:%M") if newest else "never"
            self.alert("stale_data", "warning", f"newest {self.feed.timeframe} bar ended {seen} New York, "
                       f"{(now - newest) if newest else 'no bars'} before {now.astimezone(NEW_YORK):%H:%M}: "
                       "decisions wait for data")
        self._stale = stale

    # -- risk ---------------------------------------------------------------------------------

    def _killed(self, stored: str | None) -> str | None:
        """Why the kill switch is engaged for this strategy (`stored`: what the warehouse says), or None."""
        killed = (self.external_kill() if self.external_kill else None) or stored
        if killed:
            self._note_killed(killed)
        else:
            self._guard(Guard.KILL_SWITCH, None)
        return killed

    def _note_killed(self, why: str) -> None:
        if self.report.status != "killed":
            self.report.status = "killed"
            self.alert("kill_switch", "critical", f"{self.strategy.name}: {why}; entries cancelled")
        self._guard(Guard.KILL_SWITCH, why)

    def _stand_down(self, why: str) -> None:
        """Cancel the strategy's working entries (exits and stops stay)."""
        mine = self._my_orders()
        for order in self.broker.open_orders():
            if order.client_order_id in mine and order.side is Side.BUY:
                self._quietly(lambda o=order: self.execution.cancel(o.client_order_id))

    def _closing(self, now: datetime) -> bool:
        return self._exit_at is not None and now >= self._exit_at

    # -- decisions ------------------------------------------------------------------------------

    def _decide(self, now: datetime, account: Account, held: dict[str, float], stop: str | None) -> None:
        """Every decision since the session's start whose time has come; one already recorded
        is not taken again (a late bar can still bring a decision of an earlier minute)."""
        signals = self.strategy.signals(self._history)
        due = signals.filter((pl.col("at") <= instant(now)) & (pl.col("at") >= instant(self._session_start)))
        new: dict[str, dict] = {}
        for row in due.sort("at", "symbol").iter_rows(named=True):
            cid = decision_order_id(self.strategy.name, row["at"], row["symbol"], row["action"],
                                    params=params_hash(self.strategy.p), mode=self.broker.mode.value)
            if cid in self._recorded:
                self._taken.add(cid)  # taken already (this cycle's history repeats it; or before a restart)
            elif cid not in new:
                new[cid] = row
        self._record_decisions(new)  # all recorded, in one statement, before the first goes out
        for cid, row in new.items():
            self.report.decisions += 1
            self._carry_out(cid, row, now, account, held, stop)

    def _market_age(self, at: datetime, now: datetime) -> timedelta:
        """How long the market has been open since `at` (a decision at the close is fresh at the next open)."""
        calendar = get_calendar()
        since = at if calendar.is_open(at) else calendar.next_open(at)
        return now - since

    def _carry_out(self, cid: str, row: dict, now: datetime, account: Account, held: dict[str, float],
                   stop: str | None) -> None:
        """Carry out a recorded decision through the execution policy, or record why not."""
        at, symbol, action = row["at"], row["symbol"], row["action"]
        if self._market_age(at, now) > self.rules.max_decision_age:
            return self._outcome(cid, Outcome.TOO_OLD.with_detail(f"decided {at.isoformat()}, seen {now.isoformat()}"))
        if action == Action.ENTER:
            qty = self._entry_size(row, now, account, held, stop)
            if isinstance(qty, str):
                return self._outcome(cid, qty)
            side = Side.BUY
        else:
            if self._closing(now):
                return self._outcome(cid, Outcome.CLOSING)
            busy = symbol in self._my_symbols()
            self._cancel_symbol(symbol)
            qty = self._sellable(symbol, held)
            if qty <= 0:
                return self._outcome(cid, Outcome.CANCELLED_ENTRY if busy else Outcome.NOTHING_TO_EXIT)
            side = Side.SELL
        order = Order(client_order_id=cid, mode=self.broker.mode, broker=self.broker.name, strategy=self.strategy.name,
                      symbol=symbol, side=side, qty=qty, order_type=OrderType(row["order_type"]),
                      time_in_force=TimeInForce(row["time_in_force"]), created_at=now, limit_price=row["limit_price"],
                      stop_price=row["stop_price"], reason=row["reason"])
        self._send(order)

    def _book(self, account: Account, held: dict[str, float]) -> BookView:
        """The account's equity and buying power, the strategy's own positions and working orders."""
        mine = {s: q for s, q in self.ledger.positions(self.strategy.name).items() if min(q, held.get(s, 0.0)) > 0}
        return BookView(equity=account.equity, buying_power=account.buying_power, held=mine, working=self._my_symbols())

    def _entry_size(self, row: dict, now: datetime, account: Account, held: dict[str, float],
                    stop: str | None) -> float | str:
        """Shares for an entry, or the outcome that refuses it (the policy's gates, then its sizing).
        The account is read afresh: an entry sent earlier in this cycle has taken buying power."""
        symbol = row["symbol"]
        account = self.broker.account()
        book = self._book(account, held)
        refused = self.policy.gate(symbol, closing=self._closing(now), stopped=stop, book=book, breaker=self.breaker,
                                   session=self.day.toordinal())
        if refused is not None:
            if refused.startswith(Outcome.DAILY_LOSS):
                self._breaker_tripped(now, account.equity)
            return refused
        return self.policy.entry(symbol, asked=row["qty"], price=self._last_close(symbol), book=book)

    def _breaker_tripped(self, now: datetime, equity: float) -> None:
        """The day is locked for this strategy on this account (a restart sees it), once."""
        if day_lock(self.warehouse, self.lock_scope, self.day):
            return
        why = self.breaker.describe(self.day.toordinal(), equity)
        lock_day(self.warehouse, self.lock_scope, self.day, "daily_loss", why)
        if self.observer is not None:
            self._tell("on_guard", Guard.BREAKER, True, why)
        self.alert("breaker_tripped", "critical", f"{self.strategy.name}: daily loss limit hit, {why}; "
                   "entries locked for the day")
        if self.policy.flatten_on_breaker:
            self._flatten(now, "daily loss limit: flatten")

    def _send(self, order: Order) -> None:
        self._mine = None  # the ledger records the order under the strategy: the next look reads them afresh
        try:
            state = self.execution.submit(order)
        except OrderRejected as exc:
            self.report.rejected += 1
            self._outcome(order.client_order_id, Outcome.REJECTED.with_detail(str(exc.reason)))
            self.alert("order_rejected", "warning", f"{order.symbol} {order.side} {order.qty:g}: {exc}")
            return
        except EntriesBlocked as exc:
            self._outcome(order.client_order_id, Outcome.ENTRIES_STOPPED.with_detail(str(exc)))
            return
        except Disconnected as exc:  # still 'decided': the next start or cycle sends it again
            self.alert("broker_disconnected", "critical", f"{order.client_order_id} not confirmed: {exc}")
            return
        self.report.orders_sent += 1
        self._outcome(order.client_order_id, Outcome.SENT)
        self._track(state)

    def _retry_unsent(self, now: datetime, account: Account, held: dict[str, float], stop: str | None) -> None:
        """Decisions recorded but never confirmed sent (a crash, a broker that did not answer)
        go through the same gates as new ones: age, kill switch, lock, sizing. `place` finds
        any that did reach the broker, so none is sent twice."""
        unsent = sorted(((cid, r.row) for cid, r in self._recorded.items() if r.outcome == Outcome.DECIDED.value),
                        key=lambda item: item[1]["at"])
        rows = [(cid, r["at"], r["symbol"], r["action"], r["reason"], r["qty"], r["order_type"], r["time_in_force"],
                 r["limit_price"], r["stop_price"]) for cid, r in unsent]
        for cid, at, symbol, action, reason, qty, order_type, tif, limit_price, stop_price in rows:
            state = self.broker.order(cid)
            if state is not None:  # it did reach the broker before the answer was lost
                self.ledger.record_order(state, strategy=self.strategy.name)
                self._mine = None
                self._outcome(cid, Outcome.SENT)
                self.report.recovery.append(f"order {cid} ({action} {symbol}) had reached the broker: recorded")
                continue
            if action == Action.EXIT and (order_type == OrderType.STOP or reason == TIME_EXIT):
                continue  # a protective stop is placed afresh by `_protect`; the closing sell by `_time_exit`
            if cid not in self._taken:  # decided before a restart
                self._taken.add(cid)
                self.report.recovery.append(f"decision {cid} ({action} {symbol} at {at.isoformat()}) had not "
                                            "reached the broker: carried out now")
            row = {"at": at, "symbol": symbol, "action": action, "reason": reason, "qty": qty,
                   "order_type": order_type, "time_in_force": tif, "limit_price": limit_price, "stop_price": stop_price}
            self._carry_out(cid, row, now, account, held, stop)

    def _record_decision(self, cid: str, row: dict) -> bool:
        """Write the decision before anything is sent; False if it was recorded already."""
        if cid in self._recorded:
            self._taken.add(cid)
            return False
        self._record_decisions({cid: row})
        return True

    def _record_decisions(self, rows: dict[str, dict]) -> None:
        """Write new decisions (client order id -> row) in one statement, before any is sent."""
        if not rows:
            return
        recorded_at = self.clock.now()
        values = [[self.id, cid, r["at"], r["symbol"], r["action"], r["reason"], r["qty"], r["order_type"],
                   r["time_in_force"], r["limit_price"], r["stop_price"], Outcome.DECIDED.value, recorded_at]
                  for cid, r in rows.items()]
        with self.warehouse.write() as con:
            con.execute("INSERT INTO session_decisions VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"]
                                                                           * len(values)),
                        [v for row in values for v in row])
        names = ("at", "symbol", "action", "reason", "qty", "order_type", "time_in_force", "limit_price", "stop_price")
        for cid, r in rows.items():
            self._recorded[cid] = Recorded({n: r[n] for n in names}, Outcome.DECIDED.value)
            self._taken.add(cid)

    def _outcome(self, cid: str, outcome: str) -> None:
        """A decision's outcome: known at once, written with the cycle's heartbeat (a restart
        that misses it asks the broker: `_retry_unsent`)."""
        if cid in self._recorded:
            self._recorded[cid] = replace(self._recorded[cid], outcome=str(outcome))
        self._unwritten[cid] = str(outcome)

    def _write_cycle(self) -> None:
        """The cycle's outcomes and heartbeat, in one transaction."""
        if not self._unwritten and self._beat is None:
            return
        with self.warehouse.write() as con:
            self._write_outcomes(con)
            if self._beat is not None:
                now, detail = self._beat
                # Not ON CONFLICT DO NOTHING: DuckDB's upsert path costs twice this, every cycle.
                con.execute("INSERT INTO heartbeats SELECT $c, $ts, $detail WHERE NOT EXISTS "
                            "(SELECT 1 FROM heartbeats WHERE component = $c AND ts = $ts)",
                            {"c": self.component, "ts": now,
                             "detail": json.dumps({"session_id": self.id, **detail}, default=str)})
        self._beat = None

    def _write_outcomes(self, con) -> None:  # type: ignore[no-untyped-def]
        if self._unwritten:
            con.execute("UPDATE session_decisions AS d SET outcome = o.outcome FROM (SELECT unnest(?) AS cid, "
                        "unnest(?) AS outcome) AS o WHERE d.session_id = ? AND d.client_order_id = o.cid",
                        [list(self._unwritten), list(self._unwritten.values()), self.id])
            self._unwritten.clear()

    # -- exits -------------------------------------------------------------------------------------

    def _protect(self, now: datetime, held: dict[str, float]) -> None:
        """A protective stop under each position the strategy holds with no sell working yet."""
        if not self.policy.stop_loss_pct:
            return
        mine = self._my_orders()
        selling = {o.symbol for o in self.broker.open_orders() if o.side is Side.SELL and o.client_order_id in mine}
        for symbol, qty in self.ledger.positions(self.strategy.name).items():
            qty = min(qty, held.get(symbol, 0.0))
            if qty <= 0 or symbol in selling:
                continue
            entry = self.ledger.last_filled_entry(self.strategy.name, symbol)
            state = self.broker.order(entry) if entry else None
            if state is None or not state.avg_fill_price or state.is_open:
                continue  # its size is known once the entry has stopped working
            last_fill = max((f.ts for f in self.ledger.fills(entry)), default=None)
            if last_fill is None or not self._bar_ended_after(symbol, last_fill):
                continue  # live from the bar after the entry's last fill, as in a backtest (a daily bar: the next day)
            stop_price = self.policy.stop_price(state.avg_fill_price)
            cid = client_order_id(self.strategy.name, f"stop after {entry}", symbol, "stop")  # entry ids are unique
            if self._record_exit(cid, now, symbol, f"stop loss {self.policy.stop_loss_pct:.1%} under the entry",
                                 OrderType.STOP, TimeInForce.GTC, stop_price=stop_price):
                self._send_exit(cid, now, symbol, qty, OrderType.STOP, TimeInForce.GTC, stop_price=stop_price,
                                reason="protective stop")

    def _time_exit(self, now: datetime) -> None:
        """Before the close, every cycle until the close: the strategy's orders cancelled, what
        it holds sold."""
        self._flatten(now, TIME_EXIT)

    def _flatten(self, now: datetime, reason: str) -> None:
        """Cancel the strategy's working orders, all but this step's own sells, and sell what it
        still holds. A sell of this step that is working at the broker is kept (one sent before
        a crash is adopted); one that ended with shares left is followed by another, under a
        new id, so a restarted closing step never waits on an id the broker has used."""
        mine, own = self._my_orders(), self._decided(reason)
        for order in self.broker.open_orders():
            if order.client_order_id in mine and order.client_order_id not in own:
                self._quietly(lambda o=order: self.execution.cancel(o.client_order_id))
        held = {p.symbol: p.qty for p in self.broker.positions() if p.qty}
        for symbol, qty in self.ledger.positions(self.strategy.name).items():
            if min(qty, held.get(symbol, 0.0)) > 0:
                self._sell_out(now, symbol, reason, own)

    def _sell_out(self, now: datetime, symbol: str, reason: str, own: set[str]) -> None:
        """One working sell of the strategy's `symbol` for `reason`: kept if there is one, else sent."""
        for attempt in range(FLATTEN_ATTEMPTS):
            cid = client_order_id(self.strategy.name, f"{self.id} {reason}" + (f" #{attempt + 1}" if attempt else ""),
                                  symbol, "exit")
            state = self.broker.order(cid)
            if state is not None and not state.is_open:
                continue  # it ended (filled, cancelled, rejected): the shares left need the next one
            if state is not None:  # working: keep it
                if cid not in self._taken:
                    self.ledger.record_order(state, strategy=self.strategy.name)
                    self._mine = None
                    self._outcome(cid, Outcome.SENT)
                    self._taken.add(cid)
                    self.report.recovery.append(f"kept the closing sell {cid} of {symbol}: it reached the broker "
                                                "before the restart")
                return
            held = {p.symbol: p.qty for p in self.broker.positions() if p.qty}  # afresh: a sell may just have filled
            qty = self._sellable(symbol, held)
            if qty <= 0:
                return
            if cid in own and cid not in self._taken:
                self.report.recovery.append(f"sent the closing sell {cid} of {symbol}: it was decided before the "
                                            "restart and never reached the broker")
            self._record_exit(cid, now, symbol, reason, OrderType.MARKET, TimeInForce.DAY)
            self._send_exit(cid, now, symbol, qty, OrderType.MARKET, TimeInForce.DAY, reason=reason)
            return
        self.alert("position_left_open", "critical", f"{symbol}: {FLATTEN_ATTEMPTS} sells to flatten it "
                   f"({reason}) ended without selling it all")

    def _decided(self, reason: str) -> set[str]:
        """Client order ids of this session's decisions made for `reason`."""
        return {cid for cid, r in self._recorded.items() if r.row["reason"] == reason}

    def _record_exit(self, cid: str, now: datetime, symbol: str, reason: str, order_type: OrderType,
                     tif: TimeInForce, stop_price: float | None = None) -> bool:
        return self._record_decision(cid, {"at": now, "symbol": symbol, "action": Action.EXIT.value, "reason": reason, "qty": None,
                                           "order_type": order_type.value, "time_in_force": tif.value,
                                           "limit_price": None, "stop_price": stop_price})

    def _send_exit(self, cid: str, now: datetime, symbol: str, qty: float, order_type: OrderType, tif: TimeInForce,
                   stop_price: float | None = None, reason: str = "") -> None:
        self._send(Order(client_order_id=cid, mode=self.broker.mode, broker=self.broker.name,
                         strategy=self.strategy.name, symbol=symbol, side=Side.SELL, qty=qty, order_type=order_type,
                         time_in_force=tif, created_at=now, stop_price=stop_price, reason=reason))

    def _cancel_symbol(self, symbol: str) -> None:
        mine = self._my_orders()
        for order in self.broker.open_orders():
            if order.symbol == symbol and order.client_order_id in mine:
                self._quietly(lambda o=order: self.execution.cancel(o.client_order_id))

    # -- bookkeeping ---------------------------------------------------------------------------

    def _sellable(self, symbol: str, held: dict[str, float]) -> float:
        """What an exit may sell: the strategy's own shares, never more than the account holds."""
        return max(0.0, min(self.ledger.positions(self.strategy.name).get(symbol, 0.0), held.get(symbol, 0.0)))

    def _my_orders(self) -> set[str]:
        """The strategy's client order ids on this account (any session's), read once a cycle
        and again after it sends one."""
        if self._mine is None:
            with self.warehouse.write() as con:
                rows = con.execute("SELECT client_order_id FROM orders WHERE strategy = ? AND broker = ? AND mode = ?",
                                   [self.strategy.name, self.broker.name, self.broker.mode.value]).fetchall()
            self._mine = {r[0] for r in rows}
        return self._mine

    def _my_symbols(self) -> set[str]:
        mine = self._my_orders()
        return {o.symbol for o in self.broker.open_orders() if o.client_order_id in mine}

    def _bar_ended_after(self, symbol: str, ts: datetime) -> bool:
        """Whether a bar of `symbol` that started at or after `ts` has ended (is in this cycle's view)."""
        bars = self._history.bars.filter(pl.col("symbol") == symbol)
        return bars.height > 0 and bars["end_ts"].max() > ts

    def _last_close(self, symbol: str) -> float | None:
        bars = self._history.bars.filter(pl.col("symbol") == symbol)
        return float(bars["close"][-1]) if bars.height else None

    def _heartbeat(self, now: datetime, detail: dict) -> None:
        self._beat = (now, detail)  # written with the cycle's outcomes

    def alert(self, kind: str, severity: str, message: str) -> None:
        self.report.alerts.append(f"{kind}: {message}")
        self._alert(kind, severity, message)

    def _quietly(self, action: Callable[[], object]) -> None:
        try:
            done = action()
        except BrokerError as exc:  # a cancel that races a fill is not an error worth stopping for
            log.info("%s: %s", self.id, exc)
            return
        if isinstance(done, BrokerOrder):  # a cancel's answer: the order as it stands now
            self._track(done)

    # -- what an observer is told ----------------------------------------------------------------

    def _start_watch(self) -> None:
        """The orders working when the day starts (one look a day); then the broker's answers keep them."""
        try:
            self._working = {o.client_order_id: o for o in self.broker.open_orders()}
        except BrokerError as exc:
            log.info("%s: working orders unknown at the start: %s", self.id, exc)
        self._tell("on_start", self.id, self.day, self._cycles)

    def _track(self, order: BrokerOrder) -> None:
        if self.observer is None:
            return
        if order.is_open:
            self._working[order.client_order_id] = order
        else:
            self._working.pop(order.client_order_id, None)

    def _heard_from(self, updates: list[OrderUpdate]) -> None:
        """The broker's order events, in order: the working orders they change, the fills they bring."""
        if self.observer is None:
            return
        for update in updates:
            self._track(update.order)
            fill = update.fill
            if fill is not None and fill.fill_id not in self._heard:
                self._heard.add(fill.fill_id)
                self._tell("on_fill", fill)

    def _guard(self, guard: Guard, why: str | None) -> None:
        """Tell a guard's change (engaged with `why`, or let go), once per change."""
        if self.observer is None or self._guards.get(guard, False) == (why is not None):
            return
        self._guards[guard] = why is not None
        self._tell("on_guard", guard, why is not None, why or f"{guard} released")

    def _view(self, now: datetime, account: Account, positions: list[Position]) -> SessionView:
        holdings = tuple(Holding.of(p, self._last_close(p.symbol) if self._history is not None else None)
                         for p in sorted(positions, key=lambda p: p.symbol) if p.qty)
        unrealized = sum(h.unrealized_pnl for h in holdings)
        if self._unrealized_start is None:
            self._unrealized_start = unrealized
        start = self.report.equity_start if self.report.equity_start is not None else account.equity
        working = tuple(WorkingOrder.of(o) for o in sorted(self._working.values(),
                                                           key=lambda o: (o.symbol, o.client_order_id)))
        return SessionView(self.id, now, self.report.cycles, max(self._cycles, self.report.cycles), account.equity,
                           account.cash, account.equity - start - (unrealized - self._unrealized_start), unrealized,
                           holdings, working)

    def _tell(self, hook: str, *args: object) -> None:
        """An observer that fails never stops trading: one warning per kind of call, then quiet."""
        try:
            getattr(self.observer, hook)(*args)
        except Exception as exc:
            if hook not in self._observer_failed:
                self._observer_failed.add(hook)
                log.warning("%s: the session's observer failed in %s (%s); trading goes on", self.id, hook,
                            type(exc).__name__)


def _realized(fills, since: datetime) -> float:
    """Realised P&L of the sales since `since`, each against the average cost of the shares it
    sold (bought on any day), less every commission paid since then."""
    held: dict[str, float] = {}
    cost: dict[str, float] = {}
    total = 0.0
    for f in sorted(fills, key=lambda f: (f.ts, f.fill_id)):
        shares, paid = held.get(f.symbol, 0.0), cost.get(f.symbol, 0.0)
        if f.side is Side.BUY:
            held[f.symbol], cost[f.symbol] = shares + f.qty, paid + f.qty * f.price
        else:
            average = paid / shares if shares else 0.0
            held[f.symbol], cost[f.symbol] = shares - f.qty, paid - average * f.qty
            if f.ts >= since:
                total += (f.price - average) * f.qty
        if f.ts >= since:
            total -= f.commission
    return total
