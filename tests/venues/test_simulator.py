"""The simulated broker beyond the contract: the backtest's fill models bar for bar, DAY
expiry, brackets, partial fills, restarts; idempotent placing and reconciliation on it; the
`tapeflow broker` commands."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

import polars as pl
import pytest
from typer.testing import CliRunner

from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.costs import Commission, Costs, Slippage
from tapeflow.backtest.engine import simulate
from tapeflow.brokers.base import (
    Disconnected,
    DuplicateOrderId,
    InvalidOrder,
    NotShortable,
    Replacement,
)
from tapeflow.brokers.execution import Execution
from tapeflow.brokers.ids import client_order_id
from tapeflow.brokers.ledger import Ledger
from tapeflow.brokers.reconcile import reconcile
from tapeflow.brokers.submit import PlacePolicy, place
from tapeflow.calendar.exchange import NEW_YORK
from tapeflow.cli.main import app
from tapeflow.model import (
    Bar,
    Mode,
    Order,
    OrderStatus,
    OrderType,
    Side,
    Timeframe,
    TimeInForce,
)
from tapeflow.strategy.base import signal_frame
from tapeflow.venues.simulator import SimBroker
from tests.fakes.sim_venue import FaultyLink
from warehouse import open_warehouse

UTC = UTC
DAY1, DAY2 = date(2024, 3, 4), date(2024, 3, 5)
COSTS = Costs(commission=Commission(per_share=0.005, minimum=1.0), slippage=Slippage(bps=10))


def ny(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), NEW_YORK).astimezone(UTC)


class SteppedClock:
    """A clock the test moves: the simulator's `now`."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def bar(symbol: str, start: datetime, o: float, h: float, low: float, c: float, v: float = 1e6) -> Bar:
    return Bar(symbol=symbol, timeframe=Timeframe.MINUTE, ts=start, end=start + timedelta(minutes=1), open=o, high=h,
               low=low, close=c, volume=v, source="test")


def order(decision: str, side=Side.BUY, qty=100.0, kind=OrderType.MARKET, tif=TimeInForce.DAY, at=None,
          symbol="ACME", **kw) -> Order:
    return Order(client_order_id=client_order_id("simtest", decision, symbol, kw.pop("leg", "entry")), mode=Mode.PAPER,
                 broker="sim", strategy="simtest", symbol=symbol, side=side, qty=qty, order_type=kind, time_in_force=tif,
                 created_at=at or datetime.now(UTC), **kw)


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock(ny(DAY1, 9, 29))


@pytest.fixture
def sim(warehouse, clock) -> SimBroker:
    broker = SimBroker(warehouse, cash=100_000.0, costs=COSTS, now=clock)
    broker.on_bar(bar("ACME", ny(DAY1, 9, 28), 10, 10, 10, 10))  # a last price before the open
    return broker


def test_fills_equal_the_backtest_engines_on_the_same_bars(sim, clock):
    """Paper fills come from the backtest's models: same bars, same decisions, same fills."""
    path = [(10.00, 10.20, 9.90, 10.10), (10.12, 10.30, 10.05, 10.25), (10.30, 10.40, 10.00, 10.05),
            (10.02, 10.10, 9.70, 9.80), (9.75, 9.90, 9.60, 9.85)]
    bars = [bar("ACME", ny(DAY1, 9, 30 + k), *ohlc) for k, ohlc in enumerate(path)]
    decisions = [(ny(DAY1, 9, 31), "enter", Side.BUY), (ny(DAY1, 9, 33), "exit", Side.SELL)]
    for b in bars:
        for at, action, side in decisions:
            if at == b.ts:
                clock.at = at
                sim.submit(order(action, side=side, at=at, leg="entry" if action == "enter" else "exit"))
        clock.at = b.end
        sim.on_bar(b)
    paper = [(f.side.value, f.ts, f.qty, round(f.price, 10), round(f.commission, 10)) for f in sim.fills(ny(DAY1, 0))]

    frame = pl.DataFrame([{"symbol": b.symbol, "ts": b.ts, "end_ts": b.end, "open": b.open, "high": b.high, "low": b.low,
                           "close": b.close, "volume": b.volume} for b in bars])
    signals = signal_frame([{"symbol": "ACME", "at": at, "action": action, "reason": "test", "qty": 100.0}
                            for at, action, _ in decisions])
    engine = simulate(frame, signals, BacktestConfig(costs=COSTS, buying_power_multiple=None)).fills
    backtest = [(r["side"], r["ts"], r["qty"], round(r["price"], 10), round(r["commission"], 10))
                for r in engine.iter_rows(named=True)]
    assert paper == backtest
    assert paper[0][3] == pytest.approx(10.12 * 1.001)  # next bar's open plus 10 bp


