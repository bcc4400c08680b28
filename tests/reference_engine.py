"""A plain, bar-by-bar reference backtest that `tapeflow.backtest.engine.simulate` must agree with.

Written from the documented rules (the module docstrings of `tapeflow.backtest.fills` and
`tapeflow.backtest.engine`), not from the engine's code: it shares only the cost, sizing and
risk *models* (`Commission`, `Slippage`, `tick_round`, `Sizing`, `DailyLossBreaker`) and the
exchange calendar. Clarity over speed: it is meant for small data.

The loop is driven by events in time order. At one instant the events run in this order:
  1. the session-start snapshot (the daily-loss breaker's reference equity),
  2. decisions (signals) stamped with that instant: they see only what happened strictly
     before it,
  3. bars starting at that instant (working orders trade against them), and bars ending at
     it (market-on-close orders trade at their close).

Orders (all long-only):
- An order can only fill on a bar of its symbol that starts at or after the moment it was
  placed, except at a closing auction, which happens at the bar's end. Which bars it may
  use (its window) follows from its time in force:
  DAY: the bars of the session (New York date) of the first bar it may use;
  GTC: every bar from then on;
  OPG: the first regular-session opening bar (bar start == the calendar's open);
  CLS: the first regular-session closing bar (bar end == the calendar's close) ending after
  the order, at its close.
- market: the bar's open. limit: when the bar's range reaches the limit, at the limit or at
  the open if the bar opened through it. stop: when the range reaches the stop, at the stop or
  at the open if it gapped through; once triggered, a stop is a market order (its remainder
  fills at later opens). In an auction (OPG/CLS) the bar's range is the one auction price:
  a limit fills only at or better than its limit, a stop only once the price reached it.
- slippage (fixed bps, or a liquidity model on the fill's dollars, the average daily dollar
  volume of the 20 sessions before the bar's and the standard deviation of the close-to-close
  returns between the 21 sessions before it, at least 5, all within 60 calendar days) moves
  every fill but limit fills against the trader; then tick rounding against the trader, never
  through a limit.
- participation cap: at most floor(cap * volume) shares per bar; the rest waits for the
  order's later bars and dies with its window.
- An order works from its placement until it has filled completely, its window is used up
  (DAY: its session's last bar; GTC: the symbol's last bar; OPG/CLS: its auction), or an
  exit cancels it. Commission and fees are figured on the order's whole fill and paid as it
  fills (each fill pays what the order's total grew by); the report puts them on the order's
  last fill, once it stops working.

Decisions (taken in `at` order, ties in the frame's order):
- enter: ignored with a position or a working order in the symbol, or when the daily-loss
  breaker has tripped; the quantity is the signal's or, when null, `Sizing.shares` on the
  equity (cash + positions at the last close) at `at`, the stop distance being the stop
  loss percentage of the last close; then at most `max_position_pct` of that equity at the
  last close; with `buying_power_multiple`, cut to the whole shares the buying power pays for
  at the last close. Without a last close, an entry that needs a price is ignored.
- exit: cancels every working order of the symbol (an entry's remainder, its stop), then
  sells the whole position with the signal's order type and time in force.
- stop loss: once an entry stops working with shares filled, a GTC sell stop for those
  shares at `(1 - stop_loss_pct)` times their average price rounded down to the tick, from
  the next bar on.
- daily-loss breaker: a session's reference equity is the equity at the start of its New
  York day; no entries once the equity at an entry has fallen `daily_loss_limit_pct`
  below it, for the rest of that day.

The equity curve is marked at every bar end: cash after the fills up to that instant
(commission on each order's last fill) plus each position at its symbol's last close.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import polars as pl

from tapeflow.calendar.exchange import get_calendar
from tapeflow.model import Side
from tapeflow.risk.policy import DailyLossBreaker, tick_round

NEW_YORK = ZoneInfo("America/New_York")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ADV_SESSIONS = 20
LOOKBACK_DAYS = 60
MIN_RETURNS = 5
DONE_QTY = 1e-9


def micros(t: datetime) -> int:
    """An aware datetime as exact integer microseconds since the epoch."""
    delta = t - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def new_york_day(t_us: int) -> date:
    return datetime.fromtimestamp(t_us // 1_000_000, UTC).astimezone(NEW_YORK).date()


def new_york_midnight(day: date) -> int:
    return micros(datetime.combine(day, time(0), NEW_YORK))


@dataclass
class Bar:
    symbol: str
    ts: int
    end: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    day: date  # New York date of the bar's start: its session
    opens_session: bool = False
    closes_session: bool = False
    adv: float | None = None  # mean daily dollar volume of the 20 sessions before `day`
    sigma: float | None = None  # std of the daily returns between the 21 sessions before `day`


@dataclass
class Order:
    order_id: str
    symbol: str
    side: Side
    qty: float
    order_type: str
    tif: str
    placed: int
    limit: float | None
    stop: float | None
    is_entry: bool
    window: list[Bar]
    filled_qty: float = 0.0
    filled_value: float = 0.0
    fills: list[dict] = field(default_factory=list)
    triggered: bool = False
    working: bool = True
    commission: float = 0.0
    fees: float = 0.0
    paid: float = 0.0  # commission and fees paid so far


@dataclass
class ReferenceResult:
    fills: list[dict]  # order_id, symbol, side, ts (us), qty, price, commission, fees
    outcomes: list[str]  # one per decision, in `signals.sort("at", maintain_order=True)` order
    equity: list[dict]  # ts (us), cash, positions, equity: at every bar end
    final_equity: float
    final_cash: float  # the book's cash after every charge
    final_positions: dict[str, float]


def load_bars(bars: pl.DataFrame) -> dict[str, list[Bar]]:
    """Each symbol's bars in time order, with session marks from the calendar and prior ADV."""
    calendar = get_calendar()
    by_symbol: dict[str, list[Bar]] = {}
    for row in bars.sort("symbol", "ts").iter_rows(named=True):
        ts, end = micros(row["ts"]), micros(row["end_ts"])
        bar = Bar(row["symbol"], ts, end, row["open"], row["high"], row["low"], row["close"], row["volume"],
                  new_york_day(ts))
        if calendar.start <= bar.day <= calendar.end and calendar.is_session(bar.day):
            session = calendar.session(bar.day)
            bar.opens_session = ts == micros(session.open)
            bar.closes_session = end == micros(session.close)
        by_symbol.setdefault(bar.symbol, []).append(bar)
    for series in by_symbol.values():
        dollars: dict[date, float] = {}
        last_close: dict[date, float] = {}
        for bar in series:
            dollars[bar.day] = dollars.get(bar.day, 0.0) + bar.close * bar.volume
            last_close[bar.day] = bar.close  # the series is in time order
        days = sorted(dollars)
        for bar in series:
            before = [d for d in days if d < bar.day and (bar.day - d).days <= LOOKBACK_DAYS][-ADV_SESSIONS - 1:]
            recent = before[-ADV_SESSIONS:]
            bar.adv = sum(dollars[d] for d in recent) / len(recent) if recent else None
            returns = [last_close[b] / last_close[a] - 1 for a, b in zip(before, before[1:])]
            bar.sigma = statistics.stdev(returns) if len(returns) >= MIN_RETURNS else None
    return by_symbol


