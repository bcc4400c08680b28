"""How an order fills against the bars that follow it.

Rules (the backtest's documented assumptions):
- An order can only fill on a bar that starts at or after the moment it was placed.
- market: at that bar's open; OPG: at the open of the next regular-session opening bar;
  CLS: at the next regular close after the order (the close of the session's last regular
  bar, which an order placed during that bar can still reach).
- limit: on the first bar whose range reaches the limit, at the limit, or at the open when
  the bar opens through it (a buy limit at 10 on a bar opening at 9.80 fills at 9.80).
- stop: on the first bar whose range reaches the stop, at the stop, or at the open when it
  gaps through (a sell stop at 10 on a bar opening at 9.50 fills at 9.50): never better.
- slippage moves market, OPG, CLS and stop fills against the trader; limit fills never
  trade through their price.
- with a participation cap, a bar gives an order at most that share of its volume; the rest
  fills on later bars (market and stop orders at their opens, limits where they trade),
  while the order is alive: DAY orders die with their session, OPG and CLS with their auction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from tapeflow.backtest.costs import Costs
from tapeflow.backtest.liquidity import bar_liquidity
from tapeflow.calendar.exchange import ExchangeCalendar, get_calendar
from tapeflow.model import OrderType, Side, TimeInForce
from tapeflow.risk.policy import tick_round
from tapeflow.strategy.history import by_symbol_and_time


@dataclass(frozen=True)
class SymbolBars:
    """One symbol's bars as arrays, with the session each bar belongs to."""

    symbol: str
    ts: np.ndarray  # int64 microseconds, bar start
    end: np.ndarray  # int64 microseconds, bar end
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    session: np.ndarray  # int: New York date ordinal of the bar's session
    opens_session: np.ndarray  # bool: the bar starts at its session's regular open
    closes_session: np.ndarray  # bool: the bar ends at its session's regular close
    adv_dollars: np.ndarray  # mean daily dollar volume of the 20 sessions before the bar's (liquidity.py)
    sigma_daily: np.ndarray  # volatility of daily returns over those sessions; NaN: unknown
    # Shares as traded per unit the engine books (1 without corporate actions: tapeflow/backtest/adjust.py).
    scale: np.ndarray = None  # type: ignore[assignment]  # None: all ones

    def __post_init__(self) -> None:
        if self.scale is None:
            object.__setattr__(self, "scale", np.ones(len(self.ts)))

    def last_close(self, at_us: int) -> float | None:
        """Close of the last bar ended by `at_us`."""
        i = int(np.searchsorted(self.end, at_us, side="right")) - 1
        return float(self.close[i]) if i >= 0 else None

    def traded_close(self, at_us: int) -> float | None:
        """`last_close` in the price it traded at, not the engine's units."""
        i = int(np.searchsorted(self.end, at_us, side="right")) - 1
        return float(self.close[i] / self.scale[i]) if i >= 0 else None

    def scale_at(self, at_us: int) -> float:
        """Shares as traded per unit at `at_us` (that of the last bar started by then)."""
        i = int(np.searchsorted(self.ts, at_us, side="right")) - 1
        return float(self.scale[max(i, 0)]) if len(self.scale) else 1.0


def split_by_symbol(bars: pl.DataFrame, calendar: ExchangeCalendar | None = None) -> dict[str, SymbolBars]:
    """All symbols' bars as SymbolBars (in symbol order), sessions looked up once for every date
    present; the columns become arrays once, and each symbol is a slice of them."""
    calendar = calendar or get_calendar()
    marked = by_symbol_and_time(mark_sessions(bars, calendar))
    if marked.is_empty():
        return {}
    column = {name: marked[name].to_numpy() for name in ("open", "high", "low", "close", "volume", "_session", "_opens",
                                                          "_closes")}
    ts, end = marked["ts"].dt.epoch("us").to_numpy(), marked["end_ts"].dt.epoch("us").to_numpy()
    given = "adv_dollars" in marked.columns and "sigma_daily" in marked.columns  # the warehouse's measure (liquidity.py)
    adv = marked["adv_dollars"].to_numpy() if given else None
    sigma = marked["sigma_daily"].to_numpy() if given else None
    scale = marked["scale"].to_numpy() if "scale" in marked.columns else np.ones(marked.height)
    runs = marked["symbol"].rle()
    stops = np.cumsum(runs.struct.field("len").to_numpy())
    out = {}
    for symbol, stop, n in zip(runs.struct.field("value").to_list(), stops, runs.struct.field("len").to_list()):
        part = slice(int(stop - n), int(stop))
        session = column["_session"][part]
        if adv is None or sigma is None:  # measured on the bars' own sessions
            liquidity = bar_liquidity(session, column["close"][part], column["volume"][part])
        else:
            liquidity = (adv[part], sigma[part])
        out[symbol] = SymbolBars(
            symbol=symbol, ts=ts[part], end=end[part], open=column["open"][part], high=column["high"][part],
            low=column["low"][part], close=column["close"][part], volume=column["volume"][part], session=session,
            opens_session=column["_opens"][part], closes_session=column["_closes"][part],
            adv_dollars=liquidity[0], sigma_daily=liquidity[1], scale=scale[part])
    return out


