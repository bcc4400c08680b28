"""The backtest engine against the bar-by-bar reference loop in `tests/reference_engine.py`:
hand-computed cases with exact numbers, then random bars, signals and costs on which both
must agree fill for fill, with the engine's own invariants."""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.costs import Commission, Costs, Slippage
from tapeflow.backtest.engine import BacktestResult, _walk_signals, simulate
from tapeflow.backtest.fast import market_only
from tapeflow.backtest.slippage import BY_LIQUIDITY, SMALL_CAP
from tapeflow.calendar.exchange import NEW_YORK, get_calendar
from tapeflow.model import Outcome, Timeframe
from tapeflow.risk.policy import ExecutionPolicy, Sizing
from tapeflow.schemas import EQUITY_SCHEMA, FILLS_SCHEMA, TRADES_SCHEMA
from tapeflow.strategy.base import signal_frame
from tapeflow.strategy.history import BAR_COLUMNS
from tests.reference_engine import ReferenceResult, micros, reference_backtest

UTC = UTC
BAR_SCHEMA = BAR_COLUMNS  # the columns a strategy's History holds
CAL = get_calendar()
# Mon 4 .. Fri 8 March 2024: New York is on EST (UTC-5), the open is 14:30 UTC.
D1, D2, D3, D4, D5 = (date(2024, 3, d) for d in (4, 5, 6, 7, 8))


# --- building blocks -------------------------------------------------------------------------

def ny(day: date, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm, ss), NEW_YORK).astimezone(UTC)


def daily(symbol: str, rows: list[tuple[date, float, float, float, float, float]]) -> pl.DataFrame:
    """Daily bars (session open to close) from (day, open, high, low, close, volume)."""
    out = []
    for day, o, h, low, c, v in rows:
        session = CAL.session(day)
        out.append((symbol, session.open, session.close, o, h, low, c, v))
    return pl.DataFrame(out, schema=BAR_SCHEMA, orient="row")


def minutes(symbol: str, start: datetime, rows: list[tuple[float, float, float, float, float]]) -> pl.DataFrame:
    """Consecutive minute bars from `start`, from (open, high, low, close, volume)."""
    out = []
    for k, (o, h, low, c, v) in enumerate(rows):
        ts = start + timedelta(minutes=k)
        out.append((symbol, ts, ts + timedelta(minutes=1), o, h, low, c, v))
    return pl.DataFrame(out, schema=BAR_SCHEMA, orient="row")


def sig(symbol: str, at: datetime, action: str = "enter", **kw) -> dict:
    """A signal row with every column (signal_frame fills defaults only for absent columns)."""
    row = {"symbol": symbol, "at": at, "action": action, "reason": "", "qty": None, "order_type": "market",
           "time_in_force": "day", "limit_price": None, "stop_price": None}
    return {**row, **kw}


def engine_fills(result: BacktestResult) -> list[dict]:
    frame = result.fills.with_columns(pl.col("ts").dt.epoch("us"))
    return frame.select("order_id", "symbol", "side", "ts", "qty", "price", "commission", "fees").to_dicts()


def fill_key(f: dict) -> tuple:
    return (f["ts"], f["symbol"], f["order_id"])


def assert_agree(result: BacktestResult, ref: ReferenceResult) -> None:
    """The engine's fills, decisions and equity curve equal the reference's."""
    got, want = sorted(engine_fills(result), key=fill_key), sorted(ref.fills, key=fill_key)
    assert [(f["order_id"], f["symbol"], f["side"], f["ts"], f["qty"]) for f in got] == \
           [(f["order_id"], f["symbol"], f["side"], f["ts"], f["qty"]) for f in want], "fills differ"
    for g, w in zip(got, want):
        assert abs(g["price"] - w["price"]) <= 1e-9, (g, w)
        assert abs(g["commission"] - w["commission"]) <= 1e-9, (g, w)
        assert abs(g["fees"] - w["fees"]) <= 1e-9, (g, w)

    def category(outcome: str) -> str:  # these messages carry formatted numbers
        numbered = (Outcome.DAILY_LOSS.value, Outcome.NO_BUYING_POWER.value)
        return outcome.split(" (")[0] if outcome.startswith(numbered) else outcome

    assert [category(o) for o in result.decisions["outcome"].to_list()] == [category(o) for o in ref.outcomes]
    curve = result.equity.with_columns(pl.col("ts").dt.epoch("us")).to_dicts()
    assert [r["ts"] for r in curve] == [r["ts"] for r in ref.equity]
    for g, w in zip(curve, ref.equity):
        for name in ("cash", "positions", "equity"):
            assert abs(g[name] - w[name]) <= 1e-6, (name, g, w)
    assert abs(result.final_equity - ref.final_equity) <= 1e-6
    # The reference's own book ends where its report does: every charge sits on some fill.
    if ref.equity:
        assert abs(ref.final_cash - ref.equity[-1]["cash"]) <= 1e-6


def cfg(*, sizing: Sizing | None = None, stop_loss_pct: float | None = None, daily_loss_limit_pct: float | None = None,
        max_position_pct: float | None = None, flatten_on_breaker: bool = False, **rest) -> BacktestConfig:
    """A config whose execution policy has only the rules a test names (buying power too)."""
    policy = ExecutionPolicy(sizing or Sizing(), max_position_pct, stop_loss_pct, daily_loss_limit_pct, flatten_on_breaker)
    return BacktestConfig(policy=policy, **{"buying_power_multiple": None, **rest})


def run(bars: pl.DataFrame, rows: list[dict], config: BacktestConfig | None = None) -> BacktestResult:
    """The engine's result, after checking it against the reference and its invariants."""
    signals = signal_frame(rows) if rows else signal_frame([])
    config = config or cfg()
    result = simulate(bars, signals, config)
    assert_agree(result, reference_backtest(bars, signals, config))
    check_invariants(bars, signals, config, result)
    return result


