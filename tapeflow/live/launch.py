"""Putting a session together: the configured broker on the wall clock for paper or live,
or the simulated broker on a simulated clock for a replay of stored days.

A replay runs in a warehouse file of its own (seeded from the main warehouse with the bars of
the strategy's warm-up and its days, and the watchlist snapshots and scored headlines around
them), so a simulated day never touches the paper account's book, its ledger or the count of
paper sessions that promotion relies on. A replay of several days runs one session a day
against one simulated account, as paper trading would: what a day leaves open, the next day
holds. Run again, a replay resumes from its file where it stopped (finished days are kept,
an unfinished day goes on from its last cycle) unless asked to start afresh; one process at a
time may run it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time, timedelta
from pathlib import Path

import polars as pl

from tapeflow.backtest.costs import cost_preset
from tapeflow.backtest.liquidity import liquidity_sources
from tapeflow.brokers.execution import Execution
from tapeflow.brokers.ledger import Ledger
from tapeflow.calendar.exchange import NEW_YORK, get_calendar, ny_day, ny_day_bounds
from tapeflow.calendar.hours import no_session_now
from tapeflow.config import Settings
from tapeflow.live.clock import SimulatedClock, WallClock
from tapeflow.live.feed import WarehouseFeed
from tapeflow.live.identity import params_hash, session_id
from tapeflow.live.observer import SessionObserver
from tapeflow.live.promotion import promoted_params, require_promotion
from tapeflow.live.recorded import replays_dir
from tapeflow.live.report import SessionReport
from tapeflow.live.session import AlertHook, SessionRules, TradingSession
from tapeflow.model import Mode
from tapeflow.news.features import SCORING_LATENCY, NewsReading
from tapeflow.news.model_registry import current_model, day_model
from tapeflow.news.tickers import TAGGER
from tapeflow.ops.alert_book import AlertBook, book_from_settings
from tapeflow.ops.alerts import Alert, LogChannel
from tapeflow.progress import tracked
from tapeflow.strategy.base import Strategy
from tapeflow.strategy.registry import get_strategy
from tapeflow.strategy.warmup import history_from, session_warmup
from tapeflow.venues.configured import open_broker
from tapeflow.venues.simulator import SimBroker
from warehouse.connection import Warehouse, WarehouseMissing
from warehouse.upsert import upsert

START = time(9, 25)  # New York: a replay starts before the open, as the deployment does
LOOKBACK = timedelta(days=60)
NEWS_TABLES = {"news": ("source", "id"), "news_revisions": (),
               "news_tags": ("source", "id", "tagger", "news_hash"), "news_scores": ("source", "id", "model", "news_hash")}


class ReplayRunning(RuntimeError):
    """Another process is running the same replay (its file is locked)."""


class ReplayMismatch(ValueError):
    """A replay file to resume ran with other rules than the ones asked for now."""


class NoSession(ValueError):
    """No trading session can run now; the message says why and when the next one opens."""


@dataclass
class Launched:
    sessions: list[TradingSession]  # one a day, run in order
    warehouse: Warehouse  # where the sessions' rows are: the main one, or the replay's own
    done: list[SessionReport] = field(default_factory=list)  # days a resumed replay had finished already
    lock: int | None = None  # the replay file's lock, held until the run ends

    @property
    def session(self) -> TradingSession:
        return self.sessions[-1]

    def run(self) -> list[SessionReport]:
        try:
            if len(self.done) + len(self.sessions) < 2 or not self.sessions:  # a day's session tells its own cycles
                return self.done + [session.run() for session in self.sessions]
            reports = list(self.done)
            with tracked(f"replay {self.session.strategy.name} to {self.session.day}",
                         total=len(self.done) + len(self.sessions)) as progress:
                if reports:
                    progress.update(len(reports), detail=f"{len(reports)} finished before, kept")
                for session in self.sessions:
                    reports.append(session.run())
                    progress.advance(detail=f"{session.day}: {reports[-1].orders_sent} orders sent, "
                                            f"{reports[-1].fills} fills")
            return reports
        finally:
            self.release()

    def release(self) -> None:
        if self.lock is not None:
            os.close(self.lock)  # closing the descriptor drops the lock (a dead process's goes with it)
            self.lock = None


def strategy_for(warehouse: Warehouse, name: str, params: dict | None, mode: Mode) -> Strategy:
    """The strategy with `params`, else with the parameters last promoted for `mode`."""
    chosen = params if params is not None else promoted_params(warehouse, name, mode) or {}
    return get_strategy(name)(**chosen)


def book_alerts(book: AlertBook, strategy: str, day: date) -> AlertHook:
    """A session's alerts through `book`: one key per kind, strategy and day (a rejection's
    also names the order), so a condition that lasts alerts once per window."""
    component = f"trade_session:{strategy}"

    def raise_alert(kind: str, severity: str, message: str) -> None:
        key = f"{kind}:{component}:{day.isoformat()}"
        if kind == "order_rejected":
            key += ":" + hashlib.sha256(message.encode()).hexdigest()[:8]
        book.raise_alert(Alert(component=component, severity=severity, title=f"{strategy}: {kind.replace('_', ' ')}",
                               message=message), key, kind=kind)

    return raise_alert


def live_session(settings: Settings, warehouse: Warehouse, name: str, params: dict | None = None, *,
                 rules: SessionRules = SessionRules(), external_kill: Callable[[], str | None] | None = None,
                 alert: AlertHook | None = None, observer: SessionObserver | None = None) -> Launched:
    """Today's session with the configured broker (paper unless live is confirmed and promoted);
    alerts go through the settings' channel and are recorded; `observer` is told what it does."""
    strategy = strategy_for(warehouse, name, params, settings.mode)
    today = ny_day(WallClock().now())
    alert = alert or book_alerts(book_from_settings(settings, warehouse), strategy.name, today)
    require_promotion(warehouse, strategy.name, strategy.p, settings.mode, settings)
    broker = open_broker(settings, warehouse)
    market = broker if isinstance(broker, SimBroker) else None  # the simulator trades the stored bars
    execution = Execution(broker, Ledger(warehouse, broker.name, settings.mode))
    feed = WarehouseFeed(warehouse, strategy.timeframe, warmup_bars=strategy.warmup_bars(),
                         news=news_reading(settings, warehouse, strategy, replay=False, day=today))
    feed.require_history(today)
    session = TradingSession(strategy, execution, feed, WallClock(), warehouse, rules=rules, market=market,
                             external_kill=external_kill, alert=alert, observer=observer)
    return Launched([session], warehouse)


