"""Parity between a replayed run of trading days and the backtest of those days: the bundled
data stored in a warehouse, a replay through `replay_session`, the same strategy and rules
through `run_backtest`, and both ledgers as orders that can be compared to the cent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import polars as pl
import pytest

from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.costs import cost_preset
from tapeflow.backtest.loading import history_between
from tapeflow.backtest.run import run_backtest
from tapeflow.calendar.exchange import NEW_YORK, ny_day_bounds
from tapeflow.calendar.windows import pre_market_times
from tapeflow.config import PROJECT_DATA, Settings
from tapeflow.ingest.bars import check_bars
from tapeflow.ingest.store import BARS, WATCHLIST, store_batch
from tapeflow.ingest.watchlist import check_watchlist
from tapeflow.live.launch import replay_session
from tapeflow.live.paper_gap import measure_gap
from tapeflow.live.session import SessionReport, SessionRules
from tapeflow.model import Timeframe
from tapeflow.risk.policy import ExecutionPolicy, Halt
from tapeflow.sources.base import Window
from tapeflow.sources.replay import ReplaySource
from tapeflow.sources.scanner import ScannerSource
from tapeflow.strategy.registry import get_strategy
from tapeflow.strategy.warmup import history_from, session_warmup
from warehouse import Warehouse


def store_bundled_bars(warehouse: Warehouse, timeframe: Timeframe, symbols: list[str] | None, first: date,
                       last: date) -> None:
    """The bundled bars of `first`..`last`, checked and stored as the ingest flow stores them."""
    checked = check_bars(ReplaySource(PROJECT_DATA).bars(symbols, timeframe, Window.days(first, last)))
    store_batch(warehouse, BARS, checked.good, checked.rejected, run_id=f"bundled-{timeframe}", source="replay",
                feed=f"bars:{timeframe}", params={}, started_at=datetime.now(UTC))


def store_scanner_watchlist(warehouse: Warehouse, first: date, last: date) -> None:
    """The scanner's pre-market snapshots of `first`..`last` over the stored daily bars."""
    moments = [(at, "pre_market") for at in pre_market_times(first, last)]
    checked = check_watchlist(ScannerSource.from_warehouse(warehouse).snapshots(moments, 20))
    store_batch(warehouse, WATCHLIST, checked.good, checked.rejected, run_id="scanner", source="scanner",
                feed="watchlist", params={}, started_at=datetime.now(UTC))


@dataclass(frozen=True)
class Ledger:
    """A run's orders, each (symbol, side, ((New York time, qty, price), ...), commission to the
    cent), sorted; and its equity at the end."""

    orders: list[tuple]
    equity: float


def _orders(rows: list[tuple]) -> list[tuple]:
    grouped: dict[str, list[tuple]] = {}
    for order_id, symbol, side, ts, qty, price, commission in rows:
        grouped.setdefault(order_id, []).append((symbol, side, ts.astimezone(NEW_YORK), qty, round(price, 6), commission))
    return sorted((f[0][0], f[0][1], tuple((t, q, p) for _, _, t, q, p, _ in f), round(sum(c for *_, c in f), 2))
                  for f in grouped.values())


@dataclass(frozen=True)
class Replayed:
    reports: list[SessionReport]
    warehouse: Warehouse
    ledger: Ledger


def replay(settings: Settings, main: Warehouse, name: str, params: dict, first: date, last: date,
           policy: ExecutionPolicy, *, cycle_s: float = 60.0, kill_at: datetime | None = None) -> Replayed:
    """`first`..`last` replayed one session a day on the simulated broker; the kill switch
    engaged from `kill_at` on."""
    launched = replay_session(settings, main, name, first, params, rules=SessionRules(cycle_s=cycle_s, policy=policy),
                              through=last)
    for session in launched.sessions if kill_at is not None else ():
        session.external_kill = _switch(session.clock, kill_at)
    reports = launched.run()
    broker = launched.session.broker
    with launched.warehouse.read() as con:
        rows = con.execute("SELECT client_order_id, symbol, side, ts, qty, price, commission FROM fills "
                           "WHERE mode = 'paper' ORDER BY ts, fill_id").fetchall()
    return Replayed(reports, launched.warehouse, Ledger(_orders(rows), broker.account().equity))


def _switch(clock, at: datetime):
    def engaged() -> str | None:
        return "operator halt" if clock.now() >= at else None

    return engaged


def backtest(settings: Settings, main: Warehouse, name: str, params: dict, first: date, last: date,
             policy: ExecutionPolicy, *, symbols: list[str] | None = None, kill_at: datetime | None = None) -> Ledger:
    """The same days through the backtest engine, from the history the replay was seeded with."""
    strategy = get_strategy(name)(**params)
    with main.read() as con:
        start, _ = history_from(con, strategy.timeframe, session_warmup(strategy.timeframe, strategy.warmup_bars()), first)
    history, _ = history_between(settings, strategy.timeframe, symbols, start, ny_day_bounds(last)[1],
                                 watchlist=strategy.uses_watchlist, news=strategy.uses_news)
    config = BacktestConfig(cash=settings.sim_cash, costs=cost_preset(settings.sim_costs), policy=policy)
    halts = [Halt(kill_at, None, "operator halt")] if kill_at is not None else []
    run = run_backtest(strategy, history, config, start=ny_day_bounds(first)[0], halts=halts)
    fills = run.result.fills.with_columns((pl.col("commission") + pl.col("fees")).alias("commission"))
    rows = [(f["order_id"], f["symbol"], f["side"], f["ts"], f["qty"], f["price"], f["commission"])
            for f in fills.iter_rows(named=True)]
    return Ledger(_orders(rows), run.result.final_equity)


def gaps(replayed: Replayed, settings: Settings) -> list[float]:
    """paper-vs-backtest's gap for each replayed session."""
    return [measure_gap(replayed.warehouse, r.session_id, cost_preset(settings.sim_costs)).gap for r in replayed.reports]


def assert_parity(replayed, expected) -> None:
    """Replayed sessions ended, reconciled, and match the backtest order for order, equity to the cent."""
    assert {r.status for r in replayed.reports} <= {"finished", "killed"}
    assert all(r.reconciled for r in replayed.reports)
    assert replayed.ledger.orders == expected.orders
    assert replayed.ledger.equity == pytest.approx(expected.equity, abs=0.005)  # to the cent