def fills_of(result: BacktestResult) -> list[tuple]:
    return [(f["symbol"], f["side"], f["ts"], f["qty"], round(f["price"], 10)) for f in
            result.fills.select("symbol", "side", "ts", "qty", "price").to_dicts()]


def outcomes(result: BacktestResult) -> list[str]:
    return result.decisions["outcome"].to_list()


def equity_at(result: BacktestResult, t: datetime) -> dict:
    return result.equity.filter(pl.col("ts") == t).to_dicts()[0]


# --- invariants ------------------------------------------------------------------------------

def check_invariants(bars: pl.DataFrame, signals: pl.DataFrame, config: BacktestConfig, result: BacktestResult) -> None:
    costs = config.costs
    assert result.fills.schema == pl.Schema(FILLS_SCHEMA)
    assert result.trades.schema == pl.Schema(TRADES_SCHEMA)
    assert result.equity.schema == pl.Schema(EQUITY_SCHEMA)
    for row in result.equity.iter_rows(named=True):
        assert abs(row["equity"] - (row["cash"] + row["positions"])) <= 1e-9 * max(1.0, abs(row["equity"]))
    fills = engine_fills(result)
    held: dict[str, float] = {}
    for f in sorted(fills, key=lambda f: f["ts"]):  # the frame is in time order already; be explicit
        assert f["commission"] >= 0 and f["fees"] >= 0 and f["qty"] > 0
        held[f["symbol"]] = held.get(f["symbol"], 0.0) + (f["qty"] if f["side"] == "buy" else -f["qty"])
        assert held[f["symbol"]] >= -1e-9, "long only: a position went negative"
    if not costs.round_to_tick and costs.slippage.model is None:
        worst = costs.slippage.bps / 10_000
        by_instant: dict[tuple[str, int], list[dict]] = {}
        for b in bars.with_columns(pl.col("ts").dt.epoch("us"), pl.col("end_ts").dt.epoch("us")).to_dicts():
            by_instant.setdefault((b["symbol"], b["ts"]), []).append(b)
            by_instant.setdefault((b["symbol"], b["end_ts"]), []).append(b)  # CLS fills sit at the bar end
        for f in fills:
            candidates = by_instant[(f["symbol"], f["ts"])]
            assert any(b["low"] * (1 - worst) - 1e-9 <= f["price"] <= b["high"] * (1 + worst) + 1e-9
                       for b in candidates), (f, candidates)
    # Every decision's outcome matches what its order did (ids: symbol-at-enter|exit|stop[-n]).
    def base(order_id: str) -> str:
        return order_id if order_id.rsplit("-", 1)[-1] in ("enter", "exit", "stop") else order_id.rsplit("-", 1)[0]

    filled = {base(f["order_id"]) for f in fills}
    decisions = [(f"{r['symbol']}-{micros(r['at'])}-{r['action']}", r["outcome"]) for r in result.decisions.iter_rows(named=True)]
    placed = {name for name, outcome in decisions if outcome == "placed"}
    for name, outcome in decisions:
        if outcome == "placed":
            assert name in filled, (name, outcome)
        elif outcome == "placed: never filled":
            assert name in placed or name not in filled, (name, outcome)
        else:
            assert outcome.startswith(("ignored", "cancelled")), (name, outcome)
    for name in filled:
        assert (name[: -len("stop")] + "enter" if name.endswith("-stop") else name) in placed, name


# --- hand-computed cases ---------------------------------------------------------------------

def bars_a() -> pl.DataFrame:
    return daily("A", [
        (D1, 10.00, 10.50, 9.50, 10.00, 1e6),
        (D2, 10.20, 10.80, 10.00, 10.60, 1e6),
        (D3, 10.70, 11.00, 10.40, 10.90, 1e6),
        (D4, 9.50, 9.90, 9.20, 9.60, 1e6),
    ])


def test_market_buy_fills_at_the_next_open_with_slippage_and_a_minimum_commission():
    config = cfg(cash=10_000.0, costs=Costs(commission=Commission(per_share=0.005, minimum=1.0),
                                                     slippage=Slippage(bps=10)))
    result = run(bars_a(), [sig("A", ny(D1, 16), qty=100.0), sig("A", ny(D2, 16), "exit")], config)
    buy_price, sell_price = 10.20 * 1.001, 10.70 * 0.999
    assert fills_of(result) == [("A", "buy", ny(D2, 9, 30), 100.0, round(buy_price, 10)),
                                ("A", "sell", ny(D3, 9, 30), 100.0, round(sell_price, 10))]
    assert result.fills["commission"].to_list() == [1.0, 1.0]  # 100 * 0.005 = 0.50, the $1 minimum applies
    assert equity_at(result, ny(D1, 16))["equity"] == 10_000.0
    after_buy = 10_000.0 - 100 * buy_price - 1.0
    assert equity_at(result, ny(D2, 16))["cash"] == pytest.approx(after_buy, abs=1e-9)
    assert equity_at(result, ny(D2, 16))["equity"] == pytest.approx(after_buy + 100 * 10.60, abs=1e-9)
    final = after_buy + 100 * sell_price - 1.0
    assert result.final_equity == pytest.approx(final, abs=1e-9)
    assert result.trades["pnl"].to_list() == [pytest.approx(final - 10_000.0, abs=1e-9)]