def replay_session(settings: Settings, main: Warehouse, name: str, day: date, params: dict | None = None, *,
                   rules: SessionRules = SessionRules(), alert: AlertHook | None = None, through: date | None = None,
                   external_kill: Callable[[], str | None] | None = None, fresh: bool = False,
                   observer: SessionObserver | None = None) -> Launched:
    """Stored days `day`..`through` replayed on a simulated clock against the simulated broker,
    one session a day, in a warehouse file of their own under TAPEFLOW_HOME/replays/ (resumed
    where it stopped unless `fresh`); the alerts go to the log (it is a simulation) and are
    recorded there. `observer` is told what each day's session does."""
    calendar = get_calendar()
    last = through or day
    if last < day:
        raise ValueError(f"the replay ends ({last}) before it starts ({day})")
    days = [s.date for s in calendar.sessions(day, last)]
    if not days or days[0] != day:
        raise ValueError(f"{day} is not a trading day: nothing to replay")
    strategy = strategy_for(main, name, params, Mode.PAPER)
    WarehouseFeed(main, strategy.timeframe, warmup_bars=strategy.warmup_bars()).require_history(day)
    path = replay_path(settings, strategy, days[0], days[-1])
    lock = _lock_replay(path)
    try:
        resumed = path.exists() and not fresh
        warehouse = Warehouse(path) if resumed else seeded_warehouse(main, path, days[0], days[-1], strategy)
        ids = {d: session_id(strategy.name, strategy.p, SimBroker.name, Mode.PAPER.value, d) for d in days}
        progress = _progress(warehouse, ids, rules) if resumed else {}
        clock = SimulatedClock(datetime.combine(day, START, NEW_YORK))
        broker = SimBroker(warehouse, cash=settings.sim_cash, costs=cost_preset(settings.sim_costs), now=clock)
        execution = Execution(broker, Ledger(warehouse, broker.name, Mode.PAPER))
        news = news_reading(settings, main, strategy, replay=True, day=day)
        if not resumed:
            for bar in WarehouseFeed(warehouse, strategy.timeframe,
                                     warmup_bars=strategy.warmup_bars()).latest_bars(clock.now()):
                broker.on_bar(bar)  # the account is marked, and orders priced, as the market stood when the replay begins
        done, sessions = [], []
        for n, today in enumerate(days):
            stopped = progress.get(today)
            if isinstance(stopped, SessionReport):
                done.append(stopped)  # finished before: kept as it was
                continue
            feed = WarehouseFeed(warehouse, strategy.timeframe, warmup_bars=strategy.warmup_bars(), news=news)
            feed.require_history(today)
            hook = alert or book_alerts(AlertBook(warehouse, LogChannel(), window=timedelta(0)), strategy.name, today)
            sessions.append(TradingSession(
                strategy, execution, feed, _DayStart(clock, today, stopped), warehouse, rules=rules, day=today,
                market=broker, alert=hook, hold_warehouse=True, external_kill=external_kill,
                decisions_since=ny_day_bounds(day)[0] if n == 0 else None,
                market_since=calendar.session(days[n - 1]).close if n else None, observer=observer))
    except BaseException:
        os.close(lock)
        raise
    return Launched(sessions, warehouse, done, lock)


