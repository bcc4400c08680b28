"""A cycle's warehouse writes: its new decisions all recorded before the first order goes out,
its outcomes written with its heartbeat, and what it decided seen by a restarted session,
which keeps it in memory from then on."""

from __future__ import annotations

import pytest

from tapeflow.backtest.costs import Costs, cost_preset
from tapeflow.calendar.exchange import get_calendar
from tapeflow.live import owner as owners
from tapeflow.live.clock import SimulatedClock
from tapeflow.live.session import SessionRules
from tapeflow.model import Bar, Mode, Order, OrderType, Side, Timeframe, TimeInForce
from tapeflow.risk.policy import ExecutionPolicy
from tapeflow.venues.simulator import SimBroker
from tests.fakes.sim_venue import FaultyLink
from tests.session_kit import DAY, ny, scripted, session, store_day
from warehouse.connection import Warehouse

RULES = SessionRules(cycle_s=60, policy=ExecutionPolicy(daily_loss_limit_pct=None, max_position_pct=0.5))


class Watching(FaultyLink):
    """The simulator, noting what `session_decisions` holds whenever an order reaches it."""

    def __init__(self, inner: SimBroker) -> None:
        super().__init__(inner)
        self.seen: list[list[tuple]] = []

    def submit(self, order):
        with self.inner.warehouse.write() as con:
            self.seen.append(con.execute("SELECT symbol, outcome FROM session_decisions ORDER BY symbol").fetchall())
        return super().submit(order)


@pytest.mark.slow
def test_a_cycles_decisions_precede_its_orders_and_a_restart_does_not_take_them_again(warehouse):
    store_day(warehouse, {"ACME": 10.0, "BETA": 20.0})
    clock = SimulatedClock(ny(9, 30))
    sim = SimBroker(warehouse, cash=100_000.0, costs=Costs(), now=clock)
    broker = Watching(sim)
    strategy = scripted([(9, 31, "ACME", "enter"), (9, 31, "BETA", "enter")], qty=100)
    day = get_calendar().session(DAY)
    first = session(strategy, broker, warehouse, clock, rules=RULES, market=sim)
    with warehouse.held():
        first.prepare(day)
        first.cycle(day)  # 09:30: the simulator gets its first prices
        clock.sleep(60)
        first.cycle(day)  # 09:31: both decisions
    owners.stopped(first.id)  # the process that ran it is gone
    # Both decisions were in the warehouse before the first order reached the broker.
    assert broker.seen[0] == [("ACME", "decided"), ("BETA", "decided")]
    with warehouse.write() as con:
        assert con.execute("SELECT symbol, outcome FROM session_decisions ORDER BY symbol").fetchall() == [
            ("ACME", "sent"), ("BETA", "sent")]
        assert con.execute("SELECT ts FROM heartbeats WHERE component = 'trade_session:scripted' "
                           "ORDER BY ts").fetchall() == [
            (ny(9, 30),), (ny(9, 31),)]

    clock.sleep(60)
    again = session(strategy, broker, warehouse, clock, rules=RULES, market=sim)
    with warehouse.held():
        again.prepare(day)
        again.cycle(day)  # its history still holds the 09:31 decisions
    owners.stopped(again.id)
    assert again.report.decisions == 0 and len(broker.seen) == 2
    assert sorted(o.symbol for o in sim.orders(ny(0))) == ["ACME", "BETA"]


@pytest.mark.slow
def test_the_simulator_trades_a_batch_of_bars_as_it_trades_them_one_by_one(tmp_path):
    """`on_bars` (one transaction, quiet symbols priced together) leaves the book `on_bar` leaves,
    with two names trading and their slippage priced by liquidity."""
    books = []
    for way in ("one by one", "batch"):
        warehouse = Warehouse(tmp_path / f"{way}.duckdb")
        clock = SimulatedClock(ny(9, 30))
        sim = SimBroker(warehouse, cash=100_000.0, costs=cost_preset("retail-default"), now=clock)
        names = ["S0", "S1", "S2", "S3"]  # two with working orders, two quiet
        bars = [Bar(symbol=s, timeframe=Timeframe.MINUTE, ts=ny(9, 30 + m), end=ny(9, 31 + m), open=10.0 + m,
                    high=10.5 + m, low=9.5 + m, close=10.2 + m, volume=1e6, source="test")
                for m in range(3) for s in names]
        for bar, name in zip(bars, names[:2], strict=False):  # prices for the first two names, then a buy of each
            sim.on_bar(bar)
            sim.submit(Order(client_order_id=f"buy-{name}", mode=Mode.PAPER, broker="sim", strategy="t", symbol=name,
                             side=Side.BUY, qty=10, order_type=OrderType.MARKET, time_in_force=TimeInForce.DAY,
                             created_at=ny(9, 31)))
        rest = bars[len(names):]
        if way == "batch":
            sim.on_bars(rest)
        else:
            for bar in rest:
                sim.on_bar(bar)
        account = sim.account()
        books.append((account.cash, account.equity, account.last_equity, sorted(sim.marked_through().items()),
                      sorted((f.symbol, f.qty, f.price, f.commission) for f in sim.fills(ny(0)))))
    assert books[0] == books[1]
    assert [f[0] for f in books[0][4]] == ["S0", "S1"]  # both working orders filled