def test_buy_limit_gapped_through_fills_at_the_better_open_without_slippage():
    bars = daily("A", [(D1, 10.0, 10.5, 9.9, 10.1, 1e6), (D2, 9.80, 10.20, 9.70, 10.0, 1e6)])
    config = cfg(costs=Costs(slippage=Slippage(bps=50)))
    result = run(bars, [sig("A", ny(D1, 16), qty=10.0, order_type="limit", limit_price=10.0)], config)
    assert fills_of(result) == [("A", "buy", ny(D2, 9, 30), 10.0, 9.80)]


def test_sell_stop_gapped_through_fills_at_the_worse_open():
    bars = daily("A", [(D1, 10.2, 10.5, 10.1, 10.3, 1e6), (D2, 10.3, 10.6, 10.2, 10.4, 1e6),
                       (D3, 9.50, 9.70, 9.00, 9.60, 1e6)])
    config = cfg(costs=Costs(slippage=Slippage(bps=10)))
    result = run(bars, [sig("A", ny(D1, 16), qty=10.0), sig("A", ny(D2, 16), "exit", order_type="stop", stop_price=10.0)],
                 config)
    assert fills_of(result)[1] == ("A", "sell", ny(D3, 9, 30), 10.0, round(9.50 * 0.999, 10))  # never the stop's 10


def test_sell_stop_touched_intrabar_fills_at_the_stop():
    bars = daily("A", [(D1, 10.2, 10.5, 10.1, 10.3, 1e6), (D2, 10.3, 10.6, 10.2, 10.4, 1e6),
                       (D3, 10.40, 10.60, 9.70, 9.80, 1e6)])
    result = run(bars, [sig("A", ny(D1, 16), qty=10.0), sig("A", ny(D2, 16), "exit", order_type="stop", stop_price=10.0)])
    assert fills_of(result)[1] == ("A", "sell", ny(D3, 9, 30), 10.0, 10.0)


def test_opg_on_minute_bars_fills_at_the_0930_bar_open():
    start = ny(D1, 9, 27)
    bars = minutes("A", start, [(5.0, 5.1, 4.9, 5.0, 100)] * 3 + [(5.25, 5.4, 5.2, 5.3, 1000), (5.3, 5.3, 5.3, 5.3, 1000)])
    result = run(bars, [sig("A", ny(D1, 9, 27, 30), qty=50.0, time_in_force="opg")])
    assert fills_of(result) == [("A", "buy", ny(D1, 9, 30), 50.0, 5.25)]


def test_opg_placed_in_the_session_waits_for_the_next_sessions_open():
    bars = pl.concat([minutes("A", ny(D1, 9, 30), [(5.0, 5.1, 4.9, 5.0, 100)] * 3),
                      minutes("A", ny(D2, 9, 30), [(6.0, 6.1, 5.9, 6.0, 100)] * 2)])
    result = run(bars, [sig("A", ny(D1, 9, 31), qty=5.0, time_in_force="opg")])
    assert fills_of(result) == [("A", "buy", ny(D2, 9, 30), 5.0, 6.0)]


def test_cls_fills_at_the_close_of_the_1559_bar_at_1600():
    bars = minutes("A", ny(D1, 15, 57), [(5.0, 5.1, 4.9, 5.0, 100), (5.0, 5.2, 4.9, 5.1, 100),
                                        (5.1, 5.3, 5.0, 5.22, 100)])
    result = run(bars, [sig("A", ny(D1, 15, 57), qty=20.0, time_in_force="cls")])
    assert fills_of(result) == [("A", "buy", ny(D1, 16), 20.0, 5.22)]
    assert equity_at(result, ny(D1, 15, 59))["positions"] == 0.0  # not before the auction
    assert equity_at(result, ny(D1, 16))["positions"] == pytest.approx(20 * 5.22)


def test_a_decision_at_the_close_does_not_see_the_closing_auction_fill():
    bars = minutes("A", ny(D1, 15, 58), [(5.0, 5.1, 4.9, 5.0, 100), (5.1, 5.3, 5.0, 5.22, 100)])
    result = run(bars, [sig("A", ny(D1, 15, 58), qty=20.0, time_in_force="cls"), sig("A", ny(D1, 16), "exit")])
    assert outcomes(result) == ["placed: never filled", "cancelled the working entry"]
    assert result.fills.is_empty()


def test_participation_cap_splits_an_order_over_three_bars_with_one_commission():
    bars = daily("A", [(D1, 10.0, 10.0, 10.0, 10.0, 1000), (D2, 10.0, 10.5, 9.5, 10.0, 1000),
                       (D3, 11.0, 11.5, 10.5, 11.0, 1000), (D4, 12.0, 12.5, 11.5, 12.0, 2000)])
    config = cfg(costs=Costs(commission=Commission(per_share=0.01, minimum=1.0), participation=0.10))
    result = run(bars, [sig("A", ny(D1, 16), qty=250.0, time_in_force="gtc")], config)
    assert fills_of(result) == [("A", "buy", ny(D2, 9, 30), 100.0, 10.0), ("A", "buy", ny(D3, 9, 30), 100.0, 11.0),
                                ("A", "buy", ny(D4, 9, 30), 50.0, 12.0)]
    # One order, one commission: 250 * 0.01 = 2.50 on the last fill (not three $1 minimums).
    assert result.fills["commission"].to_list() == [0.0, 0.0, 2.5]


def test_day_market_order_remainder_dies_with_its_session():
    bars = pl.concat([minutes("A", ny(D1, 15, 58), [(5.0, 5.0, 5.0, 5.0, 100)] * 2),
                      minutes("A", ny(D2, 9, 30), [(6.0, 6.0, 6.0, 6.0, 100)] * 2)])
    config = cfg(costs=Costs(participation=0.5))
    result = run(bars, [sig("A", ny(D1, 15, 57), qty=500.0)], config)
    assert fills_of(result) == [("A", "buy", ny(D1, 15, 58), 50.0, 5.0), ("A", "buy", ny(D1, 15, 59), 50.0, 5.0)]