def mark_sessions(bars: pl.DataFrame, calendar: ExchangeCalendar) -> pl.DataFrame:
    """Each bar's session (New York date), and whether it opens or closes the regular session."""
    day = pl.col("ts").dt.convert_time_zone("America/New_York").dt.date()
    marked = bars.with_columns(day.alias("_day"))
    rows = []
    for d in marked["_day"].unique().to_list():
        try:
            if calendar.is_session(d):
                session = calendar.session(d)
                rows.append((d, session.open, session.close))
        except ValueError:  # outside the calendar: no auction marks for that day
            pass
    sessions = pl.DataFrame(
        rows, schema={"_day": pl.Date, "_open": pl.Datetime("us", "UTC"), "_close": pl.Datetime("us", "UTC")}, orient="row")
    return marked.join(sessions, on="_day", how="left").with_columns(
        pl.col("_day").cast(pl.Int32).cast(pl.Int64).alias("_session"),
        (pl.col("ts") == pl.col("_open")).fill_null(False).alias("_opens"),
        (pl.col("end_ts") == pl.col("_close")).fill_null(False).alias("_closes"),
    )


@dataclass(frozen=True)
class OrderSpec:
    """An order as the engine places it."""

    order_id: str
    symbol: str
    side: Side
    qty: float
    order_type: OrderType
    time_in_force: TimeInForce
    placed_us: int
    limit_price: float | None = None
    stop_price: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class FillRow:
    order_id: str
    symbol: str
    side: Side
    ts_us: int  # when the fill happened (bar start, or the close for CLS)
    bar: int  # index of the bar it filled on
    qty: float
    price: float  # after slippage and tick rounding
    reference: float  # the price before slippage, for the slippage bill
    scale: float = 1.0  # shares as traded per unit (the bar's)


def fill_order(bars: SymbolBars, order: OrderSpec, costs: Costs) -> list[FillRow]:
    """The fills `order` gets from the bars after it was placed (none: it never filled)."""
    if order.qty <= 0:
        return []
    if order.time_in_force is TimeInForce.CLS:
        # The closing auction happens at the bar's end: an order placed during that bar
        # (say at 09:31 on a daily bar) is still in time for it, even on the last bar.
        after = int(np.searchsorted(bars.end, order.placed_us, side="right"))
        candidates = np.flatnonzero(bars.closes_session[after:])
        return _auction(bars, order, costs, after + int(candidates[0]), at_close=True) if len(candidates) else []
    first = int(np.searchsorted(bars.ts, order.placed_us, side="left"))
    if first >= len(bars.ts):
        return []
    if order.time_in_force is TimeInForce.OPG:
        candidates = np.flatnonzero(bars.opens_session[first:])
        return _auction(bars, order, costs, first + int(candidates[0]), at_close=False) if len(candidates) else []
    last = len(bars.ts)
    if order.time_in_force is TimeInForce.DAY:
        last = first + int(np.searchsorted(bars.session[first:], bars.session[first], side="right"))
    fills, remaining, triggered = [], order.qty, False
    for i in range(first, last):
        # A stop the market has reached is a market order from then on: its rest goes at the opens.
        reference = float(bars.open[i]) if triggered else _touch(bars, order, i)
        if reference is None:
            continue
        triggered = order.order_type is OrderType.STOP
        qty = min(remaining, _room(bars, costs, i))
        if qty <= 0:
            continue
        fills.append(_fill(bars, order, costs, i, bars.ts[i], qty, reference))
        remaining -= qty
        if remaining <= 1e-9:
            break
    return fills


