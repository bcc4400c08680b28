"""Parity on random decisions: a stream of enters and exits on three symbols, carried out once
by a replayed trading session against the simulated broker and once by the backtest engine,
under one random execution policy (sizing, slots, position cap, stop, daily-loss breaker and
its flatten, kill switch, time exit) and one cost model (commissions, slippage, a volume cap
that splits fills). The two ledgers must agree fill for fill, to the cent."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.costs import Commission, Costs, Slippage
from tapeflow.backtest.engine import simulate
from tapeflow.calendar.exchange import NEW_YORK
from tapeflow.live.clock import SimulatedClock
from tapeflow.live.session import SessionRules
from tapeflow.model import Timeframe
from tapeflow.risk.policy import ExecutionPolicy, Halt, Sizing
from tapeflow.strategy.history import History
from tapeflow.venues.simulator import SimBroker
from tests.session_kit import ny, scripted, session, store_day
from warehouse import Warehouse
from warehouse.reads import bars_between

pytestmark = pytest.mark.slow

SYMBOLS = ("AAA", "BBB", "CCC")
START = (11, 58)  # the replay's clock starts here: prices are flat before noon, so nothing stale is marked
MINUTES = [(h, m) for h in (12,) for m in range(1, 60)]  # decisions on the bar ends 12:01 .. 12:59 (time exit 12:55)


@st.composite
def days(draw) -> dict:
    prices = {s: draw(st.sampled_from([4.0, 10.0, 25.0])) for s in SYMBOLS}
    moves = {}
    for symbol in SYMBOLS:
        price = prices[symbol]
        for minute in draw(st.lists(st.integers(0, 59), max_size=12, unique=True)):
            price = round(price * draw(st.sampled_from([0.97, 0.99, 0.995, 1.005, 1.01, 1.03])), 2)
            moves[(symbol, 12, minute)] = price
    volume = {s: draw(st.sampled_from([1e6, 1e6, 2_000.0])) for s in SYMBOLS}  # thin: a 10% cap splits fills
    picks = draw(st.lists(st.tuples(st.sampled_from(MINUTES), st.sampled_from(SYMBOLS)), min_size=2, max_size=14,
                          unique=True))
    script = [(h, m, symbol, draw(st.sampled_from(["enter", "enter", "exit"]))) for (h, m), symbol in picks]
    policy = ExecutionPolicy(
        sizing=Sizing(fraction=draw(st.sampled_from([0.2, 0.5, 1.0])), max_positions=draw(st.integers(1, 3))),
        max_position_pct=draw(st.sampled_from([None, 0.25, 0.6])),
        stop_loss_pct=draw(st.sampled_from([None, 0.004, 0.02])),
        daily_loss_limit_pct=draw(st.sampled_from([None, 0.001, 0.005])),
        flatten_on_breaker=draw(st.booleans()),
    )
    costs = Costs(commission=Commission(per_share=0.005, minimum=1.0), slippage=Slippage(bps=draw(st.sampled_from([0, 5]))),
                  participation=draw(st.sampled_from([None, 0.1])))
    kill = draw(st.sampled_from([None, *MINUTES[::7]]))
    qty = draw(st.sampled_from([0, 0, 300]))  # 0: the policy sizes every entry
    spread = draw(st.sampled_from([0.0, 0.003, 0.006]))  # a range: stops fill at their price, not only on gaps
    return {"prices": prices, "moves": moves, "volume": volume, "script": script, "policy": policy, "costs": costs,
            "kill": kill, "qty": qty, "spread": spread}


def replay(case: dict, warehouse: Warehouse) -> tuple[list[tuple], float]:
    """The day through a trading session on the simulated broker: its fills."""
    clock = SimulatedClock(ny(*START))
    sim = SimBroker(warehouse, cash=100_000.0, costs=case["costs"], now=clock)
    kill_at = ny(*case["kill"]) if case["kill"] else None

    def engaged() -> str | None:
        return "operator halt" if kill_at and clock.now() >= kill_at else None

    trading = session(scripted(case["script"], qty=case["qty"]), sim, warehouse, clock,
                      rules=SessionRules(cycle_s=60, policy=case["policy"]), market=sim, external_kill=engaged)
    report = trading.run()
    assert report.status in ("finished", "killed") and report.reconciled, report
    equity = sim.account().equity
    rows = [(f.symbol, f.side.value, f.ts, f.qty, round(f.price, 6), f.client_order_id, f.commission)
            for f in sim.fills(ny(0))]
    return _by_order(rows), equity


def backtest(case: dict, warehouse: Warehouse) -> tuple[list[tuple], float]:
    """The same decisions and rules through the backtest engine."""
    with warehouse.read() as con:
        bars = bars_between(con, "1m", ny(0) - timedelta(days=3), ny(23), None)
    strategy = scripted(case["script"], qty=case["qty"])
    halts = [Halt(ny(*case["kill"]), None, "operator halt")] if case["kill"] else []
    config = BacktestConfig(cash=100_000.0, costs=case["costs"], policy=case["policy"])
    result = simulate(bars, strategy.signals(History(bars)), config, timeframe=Timeframe.MINUTE, halts=halts)
    fills = result.fills.with_columns((pl.col("commission") + pl.col("fees")).alias("commission"))
    rows = [(f["symbol"], f["side"], f["ts"], f["qty"], round(f["price"], 6), f["order_id"], f["commission"])
            for f in fills.iter_rows(named=True)]
    return _by_order(rows), result.final_equity


def _by_order(rows: list[tuple]) -> list[tuple]:
    """Fills grouped by order, in time: (symbol, side, [(ts, qty, price)], commission to the cent).
    Order ids differ by design (a session's come from its decisions); the orders must not."""
    orders: dict[str, list[tuple]] = {}
    for symbol, side, ts, qty, price, order_id, commission in rows:
        orders.setdefault(order_id, []).append((symbol, side, ts.astimezone(NEW_YORK), qty, price, commission))
    return sorted((f[0][0], f[0][1], tuple((t, q, p) for _, _, t, q, p, _ in f), round(sum(c for *_, c in f), 2))
                  for f in orders.values())


@settings(max_examples=10, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(days())
def test_a_replayed_session_and_the_backtest_keep_the_same_ledger(case):
    with tempfile.TemporaryDirectory() as home:
        warehouse = Warehouse(Path(home) / "tapeflow.duckdb")
        store_day(warehouse, case["prices"], case["moves"], volume=case["volume"], spread=case["spread"])
        paper, paper_equity = replay(case, warehouse)
        expected, backtest_equity = backtest(case, warehouse)
    assert paper == expected
    assert paper_equity == pytest.approx(backtest_equity, abs=0.005)  # to the cent