def test_day_limit_dies_at_the_session_end_and_gtc_lives_on():
    bars = pl.concat([minutes("A", ny(D1, 15, 58), [(5.0, 5.1, 4.95, 5.0, 100)] * 2),
                      minutes("A", ny(D2, 9, 30), [(4.9, 4.9, 4.5, 4.6, 100)] * 2)])
    day = run(bars, [sig("A", ny(D1, 15, 58), qty=10.0, order_type="limit", limit_price=4.80)])
    assert day.fills.is_empty() and outcomes(day) == ["placed: never filled"]
    gtc = run(bars, [sig("A", ny(D1, 15, 58), qty=10.0, order_type="limit", limit_price=4.80, time_in_force="gtc")])
    # The next session's 09:30 bar opens at 4.90 and trades down to 4.50: the limit's 4.80.
    assert fills_of(gtc) == [("A", "buy", ny(D2, 9, 30), 10.0, 4.80)]


def test_a_partly_filled_order_cancelled_by_an_exit_pays_commission_on_what_filled():
    bars = daily("A", [(D1, 10.0, 10.0, 10.0, 10.0, 1000), (D2, 10.0, 10.5, 9.5, 10.0, 1000),
                       (D3, 11.0, 11.5, 10.5, 11.0, 1000), (D4, 12.0, 12.5, 11.5, 12.0, 1000),
                       (D5, 13.0, 13.5, 12.5, 13.0, 1000)])
    config = cfg(costs=Costs(commission=Commission(per_share=0.01, minimum=1.0, sec_fee_rate=0.0000278,
                                                              taf_per_share=0.000166), participation=0.10))
    result = run(bars, [sig("A", ny(D1, 16), qty=300.0, time_in_force="gtc"),
                        sig("A", ny(D3, 16), "exit", time_in_force="gtc")], config)
    assert fills_of(result) == [("A", "buy", ny(D2, 9, 30), 100.0, 10.0), ("A", "buy", ny(D3, 9, 30), 100.0, 11.0),
                                ("A", "sell", ny(D4, 9, 30), 100.0, 12.0), ("A", "sell", ny(D5, 9, 30), 100.0, 13.0)]
    # The entry was cancelled with 200 of 300 filled: 200 * 0.01 = $2.00, on its last fill.
    assert result.fills["commission"].to_list() == [0.0, pytest.approx(2.0), 0.0, pytest.approx(2.0)]
    fees = 0.0000278 * 2500.0 + 0.000166 * 200
    assert result.fills["fees"].to_list() == [0.0, 0.0, 0.0, pytest.approx(fees, abs=1e-12)]
    assert result.final_equity == pytest.approx(100_000 - 2100 + 2500 - 4.0 - fees, abs=1e-9)
    assert outcomes(result) == ["placed", "placed"]


def test_no_fill_on_a_bar_that_starts_before_the_order():
    bars = minutes("A", ny(D1, 9, 30), [(5.0, 5.1, 4.9, 5.0, 100), (5.5, 5.6, 5.4, 5.5, 100)])
    result = run(bars, [sig("A", ny(D1, 9, 30, 30), qty=5.0)])
    assert fills_of(result) == [("A", "buy", ny(D1, 9, 31), 5.0, 5.5)]
    # ... while an order placed exactly at a bar's start may fill on it.
    assert fills_of(run(bars, [sig("A", ny(D1, 9, 30), qty=5.0)]))[0][2] == ny(D1, 9, 30)


def test_a_signal_on_the_last_bar_never_fills():
    result = run(bars_a(), [sig("A", ny(D4, 16), qty=5.0, time_in_force="gtc")])
    assert result.fills.is_empty() and outcomes(result) == ["placed: never filled"]
    assert result.final_equity == 100_000.0


def test_equity_is_cash_plus_marked_positions_at_every_bar():
    config = cfg(cash=1_000.0)
    result = run(bars_a(), [sig("A", ny(D1, 16), qty=10.0)], config)
    rows = result.equity.select("cash", "positions", "equity").rows()
    cash = 1_000.0 - 10 * 10.20
    assert rows == [(1_000.0, 0.0, 1_000.0), (cash, 106.0, cash + 106.0), (cash, 109.0, cash + 109.0),
                    (cash, 96.0, cash + 96.0)]


def test_sizing_when_the_quantity_is_null():
    config = cfg(cash=10_000.0, sizing=Sizing(fraction=0.5, max_positions=1))
    bars = pl.concat([bars_a(), daily("B", [(d, 20.0, 20.0, 20.0, 20.0, 1e6) for d in (D1, D2, D3, D4)])])
    result = run(bars, [sig("A", ny(D1, 16)), sig("B", ny(D1, 16))], config)
    # 50% of 10,000 at A's last close (10.00): 500 shares; B finds the one position slot taken.
    assert fills_of(result) == [("A", "buy", ny(D2, 9, 30), 500.0, 10.2)]
    assert outcomes(result) == ["placed", "ignored: sized to zero shares"]


