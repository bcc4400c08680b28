"""The liquidity cost model: half-spread by ADV plus square-root impact, a tick at least, thin
when unknown; what it costs on the bundled SPY minutes and on a thin name; the presets'
numbers in the report; the simulated broker measuring liquidity as the backtest does."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, date, datetime, time

import polars as pl
import pytest

from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.costs import PRESETS, cost_preset
from tapeflow.backtest.engine import simulate
from tapeflow.backtest.liquidity import bar_liquidity, stored_liquidity
from tapeflow.backtest.loading import history_between
from tapeflow.backtest.report import format_metric
from tapeflow.backtest.run import assumptions, run_backtest
from tapeflow.backtest.slippage import BY_LIQUIDITY, LARGE_CAP, LIQUID_ETF, SMALL_CAP, SPREAD_ANCHORS
from tapeflow.calendar.exchange import NEW_YORK, get_calendar, ny_day_bounds
from tapeflow.config import PROJECT_DATA
from tapeflow.model import Bar, Mode, Order, OrderType, Side, Timeframe, TimeInForce
from tapeflow.risk.policy import RULES_OFF, tick_round
from tapeflow.sources.base import Window
from tapeflow.sources.replay import ReplaySource
from tapeflow.strategy.base import signal_frame
from tapeflow.strategy.history import History
from tapeflow.strategy.registry import get_strategy
from tapeflow.venues.simulator import SimBroker
from tests.parity_kit import store_bundled_bars

CAL = get_calendar()
THIN_DAYS = [s.date for s in CAL.sessions(date(2024, 1, 29), date(2024, 3, 4))]  # 26 sessions before the fill's
FILL_DAY = date(2024, 3, 5)
THIN_CLOSES = [5.0 if k % 2 else 5.15 for k in range(len(THIN_DAYS))]  # +-3% a day
THIN_VOLUME = 300_000.0  # about $1.5M a day


def ny(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), NEW_YORK).astimezone(UTC)


def thin_daily() -> pl.DataFrame:
    rows = [{"symbol": "THIN", "ts": CAL.session(d).open, "end_ts": CAL.session(d).close, "open": c, "high": c, "low": c,
             "close": c, "volume": THIN_VOLUME} for d, c in zip(THIN_DAYS, THIN_CLOSES)]
    session = CAL.session(FILL_DAY)
    rows.append({"symbol": "THIN", "ts": session.open, "end_ts": session.close, "open": 5.0, "high": 5.2, "low": 4.9,
                 "close": 5.1, "volume": THIN_VOLUME})
    return pl.DataFrame(rows).with_columns(pl.col("ts", "end_ts").dt.cast_time_unit("us"))


def thin_measure() -> tuple[float, float]:
    """ADV and sigma before FILL_DAY, by hand: the 20 last sessions, the returns between the 21 last."""
    adv = sum(c * THIN_VOLUME for c in THIN_CLOSES[-20:]) / 20
    closes = THIN_CLOSES[-21:]
    return adv, statistics.stdev(b / a - 1 for a, b in zip(closes, closes[1:]))


def per_side_bps(fills: pl.DataFrame) -> list[float]:
    return (fills["slippage"] / (fills["qty"] * fills["price"]) * 1e4).to_list()


# --- the model --------------------------------------------------------------------------------

def test_half_spread_follows_the_anchors_log_linearly():
    assert [BY_LIQUIDITY.half_spread(adv) * 1e4 for adv, _ in SPREAD_ANCHORS] == pytest.approx([60, 15, 4, 1])
    assert BY_LIQUIDITY.half_spread(3e10) * 1e4 == pytest.approx(1.0)  # SPY-like: flat beyond $1B
    assert BY_LIQUIDITY.half_spread(2e5) * 1e4 == pytest.approx(60.0)  # below $1M: the thin end
    # Halfway in log between $1M and $10M: halfway between 60 and 15 bp.
    assert BY_LIQUIDITY.half_spread(math.sqrt(1e6 * 1e7)) * 1e4 == pytest.approx(37.5)


def test_cost_falls_as_adv_grows_and_rises_with_the_order():
    advs = [5e5, 1e6, 1.5e6, 3e6, 1e7, 4e7, 1e8, 5e8, 1e9, 2e10]
    by_adv = [BY_LIQUIDITY.fraction(10_000, adv, 0.02) for adv in advs]
    assert all(a > b for a, b in zip(by_adv, by_adv[1:]))
    orders = [100, 1_000, 10_000, 100_000, 1_000_000]
    by_size = [BY_LIQUIDITY.fraction(order, 5e6, 0.02) for order in orders]
    assert all(a < b for a, b in zip(by_size, by_size[1:]))
    # The square-root law: 100 times the order, 10 times the impact.
    assert BY_LIQUIDITY.impact(1_000_000, 5e7, 0.02) == pytest.approx(10 * BY_LIQUIDITY.impact(10_000, 5e7, 0.02))
    assert BY_LIQUIDITY.impact(10_000, 1e8, 0.03) == pytest.approx(0.03 * math.sqrt(1e-4))


def test_the_price_moves_at_least_one_tick():
    slippage = cost_preset("retail-default").slippage
    # A $10 name trading $50B a day: 1 bp is a tenth of a cent, the tick is the floor.
    assert slippage.fill_price(Side.BUY, 10.0, 100, 5e10, 0.01) == pytest.approx(10.01)
    assert slippage.fill_price(Side.SELL, 10.0, 100, 5e10, 0.01) == pytest.approx(9.99)
    assert slippage.fill_price(Side.BUY, 0.5, 100, 5e10, 0.01) == pytest.approx(0.5001)  # sub-dollar tick
    # Above the floor the model rules: $200 x 1 bp = 2 cents.
    assert slippage.fill_price(Side.BUY, 200.0, 1, 5e10, 0.0) == pytest.approx(200.0 * (1 + 1e-4), abs=1e-9)
    # Fixed basis points keep no floor.
    assert cost_preset("none").slippage.fill_price(Side.BUY, 10.0, 100, 5e10, 0.01) == 10.0


def test_unknown_adv_is_priced_as_thin():
    for unknown in (None, math.nan):
        assert BY_LIQUIDITY.fraction(10_000, unknown, unknown) == BY_LIQUIDITY.fraction(10_000, 1e6, 0.04)
    assert BY_LIQUIDITY.fraction(10_000, None, None) == pytest.approx(0.01)  # 60 bp + 0.04 x sqrt(1%) = 1%
    # Through the engine: a name's first session has no history before it.
    bars = thin_daily()
    first = bars.head(2)
    signals = signal_frame([{"symbol": "THIN", "at": first["ts"][0], "action": "enter", "reason": "t", "qty": 2000.0}])
    config = BacktestConfig(costs=cost_preset("retail-default"), policy=RULES_OFF, buying_power_multiple=None)
    fills = simulate(first, signals, config).fills
    reference = float(first["open"][0])
    expected = tick_round(reference * (1 + BY_LIQUIDITY.fraction(2000 * reference, 1e6, 0.04)), Side.BUY)
    assert fills["price"].to_list() == [pytest.approx(expected)]


def test_class_presets_state_a_class_but_measure_impact_where_they_can():
    assert LIQUID_ETF.half_spread(1e6) == LIQUID_ETF.half_spread(None) == 1e-4  # the class's, whatever the ADV
    assert SMALL_CAP.half_spread(1e10) == 30e-4
    # Known ADV and sigma drive the impact; unknown ones fall back to the class's.
    assert LARGE_CAP.impact(10_000, 1e6, 0.05) == pytest.approx(0.05 * 0.1)
    assert LARGE_CAP.impact(10_000, None, None) == pytest.approx(0.02 * math.sqrt(10_000 / 3e8))


# --- what it costs -----------------------------------------------------------------------------

def test_a_thin_name_pays_half_a_percent_to_two_a_side():
    adv, sigma = thin_measure()
    assert 1.4e6 < adv < 1.6e6
    bars = thin_daily()
    at = bars["end_ts"][-2]  # the close before the fill's session
    signals = signal_frame([{"symbol": "THIN", "at": at, "action": "enter", "reason": "t", "qty": 2000.0}])
    result = simulate(bars, signals, BacktestConfig(costs=cost_preset("retail-default")), timeframe=Timeframe.DAY)
    buy = result.fills.row(0, named=True)
    assert buy["side"] == "buy" and buy["qty"] == 2000.0  # a $10,000 order
    expected = tick_round(5.0 * (1 + BY_LIQUIDITY.half_spread(adv) + sigma * math.sqrt(10_000 / adv)), Side.BUY)
    assert buy["price"] == pytest.approx(expected)
    assert 50 <= per_side_bps(result.fills.head(1))[0] <= 200


@pytest.fixture
def spy_minutes(warehouse) -> None:
    """The bundled SPY minutes stored as ingest stores them: January gives March its history."""
    store_bundled_bars(warehouse, Timeframe.MINUTE, ["SPY"], date(2011, 1, 3), date(2011, 3, 31))


def test_opening_range_on_spy_pays_a_few_bps_a_side(settings, spy_minutes):
    first, last = ny_day_bounds(date(2011, 3, 1))[0], ny_day_bounds(date(2011, 3, 31))[1]
    history, _ = history_between(settings, "1m", ["SPY"], first, last)
    advs = history.liquidity["adv_dollars"]
    assert history.liquidity.height == 23 and advs.min() > 1e10 and advs.max() < 4e10  # about $20B a day
    run = run_backtest(get_strategy("opening_range")(), history, BacktestConfig(costs=cost_preset("retail-default")))
    fills = run.result.fills
    assert fills.height >= 20
    assert all(1.0 <= bps <= 5.0 for bps in per_side_bps(fills))  # 1 bp and the tick rounding
    assert 1.0 <= run.metrics["slippage_bps"] <= 5.0
    assert format_metric("slippage_bps", run.metrics["slippage_bps"]).endswith(" bps")


def test_the_warehouse_measures_liquidity_as_the_bars_themselves_do(warehouse, spy_minutes):
    bars = ReplaySource(PROJECT_DATA).bars(["SPY"], "1m", Window.days(date(2011, 1, 3), date(2011, 3, 31))).sort("ts")
    day = bars["ts"].dt.convert_time_zone(str(NEW_YORK)).dt.date()
    adv, sigma = bar_liquidity(day.cast(pl.Int32).to_numpy().astype("int64"), bars["close"].to_numpy(),
                               bars["volume"].to_numpy())
    own = pl.DataFrame({"session": day, "adv": adv, "sigma": sigma}).unique("session").sort("session")
    with warehouse.read() as con:
        stored = stored_liquidity(con, ["SPY"], own["session"].to_list())
    assert stored["adv_dollars"].to_list() == pytest.approx(own["adv"].to_list(), rel=1e-9, nan_ok=True)
    assert stored["sigma_daily"].to_list() == pytest.approx(own["sigma"].to_list(), rel=1e-9, nan_ok=True)
    known = stored.filter(pl.col("session") >= date(2011, 3, 1))
    assert known["sigma_daily"].is_nan().sum() == 0 and 0.004 < known["sigma_daily"].mean() < 0.015


# --- what the report says ----------------------------------------------------------------------

@pytest.mark.parametrize(("preset", "numbers"), [
    ("retail-default", ["$1M: 60 bp", "$10M: 15 bp", "$100M: 4 bp", "$1B: 1 bp", "priced at $1M ADV", "4.0% a day"]),
    ("liquid-etf", ["half-spread 1 bp", "$5B ADV", "1.0% a day"]),
    ("large-cap", ["half-spread 3 bp", "$300M ADV", "2.0% a day"]),
    ("small-cap", ["half-spread 30 bp", "$5M ADV", "4.0% a day"]),
])
def test_each_presets_numbers_are_in_the_assumptions(preset, numbers):
    history = History(thin_daily())
    stated = assumptions(BacktestConfig(costs=cost_preset(preset)), history)
    text = stated["slippage"]
    for part in [*numbers, "1 x sigma_daily x sqrt(fill $ / ADV $)", "Almgren", "Toth", "20 sessions",
                 "at least one tick ($0.01)"]:
        assert part in text, (part, text)
    assert stated["volume cap"] == "10% of each bar's volume" and stated["tick rounding"].startswith("yes")
    assert "$0.005/share" in stated["commissions"] and "SEC fee" in stated["commissions"]


def test_retail_is_renamed():
    assert list(PRESETS) == ["retail-default", "liquid-etf", "large-cap", "small-cap", "flat-commission", "none"]
    with pytest.raises(ValueError, match="unknown cost preset 'retail'; known: retail-default, liquid-etf"):
        cost_preset("retail")


# --- the simulated broker ----------------------------------------------------------------------

def test_the_simulator_prices_by_the_sessions_before_todays(warehouse):
    stored = thin_daily()
    with warehouse.write() as con:  # the prior sessions, and today's own daily bar as an ingest may have stored it
        con.executemany("INSERT INTO bars VALUES (?, '1d', ?, ?, ?, ?, ?, ?, ?, NULL, NULL, 'raw', 'test', ?)",
                        [[r["symbol"], r["ts"], r["end_ts"], r["open"], r["high"], r["low"], r["close"],
                          r["volume"] * (1000 if r["ts"].date() == FILL_DAY else 1), r["end_ts"]]
                         for r in stored.iter_rows(named=True)])
    clock_at = [ny(FILL_DAY, 9, 29)]
    sim = SimBroker(warehouse, cash=100_000.0, costs=cost_preset("retail-default"), now=lambda: clock_at[0])
    minute = lambda hh, mm, price: Bar(symbol="THIN", timeframe=Timeframe.MINUTE, ts=ny(FILL_DAY, hh, mm),  # noqa: E731
                                       end=ny(FILL_DAY, hh, mm + 1), open=price, high=price, low=price, close=price,
                                       volume=50_000, source="test")
    sim.on_bar(minute(9, 28, 5.0))
    sim.submit(Order(client_order_id="thin-1", mode=Mode.PAPER, broker="sim", strategy="t", symbol="THIN", side=Side.BUY,
                     qty=2000.0, order_type=OrderType.MARKET, time_in_force=TimeInForce.DAY, created_at=clock_at[0]))
    clock_at[0] = ny(FILL_DAY, 9, 31)
    [fill] = sim.on_bar(minute(9, 30, 5.0))
    adv, sigma = thin_measure()
    expected = tick_round(5.0 * (1 + BY_LIQUIDITY.half_spread(adv) + sigma * math.sqrt(10_000 / adv)), Side.BUY)
    assert fill.price == pytest.approx(expected)
    assert fill.price > 5.0 * 1.005  # a thin name, not SPY


def test_volatility_is_measured_across_a_recorded_split_without_its_jump(warehouse):
    from tapeflow.ingest.actions import check_actions
    from tapeflow.ingest.bars import check_bars
    from tapeflow.ingest.store import ACTIONS, BARS, store_batch

    raw = ReplaySource(PROJECT_DATA).bars(["GIS"], Timeframe.DAY, Window.days(date(2010, 4, 1), date(2010, 7, 30)))
    checked = check_bars(raw)
    now = datetime.now(UTC)
    store_batch(warehouse, BARS, checked.good, checked.rejected, run_id="b", source="replay", feed="bars:1d",
                params={}, started_at=now)
    after_split = [date(2010, 6, 21)]
    with warehouse.read() as con:
        unrecorded = stored_liquidity(con, ["GIS"], after_split)["sigma_daily"][0]
    split = pl.DataFrame([{"source": "test", "symbol": "GIS", "kind": "split", "ex_date": "2010-06-09", "ratio": 2.0,
                           "amount": None, "price_factor": None, "new_symbol": None,
                           "knowable_at": "2010-06-09T04:00:00Z", "fetched_at": now, "payload": "{}"}])
    good = check_actions(split).good
    store_batch(warehouse, ACTIONS, good, check_actions(split).rejected, run_id="a", source="test",
                feed="corporate_actions", params={}, started_at=now)
    with warehouse.read() as con:
        recorded = stored_liquidity(con, ["GIS"], after_split)["sigma_daily"][0]
    assert unrecorded > 0.08  # one -50% "return" among twenty
    assert 0.005 < recorded < 0.03  # a staples stock's ordinary 1-2% a day
