"""Putting a session together: the configured broker on the wall clock for paper or live,
or the simulated broker on a simulated clock for a replay of a stored day.

A replay runs in a warehouse file of its own (seeded with the bars, watchlist snapshots and
scored headlines of its window from the main warehouse), so a simulated day never touches the paper
account's book, its ledger or the count of paper sessions that promotion relies on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from tapeflow.backtest.costs import cost_preset
from tapeflow.brokers.execution import Execution
from tapeflow.brokers.ledger import Ledger
from tapeflow.calendar.exchange import NEW_YORK, get_calendar, ny_day, ny_day_bounds
from tapeflow.config import Settings
from tapeflow.live.clock import SimulatedClock, WallClock
from tapeflow.live.feed import WarehouseFeed
from tapeflow.live.promotion import promoted_params, require_promotion
from tapeflow.live.session import AlertHook, SessionRules, TradingSession
from tapeflow.model import Mode
from tapeflow.news.features import SCORING_LATENCY, NewsReading
from tapeflow.news.model_registry import current_model, day_model
from tapeflow.news.tickers import TAGGER
from tapeflow.ops.alert_book import AlertBook, book_from_settings
from tapeflow.ops.alerts import Alert, LogChannel
from tapeflow.strategy.base import Strategy
from tapeflow.strategy.registry import get_strategy
from tapeflow.venues.configured import open_broker
from tapeflow.venues.simulator import SimBroker
from warehouse.connection import Warehouse
from warehouse.upsert import upsert

START = time(9, 25)  # New York: a replay starts before the open, as the deployment does
LOOKBACK = timedelta(days=60)
NEWS_TABLES = {"news": ("source", "id"), "news_revisions": (),
               "news_tags": ("source", "id", "tagger", "news_hash"), "news_scores": ("source", "id", "model", "news_hash")}


@dataclass
class Launched:
    session: TradingSession
    warehouse: Warehouse  # where the session's rows are: the main one, or the replay's own


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
                 alert: AlertHook | None = None) -> Launched:
    """Today's session with the configured broker (paper unless live is confirmed and promoted);
    alerts go through the settings' channel and are recorded."""
    strategy = strategy_for(warehouse, name, params, settings.mode)
    today = ny_day(WallClock().now())
    alert = alert or book_alerts(book_from_settings(settings, warehouse), strategy.name, today)
    require_promotion(warehouse, strategy.name, strategy.p, settings.mode, settings)
    broker = open_broker(settings, warehouse)
    market = broker.on_bar if isinstance(broker, SimBroker) else None  # the simulator trades the stored bars
    execution = Execution(broker, Ledger(warehouse, broker.name, settings.mode))
    feed = WarehouseFeed(warehouse, strategy.timeframe,
                         news=news_reading(settings, warehouse, strategy, replay=False, day=today))
    session = TradingSession(strategy, execution, feed, WallClock(), warehouse, rules=rules, market=market,
                             external_kill=external_kill, alert=alert)
    return Launched(session, warehouse)


def replay_session(settings: Settings, main: Warehouse, name: str, day: date, params: dict | None = None, *,
                   rules: SessionRules = SessionRules(), alert: AlertHook | None = None) -> Launched:
    """A stored day replayed on a simulated clock against the simulated broker, in a fresh
    warehouse file of its own under TAPEFLOW_HOME/replays/; its alerts go to the log (it is
    a simulation) and are recorded there."""
    if not get_calendar().is_session(day):
        raise ValueError(f"{day} is not a trading day: nothing to replay")
    strategy = strategy_for(main, name, params, Mode.PAPER)
    path = Path(settings.home).resolve() / "replays" / f"{strategy.name}-{day.isoformat()}.duckdb"
    warehouse = seeded_warehouse(main, path, day, strategy)
    alert = alert or book_alerts(AlertBook(warehouse, LogChannel(), window=timedelta(0)), strategy.name, day)
    clock = SimulatedClock(datetime.combine(day, START, NEW_YORK))
    broker = SimBroker(warehouse, cash=settings.sim_cash, costs=cost_preset(settings.sim_costs), now=clock)
    execution = Execution(broker, Ledger(warehouse, broker.name, Mode.PAPER))
    feed = WarehouseFeed(warehouse, strategy.timeframe, news=news_reading(settings, main, strategy, replay=True, day=day))
    session = TradingSession(strategy, execution, feed, clock, warehouse, rules=rules, day=day, market=broker.on_bar,
                             alert=alert, hold_warehouse=True)
    return Launched(session, warehouse)


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


def seeded_warehouse(main: Warehouse, path: Path, day: date, strategy: Strategy) -> Warehouse:
    """A new warehouse at `path` holding the main one's bars (of the strategy's timeframe),
    watchlist snapshots and headlines with their tags and scores from LOOKBACK before `day`
    to its end."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)
    start, end = ny_day_bounds(day - LOOKBACK)[0], ny_day_bounds(day)[1]
    with main.read() as con:
        bars = con.sql("SELECT * FROM bars WHERE timeframe = $tf AND ts >= $start AND ts < $end",
                       params={"tf": strategy.timeframe.value, "start": start, "end": end}).pl()
        watchlist = con.sql("SELECT * FROM watchlist_snapshots WHERE as_of >= $start AND as_of < $end",
                            params={"start": start, "end": end}).pl()
        news = {table: con.sql(f"SELECT x.* FROM {table} x JOIN news n USING (source, id) "
                               "WHERE n.published_at >= $start AND n.published_at < $end",
                               params={"start": start, "end": end}).pl()
                for table in NEWS_TABLES}
    if bars.is_empty():
        raise ValueError(f"the warehouse has no {strategy.timeframe} bars around {day}: ingest them first")
    replay = Warehouse(path)
    with replay.write() as con:
        upsert(con, "bars", bars, ("symbol", "timeframe", "ts"))
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