def test_liquidity_slippage_uses_the_20_sessions_before_the_bars_session():
    days = CAL.sessions(date(2024, 2, 1), date(2024, 3, 5))  # 23 sessions, the last two are D1, D2
    closes = [20.0 * (1 + 0.01 * (k % 3)) for k in range(len(days))]
    rows = [(s.date, c, c, c, c, 1e4 * (k + 1)) for k, (s, c) in enumerate(zip(days, closes))]
    config = cfg(costs=Costs(slippage=Slippage(model=BY_LIQUIDITY)))
    result = run(daily("A", rows), [sig("A", ny(D1, 16), qty=1000.0)], config)
    # The fill is on D2, the 23rd session (k = 22): the 20 before it are k = 2..21, their returns
    # start from k = 1's close.
    adv = sum(closes[k] * 1e4 * (k + 1) for k in range(2, 22)) / 20
    sigma = statistics.stdev(closes[k] / closes[k - 1] - 1 for k in range(2, 22))
    fraction = BY_LIQUIDITY.half_spread(adv) + sigma * math.sqrt(1000.0 * closes[22] / adv)
    assert fills_of(result)[0][4] == round(closes[22] * (1 + fraction), 10)


def test_tick_rounding_is_against_the_trader_and_never_through_a_limit():
    bars = daily("A", [(D1, 10.0, 10.5, 9.9, 10.0, 1e6), (D2, 10.003, 10.5, 9.9, 10.0, 1e6),
                       (D3, 10.5, 10.6, 9.995, 10.1, 1e6)])
    config = cfg(costs=Costs(slippage=Slippage(bps=10), round_to_tick=True))
    result = run(bars, [sig("A", ny(D1, 16), qty=1.0), sig("A", ny(D2, 16), "exit", order_type="limit", limit_price=10.5)],
                 config)
    # 10.003 * 1.001 = 10.013003 -> up to 10.02; the sell limit at the open 10.50 stays 10.50.
    assert [f[4] for f in fills_of(result)] == [10.02, 10.5]


def test_sec_and_taf_fees_on_sells_only():
    config = cfg(costs=Costs(commission=Commission(sec_fee_rate=0.0000278, taf_per_share=0.000166,
                                                             taf_maximum=0.01)))
    result = run(bars_a(), [sig("A", ny(D1, 16), qty=100.0), sig("A", ny(D2, 16), "exit")], config)
    assert result.fills["fees"].to_list() == [0.0, pytest.approx(0.0000278 * 1070.0 + 0.01)]  # TAF capped at 0.01


def test_stop_loss_after_the_entrys_last_fill():
    bars = daily("A", [(D1, 10.0, 10.0, 10.0, 10.0, 1e6), (D2, 10.0, 10.2, 9.8, 10.0, 1e6),
                       (D3, 9.80, 9.90, 9.40, 9.50, 1e6), (D4, 9.0, 9.2, 8.9, 9.0, 1e6)])
    result = run(bars, [sig("A", ny(D1, 16), qty=10.0)], cfg(stop_loss_pct=0.05))
    # Bought at 10.00 on D2; its stop at 9.50 is not live on D2 (low 9.80 anyway) and triggers on D3.
    assert fills_of(result) == [("A", "buy", ny(D2, 9, 30), 10.0, 10.0), ("A", "sell", ny(D3, 9, 30), 10.0, 9.5)]
    assert result.fills["order_id"].to_list()[1].endswith("-stop")


def test_an_exit_cancels_the_stop_loss():
    bars = daily("A", [(D1, 10.0, 10.0, 10.0, 10.0, 1e6), (D2, 10.0, 10.2, 9.8, 10.0, 1e6),
                       (D3, 10.0, 10.1, 9.9, 10.0, 1e6), (D4, 9.0, 9.2, 8.9, 9.0, 1e6)])
    result = run(bars, [sig("A", ny(D1, 16), qty=10.0), sig("A", ny(D3, 16), "exit", order_type="limit",
                                                             limit_price=12.0)], cfg(stop_loss_pct=0.05))
    assert fills_of(result) == [("A", "buy", ny(D2, 9, 30), 10.0, 10.0)]  # neither the stop nor the limit sold


def test_daily_loss_breaker_on_daily_bars():
    bars = pl.concat([daily("A", [(D1, 10.0, 10.0, 10.0, 10.0, 1e6), (D2, 10.0, 10.0, 10.0, 10.0, 1e6),
                                  (D3, 10.0, 10.0, 9.0, 9.0, 1e6), (D4, 9.0, 9.0, 9.0, 9.0, 1e6)]),
                      daily("B", [(d, 5.0, 5.0, 5.0, 5.0, 1e6) for d in (D1, D2, D3, D4)])])
    config = cfg(cash=10_000.0, daily_loss_limit_pct=0.02, buying_power_multiple=2.0)
    result = run(bars, [sig("A", ny(D1, 16), qty=1000.0), sig("B", ny(D3, 16), qty=10.0), sig("B", ny(D4, 16), qty=10.0)],
                 config)
    # D3 started at 10,000 (A at 10.00) and closed at 9,000: -10%, no new entry that session;
    # D4 starts at 9,000 and is flat, so B is bought again.
    assert outcomes(result)[1].startswith("ignored: daily loss limit hit")
    assert outcomes(result)[2] == "placed: never filled"  # D4 is the last bar


# --- the rules the engine once got wrong ------------------------------------------------------

def test_a_working_gtc_limit_blocks_a_second_entry_even_if_it_never_fills():
    # Whether the first order will ever fill is not knowable when the second signal comes.
    result = run(bars_a(), [sig("A", ny(D1, 16), qty=10.0, order_type="limit", limit_price=5.0, time_in_force="gtc"),
                            sig("A", ny(D2, 16), qty=10.0), sig("A", ny(D3, 16), "exit")])
    assert outcomes(result) == ["placed: never filled", "ignored: already in a position or an order is working",
                                "cancelled the working entry"]
    assert result.fills.is_empty()


def test_an_expired_day_order_no_longer_blocks_entries():
    result = run(bars_a(), [sig("A", ny(D1, 16), qty=10.0, order_type="limit", limit_price=5.0),
                            sig("A", ny(D2, 16), qty=10.0)])
    assert outcomes(result) == ["placed: never filled", "placed"]
    assert fills_of(result) == [("A", "buy", ny(D3, 9, 30), 10.0, 10.7)]