def test_a_day_order_expires_with_its_session_and_gtc_lives_on(sim, clock):
    clock.at = ny(DAY1, 15, 58)
    day = sim.submit(order("day-limit", kind=OrderType.LIMIT, limit_price=9.0))
    gtc = sim.submit(order("gtc-limit", kind=OrderType.LIMIT, tif=TimeInForce.GTC, limit_price=9.0))
    sim.on_bar(bar("ACME", ny(DAY1, 15, 59), 10, 10, 10, 10))
    assert sim.order(day.client_order_id).status is OrderStatus.NEW
    sim.on_bar(bar("ACME", ny(DAY2, 9, 30), 10, 10, 10, 10))
    assert sim.order(day.client_order_id).status is OrderStatus.EXPIRED
    assert sim.order(gtc.client_order_id).status is OrderStatus.NEW
    assert [u.event.value for u in sim.updates() if u.order.client_order_id == day.client_order_id] == ["new", "expired"]


def test_a_bracket_places_its_legs_and_one_cancels_the_other(sim, clock):
    entry = sim.submit(order("bracket", take_profit_price=11.0, stop_loss_price=9.5))
    sim.on_bar(bar("ACME", ny(DAY1, 9, 30), 10, 10.1, 9.9, 10))
    legs = {o.order_type: o for o in sim.open_orders()}
    assert sim.order(entry.client_order_id).status is OrderStatus.FILLED
    assert set(legs) == {OrderType.LIMIT, OrderType.STOP} and all(o.qty == 100 for o in legs.values())
    sim.on_bar(bar("ACME", ny(DAY1, 9, 31), 10.5, 11.2, 10.4, 11.1))  # reaches the take-profit
    assert sim.order(legs[OrderType.LIMIT].client_order_id).status is OrderStatus.FILLED
    assert sim.order(legs[OrderType.STOP].client_order_id).status is OrderStatus.CANCELED
    assert sim.positions() == []


def test_a_participation_cap_fills_in_parts_with_one_commission(warehouse, clock):
    sim = SimBroker(warehouse, costs=Costs(commission=Commission(per_order=1.0), participation=0.1), now=clock)
    sim.on_bar(bar("ACME", ny(DAY1, 9, 28), 10, 10, 10, 10))
    placed = sim.submit(order("capped", qty=250))
    for k, volume in enumerate((1000, 1000, 1000)):
        sim.on_bar(bar("ACME", ny(DAY1, 9, 30 + k), 10, 10, 10, 10, v=volume))
    fills = sim.fills(ny(DAY1, 0))
    assert [f.qty for f in fills] == [100, 100, 50]
    assert sum(f.commission for f in fills) == pytest.approx(1.0)  # per order, not per fill
    assert [u.event.value for u in sim.updates()] == ["new", "partial_fill", "partial_fill", "fill"]
    assert sim.order(placed.client_order_id).status is OrderStatus.FILLED


def test_a_restart_resumes_the_book_exactly(sim, warehouse, clock):
    sim.submit(order("buy"))
    sim.on_bar(bar("ACME", ny(DAY1, 9, 30), 10, 10, 10, 10))
    resting = sim.submit(order("resting", kind=OrderType.LIMIT, limit_price=9.0, tif=TimeInForce.GTC))
    before = (sim.account(), sim.positions(), sim.open_orders())
    again = SimBroker(warehouse, cash=5.0, costs=COSTS, now=clock)  # the starting cash of a new book is ignored
    assert (again.account(), again.positions(), again.open_orders()) == before
    assert again.open_orders()[0].client_order_id == resting.client_order_id