def working_until(bars: SymbolBars, order: OrderSpec) -> int | None:
    """The instant of the last fill `order` could get (its last bar's start, or its closing
    auction); after it an unfilled rest is dead. None: no bar it could ever fill on."""
    if order.time_in_force is TimeInForce.CLS:  # the next regular close after the order
        after = int(np.searchsorted(bars.end, order.placed_us, side="right"))
        candidates = np.flatnonzero(bars.closes_session[after:])
        return int(bars.end[after + int(candidates[0])]) if len(candidates) else None
    first = int(np.searchsorted(bars.ts, order.placed_us, side="left"))
    if first >= len(bars.ts):
        return None
    if order.time_in_force is TimeInForce.OPG:
        candidates = np.flatnonzero(bars.opens_session[first:])
        return int(bars.ts[first + int(candidates[0])]) if len(candidates) else None
    if order.time_in_force is TimeInForce.DAY:
        return int(bars.ts[first + int(np.searchsorted(bars.session[first:], bars.session[first], side="right")) - 1])
    return int(bars.ts[-1])


def _touch(bars: SymbolBars, order: OrderSpec, i: int) -> float | None:
    """The price `order` trades at on bar i before slippage, or None if the bar does not reach it."""
    o, h, low = bars.open[i], bars.high[i], bars.low[i]
    buy = order.side is Side.BUY
    if order.order_type is OrderType.MARKET:
        return float(o)
    if order.order_type is OrderType.LIMIT:
        limit = order.limit_price
        if buy:
            return float(min(o, limit)) if low <= limit else None
        return float(max(o, limit)) if h >= limit else None
    if order.order_type is OrderType.STOP:
        stop = order.stop_price
        if buy:
            return float(max(o, stop)) if h >= stop else None
        return float(min(o, stop)) if low <= stop else None
    raise ValueError(f"the simulator does not fill {order.order_type} orders")


def _room(bars: SymbolBars, costs: Costs, i: int) -> float:
    if costs.participation is None:
        return float("inf")
    return float(np.floor(costs.participation * bars.volume[i]))


def _auction(bars: SymbolBars, order: OrderSpec, costs: Costs, i: int, *, at_close: bool) -> list[FillRow]:
    qty = min(order.qty, _room(bars, costs, i))
    if qty <= 0:
        return []
    reference = float(bars.close[i] if at_close else bars.open[i])
    # The auction price is the bar's whole range: a limit or stop it does not reach does not fill.
    buy = order.side is Side.BUY
    limit, stop = order.limit_price, order.stop_price
    if order.order_type is OrderType.LIMIT:
        assert limit is not None  # every limit order carries its price
        if reference > limit if buy else reference < limit:
            return []
    if order.order_type is OrderType.STOP:
        assert stop is not None  # every stop order carries its price
        if reference < stop if buy else reference > stop:
            return []
    when = bars.end[i] if at_close else bars.ts[i]
    return [_fill(bars, order, costs, i, when, qty, reference)]


def _fill(bars: SymbolBars, order: OrderSpec, costs: Costs, i: int, when: int, qty: float, reference: float) -> FillRow:
    price = reference
    scale = float(bars.scale[i])
    if order.order_type is not OrderType.LIMIT:
        price = costs.slippage.fill_price(order.side, price, qty, float(bars.adv_dollars[i]), float(bars.sigma_daily[i]),
                                          scale)
    if costs.round_to_tick:  # ticks are cents of the traded price, not of the engine's units
        price = tick_round(price / scale, order.side) * scale
        if order.order_type is OrderType.LIMIT:
            # Rounding must not push a limit fill through its limit.
            limit = order.limit_price
            assert limit is not None  # every limit order carries its price
            price = min(price, limit) if order.side is Side.BUY else max(price, limit)
    return FillRow(order.order_id, order.symbol, order.side, int(when), i, float(qty), float(price), reference, scale)