def test_a_triggered_stop_fills_its_remainder_at_later_opens():
    bars = daily("A", [(D1, 10.2, 10.5, 10.1, 10.3, 1e6), (D2, 10.3, 10.6, 10.2, 10.4, 1e6),
                       (D3, 10.4, 10.6, 9.8, 10.5, 500), (D4, 10.5, 10.8, 10.3, 10.6, 500)])
    config = cfg(costs=Costs(participation=0.1))
    result = run(bars, [sig("A", ny(D1, 16), qty=100.0),
                        sig("A", ny(D2, 16), "exit", order_type="stop", stop_price=10.0, time_in_force="gtc")], config)
    # Triggered on D3 (low 9.80): 50 shares (10% of 500) at the stop; the stop is now a market
    # order, so the other 50 go at D4's open although D4 never trades down to 10.00.
    assert [f for f in fills_of(result) if f[1] == "sell"] == [("A", "sell", ny(D3, 9, 30), 50.0, 10.0),
                                                               ("A", "sell", ny(D4, 9, 30), 50.0, 10.5)]


def test_two_exits_at_one_instant_are_two_orders():
    # The second exit cancels the first (a limit that D3 would reach) and sells at D3's open;
    # with one id for both, cancelling the first once dropped the second's fills too.
    result = run(bars_a(), [sig("A", ny(D1, 16), qty=10.0),
                            sig("A", ny(D2, 16), "exit", order_type="limit", limit_price=10.8, time_in_force="gtc"),
                            sig("A", ny(D2, 16), "exit")])
    assert outcomes(result) == ["placed", "placed: never filled", "placed"]
    assert fills_of(result)[1] == ("A", "sell", ny(D3, 9, 30), 10.0, 10.7)
    assert result.fills["order_id"].to_list()[1].endswith("-exit-2")


def test_an_entry_cancelled_before_its_fill_never_filled():
    result = run(bars_a(), [sig("A", ny(D1, 16), qty=10.0), sig("A", ny(D2, 9, 0), "exit")])
    assert outcomes(result) == ["placed: never filled", "cancelled the working entry"]
    assert result.fills.is_empty()


def test_cls_placed_during_the_closing_bar_reaches_its_close_even_on_the_last_bar():
    result = run(bars_a(), [sig("A", ny(D4, 12), qty=10.0, time_in_force="cls")])
    assert fills_of(result) == [("A", "buy", ny(D4, 16), 10.0, 9.60)]
    # ... but not once the close has passed: then it is the next session's close (none here).
    late = run(bars_a(), [sig("A", ny(D3, 16), qty=10.0, time_in_force="cls")])
    assert fills_of(late) == [("A", "buy", ny(D4, 16), 10.0, 9.60)]


def test_opg_and_cls_limits_do_not_trade_through_their_limit():
    bars = daily("A", [(D1, 10.0, 10.0, 10.0, 10.0, 1e6), (D2, 12.0, 12.5, 9.0, 11.0, 1e6)])
    config = cfg(costs=Costs(round_to_tick=True))
    opg = run(bars, [sig("A", ny(D1, 16), qty=10.0, order_type="limit", limit_price=10.0, time_in_force="opg")], config)
    assert opg.fills.is_empty()  # the auction opened at 12.00, above the limit
    cls = run(bars, [sig("A", ny(D1, 16), qty=10.0, order_type="limit", limit_price=11.0, time_in_force="cls")], config)
    assert fills_of(cls) == [("A", "buy", ny(D2, 16), 10.0, 11.0)]


# --- random bars, signals and costs: the engine and the reference agree ----------------------

# Sessions around the 2023 July 3 half day and July 4 holiday, and around the March 2023
# daylight-saving change: enough for the 20-session ADV.
POOLS = [CAL.sessions(date(2023, 6, 1), date(2023, 7, 20)), CAL.sessions(date(2023, 2, 20), date(2023, 3, 24))]
SYMBOLS = ["AAA", "BBB", "CCC"]


def price_step(rng: random.Random, price: float) -> tuple[float, float, float, float]:
    """One bar's open, high, low, close around `price`, on the tick grid."""
    def grid(p: float) -> float:
        return round(max(p, 0.05), 2 if p >= 1 else 4)

    o = grid(price * (1 + rng.gauss(0, 0.03)))
    c = grid(o * (1 + rng.gauss(0, 0.03)))
    h = grid(max(o, c) * (1 + abs(rng.gauss(0, 0.02))))
    low = grid(min(o, c) * (1 - abs(rng.gauss(0, 0.02))))
    return o, max(h, o, c), min(low, o, c), c


def volume(rng: random.Random) -> float:
    return rng.choice([0.0, float(rng.randint(1, 50)), float(rng.randint(100, 5000)), float(rng.randint(10**5, 10**7))])


