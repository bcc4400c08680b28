"""Full sessions on a simulated clock against each broker: the simulator, and alpaca-py and
ib_async against the Alpaca and IB fakes (whose prices follow the stored bars). The same
day gives the same trades on all three: entries at the open, a stop, the time exit; then
the breaker, the kill switch, stale data and a broker outage with recovery."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from tapeflow.backtest.costs import Costs
from tapeflow.live.clock import SimulatedClock
from tapeflow.live.session import SessionRules
from tapeflow.model import Bar, Outcome
from tapeflow.risk.policy import ExecutionPolicy, Sizing
from tapeflow.risk.state import set_kill_switch
from tapeflow.venues.simulator import SimBroker
from tests.broker_venues import open_venue
from tests.session_kit import Flaky, ny, scripted, session, store_day

pytestmark = pytest.mark.slow

VENUES = ["sim", "alpaca", "ibkr"]
CYCLE_S = 120  # every other minute: half the broker round trips of a 60 s session, the same day


class Market:
    """A broker and how the stored bars reach its market: the simulator trades each bar; a
    fake's price walks through the bar's open, low, high and close."""

    def __init__(self, name: str, tmp_path, warehouse, clock: SimulatedClock) -> None:
        self.name = name
        self._venue = None
        if name == "sim":
            self.broker = SimBroker(warehouse, cash=100_000.0, costs=Costs(), now=clock)
        else:
            self._context = open_venue(name, tmp_path)
            self._venue = self._context.__enter__()
            self.broker = self._venue.broker

    def on_bar(self, bar: Bar) -> None:
        self.before_bar(bar)
        if self._venue is None:
            self.broker.on_bar(bar)
            return
        for price in (bar.open, bar.low, bar.high, bar.close):
            self._venue.set_price(bar.symbol, price)

    def before_bar(self, bar: Bar) -> None:
        """What else happens as `bar` reaches the market (a test's script)."""

    def on_open(self, bar: Bar) -> None:
        if self._venue is None:
            self.broker.on_open(bar)

    def marked_through(self) -> dict:
        return self.broker.marked_through() if self._venue is None else {}

    def drop(self) -> None:
        if self._venue is not None:
            self._venue.drop_connection()

    def close(self) -> None:
        if self._venue is not None:
            self._context.__exit__(None, None, None)


@pytest.fixture(params=VENUES)
def market(request, tmp_path, warehouse) -> Iterator[tuple[Market, SimulatedClock]]:
    clock = SimulatedClock(ny(9, 25))
    m = Market(request.param, tmp_path, warehouse, clock)
    yield m, clock
    m.close()


def trades(broker) -> list[tuple]:
    return sorted((f.symbol, f.side.value, f.qty) for f in broker.fills(ny(0)))


def test_entries_at_the_open_a_stop_and_the_time_exit(market, warehouse):
    m, clock = market
    store_day(warehouse, {"ACME": 10.0, "AAPL": 20.0}, moves={("ACME", 10, 30): 9.0, ("AAPL", 12, 0): 21.0})
    strategy = scripted([(9, 31, "ACME", "enter"), (9, 31, "AAPL", "enter")], qty=100)
    rules = SessionRules(cycle_s=CYCLE_S, policy=ExecutionPolicy(stop_loss_pct=0.05, daily_loss_limit_pct=None, max_position_pct=0.5))
    report = session(strategy, m.broker, warehouse, clock, rules=rules, market=m).run()

    assert trades(m.broker) == [("AAPL", "buy", 100), ("AAPL", "sell", 100), ("ACME", "buy", 100), ("ACME", "sell", 100)]
    fills = {(f.symbol, f.side.value): f.price for f in m.broker.fills(ny(0))}
    assert fills[("ACME", "sell")] <= 9.5  # the stop: 5% under the entry, never better than the market
    assert fills[("AAPL", "sell")] == pytest.approx(21.0)  # the time exit at the day's last price
    assert report.reconciled and report.status == "finished"
    commissions = sum(f.commission for f in m.broker.fills(ny(0)))  # IB's fake charges $1 a fill
    assert report.realized_pnl == pytest.approx(100 * (fills[("ACME", "sell")] - 10.0) + 100.0 - commissions, abs=0.01)
    assert [p for p in m.broker.positions() if p.qty] == []
    with warehouse.write() as con:
        beats = con.execute("SELECT count(*) FROM heartbeats WHERE component = 'trade_session:scripted'").fetchone()[0]
        row = con.execute("SELECT status, reconciled FROM trading_sessions").fetchone()
    assert beats == report.cycles > 100 and row == ("finished", True)  # a heartbeat every cycle, 09:25 to 13:00


def test_breaker_kill_switch_stale_data_and_an_outage(market, warehouse):
    m, clock = market
    # ACME -10% at 10:00 trips the 2% breaker; bars stop for ten minutes at 11:00.
    store_day(warehouse, {"ACME": 10.0, "AAPL": 20.0}, moves={("ACME", 10, 0): 9.0}, gaps=[(11, 0, 11, 10)])
    strategy = scripted([(9, 31, "ACME", "enter"), (10, 30, "AAPL", "enter"), (11, 40, "AAPL", "enter")])
    alerts: list[str] = []
    broker = Flaky(m.broker, clock, ny(9, 40), ny(9, 46))  # unreachable for three cycles
    trading = session(strategy, broker, warehouse, clock, rules=SessionRules(
        cycle_s=CYCLE_S, policy=ExecutionPolicy(daily_loss_limit_pct=0.02, max_position_pct=0.5, sizing=Sizing(fraction=0.5))),
        market=m, alert=lambda kind, severity, message: alerts.append(kind))

    def events(bar: Bar) -> None:
        if bar.ts == ny(9, 40):
            m.drop()  # the real connection goes too: the adapter must reconnect afterwards
        if bar.ts == ny(11, 30):  # `tapeflow kill-switch on` while the lock already holds
            set_kill_switch(warehouse, "scripted", True, "operator", by="cli")

    m.before_bar = events
    trading.run()
    assert alerts.count("broker_disconnected") >= 3 and alerts.count("breaker_tripped") == 1
    assert alerts.count("stale_data") == 1 and alerts.count("kill_switch") == 1
    with warehouse.write() as con:
        outcomes = dict(con.execute("SELECT strftime(decided_at AT TIME ZONE 'America/New_York', '%H:%M'), outcome "
                                    "FROM session_decisions WHERE action = 'enter'").fetchall())
        locks = con.execute("SELECT kind FROM risk_locks WHERE session_date = ?", [date(2023, 11, 24)]).fetchall()
    assert outcomes["09:31"] == "sent"
    assert outcomes["10:30"].startswith(Outcome.DAILY_LOSS)
    assert outcomes["11:40"].startswith(f"{Outcome.ENTRIES_STOPPED.value} (kill switch")
    assert locks == [("daily_loss",)]
    assert trading.report.reconciled  # after the outage, ledger and broker agree
