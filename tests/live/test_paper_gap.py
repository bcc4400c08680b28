"""Paper versus backtest: a paper day traded with the real simulated broker (its decisions and
session recorded as the trading session records them) is replayed through the backtest engine;
the same fill model gives no gap, a slippage difference and a missed fill are attributed to
their causes, to the cent. The flow runs once under Prefect, the CLI once."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pytest
from typer.testing import CliRunner

from tapeflow.backtest.costs import Commission, Costs, Slippage, cost_preset
from tapeflow.brokers.base import OrderRejected
from tapeflow.brokers.execution import Execution
from tapeflow.brokers.ledger import Ledger
from tapeflow.calendar.exchange import NEW_YORK
from tapeflow.cli.main import app
from tapeflow.live.identity import decision_order_id, params_hash, session_id
from tapeflow.live.paper_gap import CAUSES, GapError, measure_gap, store_gap
from tapeflow.live.promotion import resolve_params
from tapeflow.model import Bar, Mode, Order, OrderType, Side, Timeframe, TimeInForce
from tapeflow.venues.simulator import SimBroker

pytestmark = pytest.mark.slow

UTC = UTC
DAY = date(2024, 3, 4)  # a Monday, a full session
STRATEGY = "opening_range"  # a 1m strategy: the replay loads the day's minute bars
FLAT = cost_preset("flat-commission")  # $0.005 a share, $1 minimum, no slippage
runner = CliRunner()


def ny(hh: int, mm: int) -> datetime:
    return datetime.combine(DAY, time(hh, mm), NEW_YORK).astimezone(UTC)


# Minute bars from 09:29 (the last price the broker needs before the open) on: (open, high, low, close).
PATHS = {
    "ACME": [(10.0, 10.0, 10.0, 10.0), (10.00, 10.20, 9.90, 10.10), (10.12, 10.30, 10.05, 10.25),
             (10.30, 10.40, 10.00, 10.05), (10.02, 10.10, 9.70, 9.80), (9.75, 9.90, 9.60, 9.85)],
    "BETA": [(20.0, 20.0, 20.0, 20.0), (20.00, 20.10, 19.90, 20.05), (20.10, 20.50, 20.00, 20.40),
             (20.45, 20.60, 20.30, 20.50), (20.55, 20.90, 20.50, 20.80), (20.85, 21.00, 20.70, 20.95)],
}


def day_bars() -> list[Bar]:
    return sorted((Bar(symbol=s, timeframe=Timeframe.MINUTE, ts=ny(9, 29) + timedelta(minutes=k),
                       end=ny(9, 30) + timedelta(minutes=k), open=o, high=h, low=lo, close=c, volume=1e6, source="test")
                   for s, path in PATHS.items() for k, (o, h, lo, c) in enumerate(path)), key=lambda b: (b.ts, b.symbol))


def store_bars(warehouse, bars: list[Bar]) -> None:
    with warehouse.write() as con:
        con.executemany("INSERT INTO bars VALUES (?, '1m', ?, ?, ?, ?, ?, ?, ?, NULL, NULL, 'raw', 'test', ?)",
                        [[b.symbol, b.ts, b.end, b.open, b.high, b.low, b.close, b.volume, b.end] for b in bars])


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@dataclass(frozen=True)
class Decision:
    at: datetime
    symbol: str
    action: str  # enter | exit
    qty: float = 100.0


def trade_paper_day(warehouse, decisions: list[Decision], costs: Costs, *, cash: float = 100_000.0) -> str:
    """A paper session as the trading session runs one: each decision recorded, then sent
    through Execution to the sim broker on a simulated clock, bar by bar; the day closed reconciled."""
    params = resolve_params(STRATEGY, {})
    sid = session_id(STRATEGY, params, "sim", "paper", DAY)
    bars = day_bars()
    store_bars(warehouse, bars)
    clock = Clock(bars[0].ts)
    broker = SimBroker(warehouse, cash=cash, costs=costs, now=clock)
    execution = Execution(broker, Ledger(warehouse, "sim", Mode.PAPER))
    with warehouse.write() as con:
        con.execute("INSERT INTO trading_sessions VALUES (?, ?, ?, ?, 'sim', 'paper', ?, 'running', ?, NULL, FALSE, NULL, NULL, NULL)",
                    [sid, STRATEGY, json.dumps(params), params_hash(params), DAY, clock.at])
    for bar in bars:
        for d in (d for d in decisions if d.at == bar.ts and d.symbol == bar.symbol):
            clock.at = d.at
            cid = decision_order_id(STRATEGY, d.at, d.symbol, d.action)
            held = execution.ledger.positions().get(d.symbol, 0.0)
            qty = d.qty if d.action == "enter" else held
            with warehouse.write() as con:
                con.execute("INSERT INTO session_decisions VALUES (?, ?, ?, ?, ?, 'test', ?, 'market', 'day', NULL, NULL, "
                            "'decided', ?)", [sid, cid, d.at, d.symbol, d.action, qty, d.at])
            outcome = "skipped: nothing held"
            if qty:
                order = Order(client_order_id=cid, mode=Mode.PAPER, broker="sim", strategy=STRATEGY, symbol=d.symbol,
                              side=Side.BUY if d.action == "enter" else Side.SELL, qty=qty,
                              order_type=OrderType.MARKET, time_in_force=TimeInForce.DAY, created_at=d.at, reason="test")
                try:
                    execution.submit(order)
                    outcome = "sent"
                except OrderRejected as exc:
                    outcome = f"rejected: {exc.reason}"
            with warehouse.write() as con:
                con.execute("UPDATE session_decisions SET outcome = ? WHERE session_id = ? AND client_order_id = ?",
                            [outcome, sid, cid])
        clock.at = bar.end
        broker.on_bar(bar)
        execution.sync()
    with warehouse.write() as con:
        con.execute("UPDATE trading_sessions SET status = 'finished', finished_at = ?, reconciled = TRUE "
                    "WHERE session_id = ?", [clock.at, sid])
    return sid


ROUND_TRIP = [Decision(ny(9, 31), "ACME", "enter"), Decision(ny(9, 33), "ACME", "exit")]


def test_the_same_fill_model_leaves_no_gap(warehouse):
    costs = Costs(commission=Commission(per_share=0.005, minimum=1.0), slippage=Slippage(bps=10))
    sid = trade_paper_day(warehouse, ROUND_TRIP + [Decision(ny(9, 32), "BETA", "enter", 50)], costs)
    report = measure_gap(warehouse, sid, costs)

    assert report.decisions["backtest_qty"].to_list() == report.decisions["paper_qty"].to_list() == [100, 50, 100]
    assert report.totals == dict.fromkeys(CAUSES, 0.0) and report.gap == 0.0
    assert set(report.decisions["cause"]) == {""} and set(report.trades["cause"]) == {""}
    # Both sides' P&L is the paper account's: ACME round trip plus BETA held to the last close.
    with warehouse.write() as con:
        (cash_flow,) = con.execute("SELECT sum(CASE WHEN side = 'buy' THEN -qty * price ELSE qty * price END "
                                   "- commission) FROM fills WHERE mode = 'paper'").fetchone()
    assert report.paper_pnl == pytest.approx(cash_flow + 50 * 20.95)
    assert report.trades.height == 2


def test_an_injected_slippage_difference_is_slippage_to_the_cent(warehouse):
    paper_costs = Costs(commission=FLAT.commission, slippage=Slippage(bps=10))
    sid = trade_paper_day(warehouse, ROUND_TRIP, paper_costs)
    report = measure_gap(warehouse, sid, FLAT)

    # Bought at the 09:31 open 10.12 and sold at the 09:33 open 10.02, each 10 bp worse on paper.
    expected = -100 * (10.12 * 0.001 + 10.02 * 0.001)
    assert report.totals["slippage"] == pytest.approx(expected)
    assert {c: v for c, v in report.totals.items() if c != "slippage"} == dict.fromkeys(set(CAUSES) - {"slippage"}, 0.0)
    assert report.gap == pytest.approx(expected)
    assert report.decisions["cause"].to_list() == ["slippage", "slippage"]
    assert report.decisions["paper_time"].to_list() == report.decisions["backtest_time"].to_list()
    [trip] = report.trades.iter_rows(named=True)
    assert trip["cause"] == "slippage" and trip["gap"] == pytest.approx(expected)
    assert trip["backtest_pnl"] == pytest.approx(100 * (10.02 - 10.12) - 2.0)  # $1 commission each way

    store_gap(warehouse, report)
    store_gap(warehouse, report)  # measured again: replaced, not duplicated
    with warehouse.write() as con:
        rows = con.execute("SELECT session_id, gap, slippage, costs->'$.slippage.bps', "
                           "json_array_length(detail->'$.decisions') FROM paper_gaps").fetchall()
    assert rows == [(sid, pytest.approx(expected), pytest.approx(expected), "0.0", 2)]


def test_an_order_paper_could_not_afford_is_a_missed_fill(warehouse):
    # 1,500 of cash: ACME (100 x ~10) goes through, BETA (100 x ~20) is refused, so its exit finds nothing held.
    decisions = ROUND_TRIP + [Decision(ny(9, 31), "BETA", "enter"), Decision(ny(9, 33), "BETA", "exit")]
    sid = trade_paper_day(warehouse, decisions, FLAT, cash=1_500.0)
    report = measure_gap(warehouse, sid, FLAT)

    beta = report.decisions.filter(symbol="BETA")
    assert beta["outcome"].to_list() == ["rejected: insufficient_buying_power", "skipped: nothing held"]
    assert beta["paper_qty"].to_list() == [0, 0] and beta["backtest_qty"].to_list() == [100, 100]
    assert beta["cause"].to_list() == ["missed_fill", "missed_fill"]
    backtest_trip = 100 * (20.55 - 20.10) - 2.0  # the round trip paper missed, commissions included
    assert report.totals["missed_fill"] == pytest.approx(-backtest_trip)
    assert report.gap == pytest.approx(-backtest_trip)
    trips = {t["symbol"]: t for t in report.trades.iter_rows(named=True)}
    assert trips["BETA"]["cause"] == "missed_fill" and trips["BETA"]["backtest_pnl"] == pytest.approx(backtest_trip)
    assert trips["ACME"]["gap"] == 0.0 and trips["ACME"]["cause"] == ""


def test_only_paper_sessions_that_exist_are_compared(warehouse):
    with pytest.raises(GapError, match="no trading session"):
        measure_gap(warehouse, "nope", FLAT)
    with warehouse.write() as con:
        con.execute("INSERT INTO trading_sessions VALUES ('x:live', 'opening_range', '{}', 'h', 'alpaca', 'live', ?, "
                    "'finished', ?, NULL, TRUE, NULL, NULL, NULL)", [DAY, ny(9, 0)])
    with pytest.raises(GapError, match="only paper sessions"):
        measure_gap(warehouse, "x:live", FLAT)


@pytest.mark.usefixtures("prefect_harness")
def test_the_flow_compares_the_days_paper_sessions_and_the_cli_prints_one(warehouse, monkeypatch):
    from flows.paper_vs_backtest import paper_vs_backtest

    sid = trade_paper_day(warehouse, ROUND_TRIP, Costs(commission=FLAT.commission, slippage=Slippage(bps=10)))
    [summary] = paper_vs_backtest(day=DAY, costs="flat-commission")
    assert summary["session_id"] == sid and summary["slippage"] == pytest.approx(-2.014)
    with warehouse.write() as con:
        assert con.execute("SELECT count(*), sum(gap) FROM paper_gaps").fetchone() == (1, pytest.approx(-2.014))

    monkeypatch.setenv("COLUMNS", "200")
    result = runner.invoke(app, ["paper-gap", sid, "--costs", "flat-commission"])
    assert result.exit_code == 0, result.output
    assert "slippage" in result.stdout and "-2.014" in result.stdout
    missing = runner.invoke(app, ["paper-gap", "no-such-session"])
    assert missing.exit_code == 2 and "no trading session 'no-such-session'" in missing.stderr


def test_fills_spread_over_more_bars_are_timing(warehouse):
    # Paper may take 50 shares a bar (0.005% of 1M), the replay has no cap: each order fills on two bars instead of one.
    sid = trade_paper_day(warehouse, ROUND_TRIP, Costs(commission=FLAT.commission, participation=0.00005))
    report = measure_gap(warehouse, sid, FLAT)

    assert report.decisions["cause"].to_list() == ["timing", "timing"]
    # Bought 50 at 10.12 and 50 at 10.30 instead of 100 at 10.12; sold 50 at 10.02 and 50 at 9.75 instead of 100 at 10.02.
    expected = 100 * (10.12 - (10.12 + 10.30) / 2) + 100 * ((10.02 + 9.75) / 2 - 10.02)  # -9.00 - 13.50
    assert report.totals["timing"] == pytest.approx(expected) and report.gap == pytest.approx(expected)
    assert report.totals["slippage"] == report.totals["partial_fill"] == 0.0