def random_bars(rng: random.Random, timeframe: str, n_symbols: int) -> pl.DataFrame:
    """Daily bars, minute bars (a few at each session's open and close, some pre-market and
    after-hours, some missing), or a mix of both ("mixed": one timeframe per symbol)."""
    pool = rng.choice(POOLS)
    rows = []
    for symbol in SYMBOLS[:n_symbols]:
        price = rng.choice([0.6, 3.0, 12.0, 60.0])
        minute = timeframe == "minute" or (timeframe == "mixed" and rng.random() < 0.5)
        if minute:
            first = rng.randrange(len(pool) - 3)
            sessions = pool[first:first + rng.randint(1, 3)]
        else:
            first = rng.randrange(len(pool) - 5)
            sessions = pool[first:first + rng.randint(2, 30)]
        for session in sessions:
            if minute:
                spans = [(session.open, rng.randint(0, 5)), (session.close - timedelta(minutes=rng.randint(0, 4)), 5)]
                if rng.random() < 0.3:  # a late start: the session's opening bar is missing
                    spans[0] = (session.open + timedelta(minutes=rng.randint(1, 10)), rng.randint(1, 3))
                if rng.random() < 0.2:
                    spans.append((session.open - timedelta(minutes=rng.randint(1, 90)), 1))  # pre-market
                if rng.random() < 0.2:
                    spans.append((session.close + timedelta(minutes=rng.randint(0, 60)), 1))  # after hours
                starts = sorted({s + timedelta(minutes=k) for s, n in spans for k in range(n)})
                bars = [(s, s + timedelta(minutes=1)) for s in starts]
            else:
                bars = [(session.open, session.close)]
            for ts, end in bars:
                if rng.random() < 0.1:
                    continue  # a missing bar
                o, h, low, c = price_step(rng, price)
                price = c
                rows.append((symbol, ts, end, o, h, low, c, volume(rng)))
    return pl.DataFrame(rows, schema=BAR_SCHEMA, orient="row").sort("ts", "symbol")


def random_signals(rng: random.Random, bars: pl.DataFrame, n: int) -> pl.DataFrame:
    if bars.is_empty():
        return signal_frame([])
    rows = bars.to_dicts()
    lo, hi = bars["ts"].min(), bars["end_ts"].max()
    out = []
    for _ in range(n):
        bar = rng.choice(rows)
        kind = rng.random()
        if kind < 0.5:
            at = bar["end_ts"]
        elif kind < 0.65:
            at = bar["ts"]
        elif kind < 0.75:
            at = bar["ts"] + (bar["end_ts"] - bar["ts"]) * rng.random()
        else:
            at = lo - timedelta(hours=1) + (hi - lo + timedelta(hours=2)) * rng.random()
        symbol = bar["symbol"] if rng.random() < 0.9 else rng.choice(SYMBOLS + ["ZZZ"])
        action = "enter" if rng.random() < 0.6 else "exit"
        qty = rng.choice([None, None, float(rng.randint(1, 400)), float(rng.randint(1, 40)), rng.randint(1, 400) + 0.5])
        order_type = rng.choice(["market", "market", "limit", "stop"])
        reference = bar["close"] * (1 + rng.uniform(-0.06, 0.06))
        reference = round(reference, 2 if reference >= 1 else 4)
        out.append({"symbol": symbol, "at": at, "action": action, "reason": "random", "qty": qty,
                    "order_type": order_type, "time_in_force": rng.choice(["day", "day", "gtc", "gtc", "opg", "cls"]),
                    "limit_price": reference if order_type == "limit" else None,
                    "stop_price": reference if order_type == "stop" else None})
    return signal_frame(out)


@st.composite
def configs(draw) -> BacktestConfig:
    commission = Commission(
        per_share=draw(st.sampled_from([0.0, 0.005, 0.01])), per_order=draw(st.sampled_from([0.0, 1.0])),
        minimum=draw(st.sampled_from([0.0, 1.0])), maximum_pct=draw(st.sampled_from([None, 0.01])),
        sec_fee_rate=draw(st.sampled_from([0.0, 0.0000278])), taf_per_share=draw(st.sampled_from([0.0, 0.000166])),
        taf_maximum=draw(st.sampled_from([8.30, 0.01])),
    )
    slippage = draw(st.sampled_from([Slippage(), Slippage(bps=5), Slippage(bps=25), Slippage(model=BY_LIQUIDITY),
                                     Slippage(model=SMALL_CAP)]))
    costs = Costs(commission=commission, slippage=slippage, round_to_tick=draw(st.booleans()),
                  participation=draw(st.sampled_from([None, None, 0.05, 0.1, 0.5, 1.0])))
    return cfg(
        cash=draw(st.sampled_from([1_000.0, 20_000.0, 100_000.0])), costs=costs,
        sizing=Sizing(fraction=draw(st.sampled_from([0.1, 0.5, 1.0])), max_positions=draw(st.integers(1, 3)),
                      risk_per_trade=draw(st.sampled_from([None, None, 0.005]))),
        stop_loss_pct=draw(st.sampled_from([None, None, 0.01, 0.05])),
        daily_loss_limit_pct=draw(st.sampled_from([None, None, 0.005, 0.02])),
        max_position_pct=draw(st.sampled_from([None, None, 0.25, 1.0])),
        buying_power_multiple=draw(st.sampled_from([None, 1.0, 2.0])),
    )


def check(seed: int, timeframe: str, n_symbols: int, n_signals: int, config: BacktestConfig) -> None:
    rng = random.Random(seed)
    bars = random_bars(rng, timeframe, n_symbols)
    signals = random_signals(rng, bars, n_signals)
    result = simulate(bars, signals, config)
    assert_agree(result, reference_backtest(bars, signals, config))
    check_invariants(bars, signals, config, result)