def test_typed_refusals(sim):
    with pytest.raises(InvalidOrder):
        sim.submit(order("no-market", symbol="NOPE"))
    with pytest.raises(NotShortable):
        sim.submit(order("short", side=Side.SELL, leg="exit"))
    sim.submit(order("once"))
    with pytest.raises(DuplicateOrderId):
        sim.submit(order("once"))
    with pytest.raises(InvalidOrder):
        sim.replace("unknown", Replacement(qty=5))


def test_replace_changes_a_working_order(sim):
    placed = sim.submit(order("replace-me", kind=OrderType.LIMIT, limit_price=9.0))
    changed = sim.replace(placed.client_order_id, Replacement(qty=50, limit_price=9.5))
    assert (changed.qty, changed.limit_price, changed.status) == (50, 9.5, OrderStatus.NEW)
    assert sim.account().buying_power == pytest.approx(100_000 - 50 * 9.5)


class Unreachable(FaultyLink):
    """Every lookup fails: `place` must give up rather than send again blind."""

    def order(self, client_order_id):
        raise Disconnected("no route to the broker")


def test_place_never_resends_when_it_cannot_learn_whether_the_order_arrived(sim):
    link = Unreachable(sim)
    link.lose_next_answer = True
    naps = []
    with pytest.raises(Disconnected, match="not sending again"):
        place(link, order("blind"), PlacePolicy(sleep=naps.append))
    assert len(sim.orders(ny(DAY1, 0))) == 1 and len(naps) == PlacePolicy().lookups


def test_reconcile_closes_an_order_recorded_but_never_sent_and_reports_a_cash_difference(sim, warehouse):
    ledger = Ledger(warehouse, "sim", Mode.PAPER)
    ledger.record_intent(order("crashed-before-send"))  # the process died between recording and sending
    first = reconcile(ledger, sim, since=ny(DAY1, 0))
    assert first.clean and ledger.order_status(order("crashed-before-send").client_order_id) is OrderStatus.CANCELED
    with warehouse.write() as con:  # money leaves the account with no fill to explain it (a fee, a transfer)
        con.execute("UPDATE sim_account SET cash = cash - 250")
    second = reconcile(ledger, sim, since=ny(DAY1, 0))
    [cash] = [d for d in second.differences if d.kind == "cash"]
    assert "broker cash 99,750.00, fills since the last reconciliation explain 100,000.00" in cash.detail
    assert second.clean and ledger.entries_blocked() is None  # reported; only positions block entries


def test_broker_cli_on_the_sim(tapeflow_home):
    runner = CliRunner()
    status = runner.invoke(app, ["broker", "status"])
    assert status.exit_code == 0, status.output
    assert "sim" in status.output and "100,000" in status.output and "entries: allowed" in status.output
    assert runner.invoke(app, ["broker", "orders"]).exit_code == 0
    refused = runner.invoke(app, ["broker", "flatten"])
    assert refused.exit_code == 2 and "--yes" in refused.output
    assert runner.invoke(app, ["broker", "reconcile"]).exit_code == 0


def test_broker_status_changes_nothing_and_reconcile_needs_no_window(settings):
    """A sim paper account traded in 2024, looked at years later: `broker status` neither rolls
    the day nor expires the DAY order; `broker reconcile` finds the fill whatever today is,
    and counts its cash once."""
    warehouse = open_warehouse(settings)
    clock = SteppedClock(ny(DAY1, 10))
    sim = SimBroker(warehouse, cash=100_000.0, now=clock)
    sim.on_bar(bar("ACME", ny(DAY1, 9, 59), 10.0, 10.0, 10.0, 10.0))
    execution = Execution(sim, Ledger(warehouse, "sim", Mode.PAPER))
    execution.submit(order("resting", kind=OrderType.LIMIT, limit_price=5.0))
    execution.submit(order("filled"))
    sim.on_bar(bar("ACME", ny(DAY1, 10), 10.0, 10.0, 10.0, 10.0))  # the market order fills; the ledger is not told

    def book() -> list:
        with warehouse.write() as con:
            return [con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
                    for t in ("sim_account", "sim_orders", "reconciliations", "account_snapshots", "orders")]

    before = book()
    runner = CliRunner()
    status = runner.invoke(app, ["broker", "status"])
    assert status.exit_code == 0 and re.search(r"open_orders +│ 1 ", status.output), status.output
    assert book() == before

    first = runner.invoke(app, ["broker", "reconcile"])
    assert first.exit_code == 0 and "adopted 1 fill(s); clean" in first.output, first.output
    again = runner.invoke(app, ["broker", "reconcile"])
    assert again.exit_code == 0 and again.output.startswith("adopted 0 fill(s); clean"), again.output
    assert "cash" not in again.output  # the adopted fill's cash was in the first reading already
    assert runner.invoke(app, ["broker", "reconcile", "--days", "0"]).exit_code == 2