def replay_path(settings: Settings, strategy: Strategy, first: date, last: date) -> Path:
    """The replay's file: strategy, days, and the parameters' hash when they are not the defaults."""
    span = first.isoformat() if last == first else f"{first.isoformat()}..{last.isoformat()}"
    default = params_hash(type(strategy)().p)
    tag = "" if params_hash(strategy.p) == default else f"-{params_hash(strategy.p)}"
    return replays_dir(settings) / f"{strategy.name}-{span}{tag}.duckdb"


def _lock_replay(path: Path) -> int:
    """Hold the replay's lock file, or refuse: another process is running this replay."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_suffix(".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise ReplayRunning(f"{path.name} is being replayed by process {holder}: wait for it to finish, "
                            "or stop it first") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def _progress(warehouse: Warehouse, ids: dict[date, str], rules: SessionRules) -> dict[date, object]:
    """Per day of a replay file: the report of a finished session, or the instant an
    unfinished one's last cycle ran (where it goes on from); days never started are absent."""
    asked = json.loads(json.dumps(rules.describe()))
    known = {f.name for f in fields(SessionReport)}
    progress: dict[date, object] = {}
    with warehouse.write() as con:
        for day, sid in ids.items():
            rows = con.execute("SELECT status, summary, rules FROM trading_sessions WHERE session_id = ?",
                               [sid]).fetchall()
            if not rows:
                continue
            status, summary, ran = rows[0]
            if ran is not None and json.loads(ran) != asked:
                raise ReplayMismatch(f"{warehouse.path.name} ran {day} with other rules: add --fresh to replay "
                                     "from the start with these")
            if status == "finished" and summary:
                report = json.loads(summary)
                progress[day] = SessionReport(**{k: v for k, v in report.items() if k in known})
            else:
                beats = con.execute("SELECT max(ts) FROM heartbeats WHERE detail->>'session_id' = ?", [sid]).fetchall()
                if beats[0][0] is not None:
                    progress[day] = beats[0][0]
    return progress


def check_replay(settings: Settings, main: Warehouse, name: str, day: date, params: dict | None = None, *,
                 through: date | None = None) -> None:
    """Refuse a replay of `day` the main warehouse cannot feed (not a trading day, no bars on the
    days, too little history for the strategy's warm-up: NotEnoughHistory names what to
    ingest), or one another process is running (ReplayRunning)."""
    if not get_calendar().is_session(day):
        raise ValueError(f"{day} is not a trading day: nothing to replay")
    strategy = strategy_for(main, name, params, Mode.PAPER)
    WarehouseFeed(main, strategy.timeframe, warmup_bars=strategy.warmup_bars()).require_history(day)
    days = [s.date for s in get_calendar().sessions(day, max(through or day, day))]
    start, end = ny_day_bounds(days[0])[0], ny_day_bounds(days[-1])[1]
    with main.read() as con:
        [(stored,)] = con.execute("SELECT count(*) FROM bars_all WHERE timeframe = ? AND ts >= ? AND ts < ?",
                                  [strategy.timeframe.value, start, end]).fetchall()
    if not stored:
        raise ValueError(f"the warehouse has no {strategy.timeframe} bars on {days[0]}..{days[-1]}: ingest them first, "
                         f"e.g. tapeflow ingest --timeframe {strategy.timeframe} --start {days[0]} "
                         f"--end {days[-1] + timedelta(days=1)}")
    os.close(_lock_replay(replay_path(settings, strategy, days[0], days[-1])))