PROPERTY = settings(deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


@pytest.mark.slow
@PROPERTY
@given(seed=st.integers(0, 2**32), n_symbols=st.integers(1, 3), n_signals=st.integers(0, 20), config=configs())
def test_engine_agrees_with_the_reference_on_daily_bars(seed, n_symbols, n_signals, config):
    check(seed, "daily", n_symbols, n_signals, config)


@pytest.mark.slow
@PROPERTY
@given(seed=st.integers(0, 2**32), n_symbols=st.integers(1, 3), n_signals=st.integers(0, 20), config=configs())
def test_engine_agrees_with_the_reference_on_minute_bars(seed, n_symbols, n_signals, config):
    check(seed, "minute", n_symbols, n_signals, config)


@pytest.mark.slow
@settings(PROPERTY, max_examples=60)
@given(seed=st.integers(0, 2**32), n_symbols=st.integers(2, 3), n_signals=st.integers(0, 20), config=configs())
def test_engine_agrees_with_the_reference_on_daily_and_minute_bars_together(seed, n_symbols, n_signals, config):
    check(seed, "mixed", n_symbols, n_signals, config)


# --- the market-order fast path: the same result as the event loop and the reference --------

@st.composite
def market_configs(draw) -> BacktestConfig:
    """Configs the fast path takes: commissions and fees of every kind, fixed slippage only."""
    commission = Commission(
        per_share=draw(st.sampled_from([0.0, 0.005])), per_order=draw(st.sampled_from([0.0, 1.0])),
        minimum=draw(st.sampled_from([0.0, 1.0])), maximum_pct=draw(st.sampled_from([None, 0.01])),
        sec_fee_rate=draw(st.sampled_from([0.0, 0.0000278])), taf_per_share=draw(st.sampled_from([0.0, 0.000166])),
        taf_maximum=draw(st.sampled_from([8.30, 0.01])),
    )
    slippage = draw(st.sampled_from([Slippage(), Slippage(bps=5), Slippage(bps=25)]))
    return cfg(cash=100_000.0, costs=Costs(commission=commission, slippage=slippage))


def market_signals(rng: random.Random, bars: pl.DataFrame, n: int, at_bar_ends: bool) -> pl.DataFrame:
    """Market DAY/GTC orders with fixed sizes: at random instants (orders often still working
    at the next decision), or only at bar ends (each filled before the next decision)."""
    signals = random_signals(rng, bars, n)
    if at_bar_ends and not bars.is_empty():
        ends = bars.select("symbol", "end_ts").rows()
        picked = [rng.choice(ends) for _ in range(signals.height)]
        signals = signals.with_columns(pl.Series("symbol", [p[0] for p in picked]),
                                       pl.Series("at", [p[1] for p in picked], dtype=pl.Datetime("us", "UTC")))
    return signals.with_columns(
        pl.lit("market").alias("order_type"), pl.lit(None, dtype=pl.Float64).alias("limit_price"),
        pl.lit(None, dtype=pl.Float64).alias("stop_price"),
        pl.Series("time_in_force", [rng.choice(["day", "gtc"]) for _ in range(signals.height)], dtype=pl.String),
        pl.Series("qty", [float(rng.randint(1, 400)) for _ in range(signals.height)], dtype=pl.Float64),
    ).unique(["symbol", "at"], keep="first", maintain_order=True)


@pytest.mark.slow
@PROPERTY
@given(seed=st.integers(0, 2**32), timeframe=st.sampled_from(["daily", "minute", "mixed"]), n_symbols=st.integers(1, 3),
       n_signals=st.integers(0, 30), config=market_configs(), at_bar_ends=st.booleans())
def test_market_fast_path_agrees_with_the_event_loop_and_the_reference(seed, timeframe, n_symbols, n_signals, config,
                                                                      at_bar_ends):
    rng = random.Random(seed)
    bars = random_bars(rng, timeframe, max(n_symbols, 2) if timeframe == "mixed" else n_symbols)
    signals = market_signals(rng, bars, n_signals, at_bar_ends)
    assert market_only(signals, config)
    result = simulate(bars, signals, config)
    assert_agree(result, reference_backtest(bars, signals, config))
    check_invariants(bars, signals, config, result)
    fills, outcomes, _ = _walk_signals(bars, signals.sort("at", maintain_order=True), config, Timeframe.DAY, ())
    assert_frame_equal(result.fills, fills, check_exact=True)
    assert result.decisions["outcome"].to_list() == outcomes


def test_fast_path_only_for_orders_nothing_couples():
    bars = minutes("A", ny(D1, 9, 30), [(10, 10, 10, 10, 1000)] * 3)
    plain = cfg(buying_power_multiple=None)
    at = ny(D1, 9, 31)
    assert market_only(signal_frame([sig("A", at, qty=10.0)]), plain)
    assert not market_only(signal_frame([sig("A", at, qty=10.0)]), cfg(buying_power_multiple=1.0))  # buying power is checked
    assert not market_only(signal_frame([sig("A", at)]), plain)  # sized by the risk rules
    assert not market_only(signal_frame([sig("A", at, qty=10.0, time_in_force="opg")]), plain)
    assert not market_only(signal_frame([sig("A", at, qty=10.0, order_type="limit", limit_price=9.0)]), plain)
    assert not market_only(signal_frame([sig("A", at, qty=10.0), sig("A", at, "exit")]), plain)  # one instant
    assert not market_only(signal_frame([sig("A", at, qty=10.0)]), BacktestConfig(buying_power_multiple=None))  # the default policy
    assert not market_only(signal_frame([sig("A", at, qty=10.0)]), plain, Timeframe.MINUTE)  # its time exit
    for config in (cfg(buying_power_multiple=None, stop_loss_pct=0.02), cfg(buying_power_multiple=None, daily_loss_limit_pct=0.02),
                   cfg(buying_power_multiple=None, max_position_pct=0.25),
                   replace(plain, costs=Costs(participation=0.1)), replace(plain, costs=Costs(round_to_tick=True)),
                   replace(plain, costs=Costs(slippage=Slippage(model=BY_LIQUIDITY)))):
        assert not market_only(signal_frame([sig("A", at, qty=10.0)]), config)
    assert run(bars, [sig("A", at, qty=10.0)], plain).fills["price"].to_list() == [10.0]