def order_window(series: list[Bar], placed: int, tif: str) -> list[Bar]:
    """The bars an order placed at `placed` may fill on."""
    if tif == "cls":  # the closing auction is at the bar's end: still reachable during the bar
        return [b for b in series if b.closes_session and b.end > placed][:1]
    usable = [b for b in series if b.ts >= placed]
    if not usable:
        return []
    if tif == "day":
        return [b for b in usable if b.day == usable[0].day]
    if tif == "gtc":
        return usable
    if tif == "opg":
        return [b for b in usable if b.opens_session][:1]
    raise ValueError(tif)


class Reference:
    def __init__(self, bars: pl.DataFrame, signals: pl.DataFrame, config) -> None:
        self.config = config
        self.costs = config.costs
        self.series = load_bars(bars)
        self.signals = list(signals.sort("at", maintain_order=True).iter_rows(named=True))
        self.cash = config.cash
        self.position: dict[str, float] = {}
        self.orders: list[Order] = []
        self.fill_log: list[tuple[int, int, dict, Order]] = []  # (ts, seq, fill, order)
        self.policy = config.policy
        self.breaker = DailyLossBreaker(self.policy.daily_loss_limit_pct)
        self.session_start: dict[date, float] = {}
        self.outcomes: list[str] = []
        self.placed_by: dict[int, Order] = {}  # decision index -> its order

    # --- marks -------------------------------------------------------------------------
    def last_close(self, symbol: str, t: int) -> float | None:
        ended = [b for b in self.series[symbol] if b.end <= t]
        return ended[-1].close if ended else None

    def equity_now(self, t: int) -> float:
        """The book's equity at `t`: cash plus positions at their last close (none yet: 0)."""
        return self.cash + sum(q * (self.last_close(s, t) or 0.0) for s, q in self.position.items() if q)

    def buying_power(self, t: int) -> float | None:
        """Equity x `buying_power_multiple`, less the positions held and the buys still working
        (their unfilled shares at the limit or the stop, or else at the last close); None: not checked."""
        multiple = getattr(self.config, "buying_power_multiple", None)
        if multiple is None:
            return None
        held = sum(abs(q) * (self.last_close(s, t) or 0.0) for s, q in self.position.items() if q)
        working = sum((o.qty - o.filled_qty) * (o.limit or o.stop or self.last_close(o.symbol, t) or 0.0)
                      for o in self.orders if o.working and o.side is Side.BUY)
        return max(0.0, self.equity_now(t) * multiple - held - working)

    def working(self, symbol: str) -> list[Order]:
        return [o for o in self.orders if o.symbol == symbol and o.working]

    # --- the loop ------------------------------------------------------------------------
    def run(self) -> ReferenceResult:
        events = []  # (time, priority, seq, kind, payload)
        seq = 0
        for i, row in enumerate(self.signals):
            events.append((micros(row["at"]), 1, seq, "decide", i))
            seq += 1
        if self.breaker.limit_pct is not None:
            for day in sorted({new_york_day(micros(r["at"])) for r in self.signals}):
                events.append((new_york_midnight(day), 0, seq, "session", day))
                seq += 1
        for series in self.series.values():
            for bar in series:
                events.append((bar.ts, 2, seq, "bar_open", bar))
                seq += 1
                events.append((bar.end, 2, seq, "bar_close", bar))
                seq += 1
        events.sort(key=lambda e: (e[0], e[1], e[2]))
        for t, _, _, kind, payload in events:
            if kind == "session":
                self.session_start[payload] = self.equity_now(t)
            elif kind == "decide":
                self.outcomes.append(self.decide(payload, t))
            elif kind == "bar_open":
                for order in self.working(payload.symbol):
                    if order.tif != "cls" and any(b is payload for b in order.window):
                        self.trade(order, payload, payload.ts)
            else:
                for order in self.working(payload.symbol):
                    if order.tif == "cls" and any(b is payload for b in order.window):
                        self.trade(order, payload, payload.end)
        assert not any(o.working for o in self.orders), "every window ends with the data"
        for i, order in self.placed_by.items():
            self.outcomes[i] = "placed" if order.fills else "placed: never filled"
        return self.result()

    # --- decisions -----------------------------------------------------------------------
    def decide(self, i: int, at: int) -> str:
        row = self.signals[i]
        symbol = row["symbol"]
        if symbol not in self.series:
            return "ignored: no bars for the symbol"
        held = self.position.get(symbol, 0.0)
        busy = bool(self.working(symbol))
        if row["action"] == "enter":
            if held != 0 or busy:
                return "ignored: already in a position or an order is working"
            day = new_york_day(at)
            if self.breaker.limit_pct is not None:
                session, equity = day.toordinal(), self.equity_now(at)
                self.breaker.observe(session, self.session_start[day])
                if self.breaker.tripped(session, equity):
                    return f"ignored: daily loss limit hit ({self.breaker.describe(session, equity)})"
            qty, price = row["qty"], self.last_close(symbol, at)
            power = self.buying_power(at)
            cap = self.policy.max_position_pct
            if price is None and (qty is None or cap is not None or power is not None):
                return "ignored: sized to zero shares" if qty is None else "ignored: no price for the symbol yet"
            if qty is None:
                open_positions = sum(
                    1 for s in self.series if self.position.get(s, 0.0) != 0 or self.working(s)
                )
                stop = self.policy.stop_loss_pct
                qty = self.policy.sizing.shares(equity=self.equity_now(at), buying_power=math.inf if power is None else power,
                                                price=price, open_positions=open_positions,
                                                stop_distance=price * stop if price and stop else None)
            if cap is not None and price:
                qty = min(qty, math.floor(cap * max(self.equity_now(at), 0.0) / price))
            if not qty or qty <= 0:
                return "ignored: sized to zero shares"
            if power is not None and price:
                affordable = max(0, int(power // price))  # whole shares
                if affordable == 0:
                    return f"ignored: insufficient buying power ({power:,.2f})"
                qty = min(qty, affordable)
            order = self.place(row, symbol, Side.BUY, float(qty), at, self.new_id(f"{symbol}-{at}-enter"), is_entry=True)
            self.placed_by[i] = order
            return "placed"  # becomes "placed: never filled" at the end if it never filled
        if held == 0 and not busy:
            return "ignored: nothing to exit"
        for order in self.working(symbol):
            order.working = False
            self.charge(order)
        if held <= 0:
            return "cancelled the working entry"
        order = self.place(row, symbol, Side.SELL, held, at, self.new_id(f"{symbol}-{at}-exit"), is_entry=False)
        self.placed_by[i] = order
        return "placed"

    def new_id(self, base: str) -> str:
        """Order ids name the decision: symbol, its instant in microseconds, enter/exit/stop;
        a second order of the same name gets -2, then -3 ..."""
        used = {o.order_id for o in self.orders}
        n, order_id = 1, base
        while order_id in used:
            n += 1
            order_id = f"{base}-{n}"
        return order_id

    def place(self, row: dict, symbol: str, side: Side, qty: float, at: int, order_id: str, *, is_entry: bool) -> Order:
        order = Order(order_id, symbol, side, qty, row["order_type"], row["time_in_force"], at,
                      row["limit_price"], row["stop_price"], is_entry, order_window(self.series[symbol], at, row["time_in_force"]))
        self.orders.append(order)
        if not order.window:
            order.working = False  # nothing left it could ever fill on
        return order

    # --- fills ---------------------------------------------------------------------------
    def trade(self, order: Order, bar: Bar, when: int) -> None:
        """`order` against `bar`; `when` is the fill's instant (the open, or the close for CLS)."""
        price = self.reference_price(order, bar)
        if price is not None:
            if order.order_type == "stop":
                order.triggered = True  # from now on it is a market order
            room = math.inf if self.costs.participation is None else math.floor(self.costs.participation * bar.volume)
            qty = min(order.qty - order.filled_qty, room)
            if qty > 0:
                self.fill(order, bar, when, qty, price)
        if order.qty - order.filled_qty <= DONE_QTY or bar is order.window[-1]:
            self.finish(order, when)

    def reference_price(self, order: Order, bar: Bar) -> float | None:
        """The price before slippage at which `order` trades on `bar`, or None."""
        buy = order.side is Side.BUY
        if order.tif in ("opg", "cls"):
            p = bar.open if order.tif == "opg" else bar.close
            if order.order_type == "limit" and (p > order.limit if buy else p < order.limit):
                return None
            if order.order_type == "stop" and (p < order.stop if buy else p > order.stop):
                return None
            return p
        if order.order_type == "market" or order.triggered:
            return bar.open
        if order.order_type == "limit":
            if buy:
                if bar.open <= order.limit:
                    return bar.open  # opened through it: the better price
                return order.limit if bar.low <= order.limit else None
            if bar.open >= order.limit:
                return bar.open
            return order.limit if bar.high >= order.limit else None
        if order.order_type == "stop":
            if buy:
                if bar.open >= order.stop:
                    return bar.open  # gapped through: the worse price
                return order.stop if bar.high >= order.stop else None
            if bar.open <= order.stop:
                return bar.open
            return order.stop if bar.low <= order.stop else None
        raise ValueError(order.order_type)

    def fill(self, order: Order, bar: Bar, when: int, qty: float, reference: float) -> None:
        price = reference
        if order.order_type != "limit":
            price = self.costs.slippage.fill_price(order.side, price, qty, bar.adv, bar.sigma)
        if self.costs.round_to_tick:
            price = tick_round(price, order.side)
            if order.order_type == "limit":
                price = min(price, order.limit) if order.side is Side.BUY else max(price, order.limit)
        sign = 1.0 if order.side is Side.BUY else -1.0
        self.position[order.symbol] = self.position.get(order.symbol, 0.0) + sign * qty
        self.cash -= sign * qty * price
        order.filled_qty += qty
        order.filled_value += qty * price
        c = self.costs.commission
        total = c.commission(order.filled_qty, order.filled_value) + c.fees(order.side, order.filled_qty, order.filled_value)
        self.cash -= total - order.paid
        order.paid = total
        fill = {"order_id": order.order_id, "symbol": order.symbol, "side": order.side.value, "ts": when,
                "qty": qty, "price": price, "commission": 0.0, "fees": 0.0}
        order.fills.append(fill)
        self.fill_log.append((when, len(self.fill_log), fill, order))

    def finish(self, order: Order, when: int) -> None:
        """`order` stops working at `when` (filled, or its window used up)."""
        order.working = False
        self.charge(order)
        stop_pct = self.policy.stop_loss_pct
        if order.is_entry and order.filled_qty > 0 and stop_pct:
            average = sum(f["qty"] * f["price"] for f in order.fills) / sum(f["qty"] for f in order.fills)
            placed = when + 1
            name, n = order.order_id.rsplit("-enter", 1)  # the stop is named after its entry
            stop_price = tick_round(average * (1 - stop_pct), Side.SELL)
            stop = Order(f"{name}-stop{n}", order.symbol, Side.SELL, order.filled_qty, "stop", "gtc",
                         placed, None, stop_price, False, order_window(self.series[order.symbol], placed, "gtc"))
            self.orders.append(stop)
            if not stop.window:
                stop.working = False

    def charge(self, order: Order) -> None:
        """Commission and fees on what the order filled (paid already), booked on its last fill."""
        if not order.fills:
            return
        c = self.costs.commission
        order.commission = c.commission(order.filled_qty, order.filled_value)
        order.fees = c.fees(order.side, order.filled_qty, order.filled_value)
        order.fills[-1]["commission"] = order.commission
        order.fills[-1]["fees"] = order.fees

    # --- the report ----------------------------------------------------------------------
    def result(self) -> ReferenceResult:
        fills = [f for _, _, f, _ in sorted(self.fill_log, key=lambda x: (x[0], x[1]))]
        marks = sorted({b.end for s in self.series.values() for b in s})
        curve = []
        for t in marks:
            cash, held = self.config.cash, {}
            for f in fills:
                if f["ts"] <= t:
                    sign = 1.0 if f["side"] == "buy" else -1.0
                    cash -= sign * f["qty"] * f["price"] + f["commission"] + f["fees"]
                    held[f["symbol"]] = held.get(f["symbol"], 0.0) + sign * f["qty"]
            positions = sum(q * (self.last_close(s, t) or 0.0) for s, q in held.items())
            curve.append({"ts": t, "cash": cash, "positions": positions, "equity": cash + positions})
        final = curve[-1]["equity"] if curve else self.config.cash
        return ReferenceResult(fills, self.outcomes, curve, final, self.cash, dict(self.position))


def reference_backtest(bars: pl.DataFrame, signals: pl.DataFrame, config) -> ReferenceResult:
    """Run `signals` (SIGNAL_SCHEMA) against `bars` under `config` (a BacktestConfig)."""
    return Reference(bars, signals, config).run()