def check_session(settings: Settings, main: Warehouse, name: str, params: dict | None, now: datetime) -> None:
    """Refuse a session at `now` that cannot run: none now (NoSession; after the close only an
    unfinished one may still finish), no warehouse, no promotion, too little warm-up."""
    day = ny_day(now)
    closed = no_session_now(now)
    if closed is not None and not (get_calendar().is_session(day) and main.path.exists()):
        raise NoSession(closed)
    if not main.path.exists():  # the checks below would create an empty one
        raise WarehouseMissing(f"no warehouse at {main.path}: ingest what the strategy trades first "
                               "(tapeflow demo, or tapeflow ingest)")
    strategy = strategy_for(main, name, params, settings.mode)
    if closed is not None:
        # A session started after the close would record a day it never traded (and count it as paper).
        sid = session_id(strategy.name, strategy.p, settings.broker, settings.mode.value, day)
        with main.read() as con:
            row = con.execute("SELECT status FROM trading_sessions WHERE session_id = ?", [sid]).fetchone()
        if row is None or row[0] not in ("running", "failed"):
            raise NoSession(closed)
    require_promotion(main, strategy.name, strategy.p, settings.mode, settings)
    WarehouseFeed(main, strategy.timeframe, warmup_bars=strategy.warmup_bars()).require_history(day)


class _DayStart:
    """The replay's clock, moved to `day`'s start (or, resumed, to where the day stopped) when
    that day's session first looks at it."""

    def __init__(self, clock: SimulatedClock, day: date, stopped: datetime | None = None) -> None:
        self.clock, self.day, self.moved, self.stopped = clock, day, False, stopped

    def now(self) -> datetime:
        if not self.moved:
            start = max(datetime.combine(self.day, START, NEW_YORK), self.stopped or self.clock.now())
            if self.clock.now() < start:
                self.clock.sleep((start - self.clock.now()).total_seconds())
            self.moved = True
        return self.clock.now()

    def sleep(self, seconds: float) -> None:
        self.clock.sleep(seconds)


def news_reading(settings: Settings, warehouse: Warehouse, strategy: Strategy, *, replay: bool,
                 day: date) -> NewsReading | None:
    """The headlines' reading a news strategy trades on: in a session, the day's model (the one
    current when the day began; the ingest flows score with it too) with the real scoring
    times; in a replay, the current model and the assumed scoring latency."""
    if not strategy.uses_news:
        return None
    if replay:
        model, _ = current_model(settings, warehouse)
        return NewsReading(model, TAGGER, SCORING_LATENCY)
    model, _ = day_model(settings, warehouse, day)  # no model at all: refuse to start
    return NewsReading(model, TAGGER)


def seeded_warehouse(main: Warehouse, path: Path, first: date, last: date, strategy: Strategy) -> Warehouse:
    """A new warehouse at `path` holding the main one's bars of the strategy's timeframe from
    its warm-up before `first` to the end of `last`, the bars the liquidity of those days is
    measured on, and the watchlist snapshots and headlines (with their tags and scores) from
    LOOKBACK before `first`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)
    end = ny_day_bounds(last)[1]
    with main.read() as con:
        bars_from, _ = history_from(con, strategy.timeframe, session_warmup(strategy.timeframe, strategy.warmup_bars()),
                                    first)
        start = min(bars_from, ny_day_bounds(first - LOOKBACK)[0])
        # Through `bars_all`: a replay of a day whose month was archived is seeded all the same.
        bars = con.sql("SELECT * EXCLUDE (month) FROM bars_all WHERE timeframe = $tf AND end_ts > $start AND ts < $end",
                       params={"tf": strategy.timeframe.value, "start": bars_from, "end": end}).pl()
        # The bars the simulator measures each name's liquidity on, so that it prices as the backtest does.
        sources = liquidity_sources(con, bars["symbol"].unique().sort().to_list(), first, last)
        watchlist = con.sql("SELECT * FROM watchlist_snapshots WHERE as_of >= $start AND as_of < $end",
                            params={"start": start, "end": end}).pl()
        news = {table: con.sql(f"SELECT x.* FROM {table} x JOIN news n USING (source, id) "
                               "WHERE n.published_at >= $start AND n.published_at < $end",
                               params={"start": start, "end": end}).pl()
                for table in NEWS_TABLES}
    if bars.is_empty():
        raise ValueError(f"the warehouse has no {strategy.timeframe} bars around {first}: ingest them first")
    replay = Warehouse(path)
    with replay.write() as con:
        upsert(con, "bars", pl.concat([bars, sources]).unique(["symbol", "timeframe", "ts"], keep="first"),
               ("symbol", "timeframe", "ts"))
        if watchlist.height:
            upsert(con, "watchlist_snapshots", watchlist, ("source", "session", "as_of", "ticker"))
        for table, rows in news.items():
            if rows.height and table == "news_revisions":  # a history, with no key to upsert on
                con.register("_revisions", rows.to_arrow())
                con.execute("INSERT INTO news_revisions SELECT * FROM _revisions")
                con.unregister("_revisions")
            elif rows.height:
                upsert(con, table, rows, NEWS_TABLES[table])
    return replay