def test_live_needs_its_second_switch(tapeflow_home, monkeypatch):
    monkeypatch.setenv("TAPEFLOW_MODE", "live")
    refused = CliRunner().invoke(app, ["broker", "status"])
    assert refused.exit_code == 2 and "LIVE_CONFIRMED" in refused.output
    monkeypatch.setenv("TAPEFLOW_LIVE_CONFIRMED", "true")
    still = CliRunner().invoke(app, ["broker", "status"])  # the simulator is paper only
    assert still.exit_code == 2 and "paper" in still.output


def test_execution_records_a_decision_before_sending_it(sim, warehouse):
    ledger = Ledger(warehouse, "sim", Mode.PAPER)
    seen = []

    class Watching(FaultyLink):
        def submit(self, o):
            seen.append(ledger.order_status(o.client_order_id))
            return super().submit(o)

    Execution(Watching(sim), ledger).submit(order("recorded-first"))
    assert seen == [OrderStatus.PENDING]
    assert ledger.order_status(order("recorded-first").client_order_id) is OrderStatus.NEW


def test_a_bracket_leg_filled_in_part_shrinks_its_sibling(warehouse, clock):
    sim = SimBroker(warehouse, costs=Costs(participation=0.1), now=clock)
    sim.on_bar(bar("ACME", ny(DAY1, 9, 28), 10, 10, 10, 10))
    sim.submit(order("bracket", take_profit_price=11.0, stop_loss_price=9.5))
    sim.on_bar(bar("ACME", ny(DAY1, 9, 30), 10, 10.1, 9.9, 10, v=1e6))
    sim.on_bar(bar("ACME", ny(DAY1, 9, 31), 11, 11.2, 11, 11.1, v=400))  # the take-profit sells 40 of 100
    legs = {o.order_type: o for o in sim.open_orders()}
    assert (legs[OrderType.LIMIT].filled_qty, legs[OrderType.STOP].qty) == (40, 60)  # never more than is held


def test_holdings_are_marked_at_the_newest_close_a_late_bar_cannot_take_back(sim, clock):
    """Buys at two prices are held at their average cost and marked at each symbol's newest
    close, bar by bar or in a batch; an older bar arriving late changes no mark."""
    for decision, minute, price in (("first", 30, 10.0), ("second", 31, 12.0)):
        clock.at = ny(DAY1, 9, minute)
        sim.submit(order(decision, qty=100.0))
        sim.on_bar(bar("ACME", ny(DAY1, 9, minute), price, price, price, price))
    sim.on_bars([bar("ACME", ny(DAY1, 9, 32), 13, 13, 13, 13), bar("BETA", ny(DAY1, 9, 32), 5, 5, 5, 5)])
    sim.on_bar(bar("ACME", ny(DAY1, 9, 20), 99, 99, 99, 99))  # late: ended before the newest mark
    sim.on_bars([bar("BETA", ny(DAY1, 9, 15), 1, 1, 1, 1)])
    account, positions = sim.book()
    (held,) = positions
    paid = sum(f.qty * f.price + f.commission for f in sim.fills(ny(DAY1, 0)))
    assert held.symbol == "ACME" and held.qty == 200 and held.avg_price == pytest.approx(11.0 * 1.001)
    assert account.cash == pytest.approx(100_000.0 - paid)
    assert account.equity == pytest.approx(account.cash + 200 * 13.0)
    assert (account, positions) == (sim.account(), sim.positions())
