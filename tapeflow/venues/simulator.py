"""The simulated broker: paper trading with the backtest's own fill, slippage and commission
models (`tapeflow.backtest.fills`, `tapeflow.backtest.costs`), its book kept in the warehouse.

Bars drive it (`on_bar`, from the warehouse or a live feed): each working order of the bar's
symbol gets the fills `fill_order` gives it on that one bar, exactly as in a backtest, so a
market order fills at the open of the first bar starting at or after it was placed. Its
orders, fills, cash and last prices live in `sim_*` tables, apart from the ledger: a restart
resumes exactly, and bars processed while the trading process is down fill orders that
reconciliation will then find. A cash account: no shorting, buying power is cash less the
buys still working. A liquidity cost model prices each name by the ADV and volatility of the
sessions before the bar's, read from the warehouse's bars as a backtest reads them
(`tapeflow.backtest.liquidity`), never from the session under way.
"""

from __future__ import annotations

import math
import queue
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

import numpy as np

from tapeflow.backtest.costs import Costs
from tapeflow.backtest.fills import OrderSpec, SymbolBars, fill_order
from tapeflow.backtest.liquidity import stored_liquidity
from tapeflow.brokers.base import (
    Broker,
    BrokerOrder,
    Clock,
    DuplicateOrderId,
    InsufficientBuyingPower,
    InvalidOrder,
    NotShortable,
    OrderEvent,
    OrderUpdate,
    Replacement,
)
from tapeflow.brokers.ids import STOP_LOSS, TAKE_PROFIT, leg_id
from tapeflow.calendar.exchange import get_calendar, ny_day
from tapeflow.model import (
    Account,
    Bar,
    Fill,
    Mode,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TimeInForce,
)
from tapeflow.schemas import to_us
from warehouse.connection import Warehouse

ACCOUNT = "default"
WORKING = ("new", "partially_filled")
_COLUMNS = ("client_order_id, broker_order_id, symbol, side, qty, order_type, time_in_force, limit_price, stop_price, "
            "take_profit_price, stop_loss_price, parent, session, status, filled_qty, filled_value, charged, reason, "
            "submitted_at, updated_at")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SimBroker(Broker):
    """A paper broker that fills against bars with the backtest's models."""

    name = "sim"

    def __init__(self, warehouse: Warehouse, *, cash: float = 100_000.0, costs: Costs = Costs(),
                 mode: Mode = Mode.PAPER, now: Callable[[], datetime] = _utc_now) -> None:
        self.warehouse = warehouse
        self.costs = costs
        self.mode = Mode(mode)
        self.now = now  # a simulated clock replays a stored day
        self._events: queue.Queue[OrderUpdate] = queue.Queue()
        self._printed: dict[tuple[str, datetime], set[str]] = {}  # (symbol, bar start) -> orders traded at its open
        self.start_cash = cash  # the account opens with it at its first order or bar: looking changes nothing
        self._liquidity: dict[tuple[str, date], tuple[float, float]] = {}  # (symbol, session) -> (ADV, sigma)

    def _open_account(self, con) -> None:
        con.execute("INSERT INTO sim_account VALUES (?, ?, ?, NULL, NULL, ?) ON CONFLICT DO NOTHING",
                    [ACCOUNT, self.start_cash, self.start_cash, self.now()])

    # -- orders ------------------------------------------------------------------------------

    def submit(self, order: Order) -> BrokerOrder:
        now = self.now()
        with self.warehouse.write() as con:
            self._open_account(con)
            if con.execute("SELECT 1 FROM sim_orders WHERE client_order_id = ?", [order.client_order_id]).fetchone():
                raise DuplicateOrderId(f"client order id {order.client_order_id} was used before",
                                       broker=self.name, client_order_id=order.client_order_id)
            price = _last_price(con, order.symbol)
            if price is None:
                raise InvalidOrder(f"no market in {order.symbol}: the simulator has no price for it",
                                   broker=self.name, client_order_id=order.client_order_id)
            if order.side is Side.BUY:
                power = _cash(con) - _book(con).working_buys
                need = order.qty * (order.limit_price or order.stop_price or price)
                if need > power + 1e-9:
                    raise InsufficientBuyingPower(f"order needs {need:,.2f}, buying power is {power:,.2f}",
                                                  broker=self.name, client_order_id=order.client_order_id)
            else:
                free = _held(con).get(order.symbol, 0.0) - _working_sells(con, order.symbol)
                if order.qty > free + 1e-9:
                    raise NotShortable(f"the simulator does not sell short: {free:g} {order.symbol} free to sell",
                                       broker=self.name, client_order_id=order.client_order_id)
            self._insert(con, order, parent=None, at=now)
            state = _order(con, order.client_order_id)
        self._events.put(OrderUpdate(OrderEvent.NEW, state, now))
        return state

    def _insert(self, con, order: Order, *, parent: str | None, at: datetime) -> None:
        con.execute(
            f"INSERT INTO sim_orders ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, 'new', 0, 0, 0, '', ?, ?)",
            [order.client_order_id, f"sim-{uuid.uuid4().hex[:16]}", order.symbol, order.side.value, order.qty,
             order.order_type.value, order.time_in_force.value, order.limit_price, order.stop_price,
             order.take_profit_price, order.stop_loss_price, parent, at, at])

    def cancel(self, client_order_id: str) -> BrokerOrder:
        now = self.now()
        with self.warehouse.write() as con:
            state = _order(con, client_order_id)
            if state is None:
                raise InvalidOrder(f"no order {client_order_id}", broker=self.name, client_order_id=client_order_id)
            if not state.is_open:
                return state  # filled or closed meanwhile: nothing to cancel
            con.execute("UPDATE sim_orders SET status = 'canceled', reason = 'canceled by request', updated_at = ? "
                        "WHERE client_order_id = ?", [now, client_order_id])
            state = _order(con, client_order_id)
        self._events.put(OrderUpdate(OrderEvent.CANCELED, state, now))
        return state

    def replace(self, client_order_id: str, change: Replacement) -> BrokerOrder:
        now = self.now()
        with self.warehouse.write() as con:
            state = _order(con, client_order_id)
            if state is None or not state.is_open:
                raise InvalidOrder(f"order {client_order_id} is not working", broker=self.name,
                                   client_order_id=client_order_id)
            if change.qty is not None and change.qty < state.filled_qty:
                raise InvalidOrder(f"cannot cut {client_order_id} below the {state.filled_qty:g} already filled",
                                   broker=self.name, client_order_id=client_order_id)
            sets = ", ".join(f"{name} = ?" for name in change.changes)
            con.execute(f"UPDATE sim_orders SET {sets}, updated_at = ? WHERE client_order_id = ?",
                        [getattr(change, n) for n in change.changes] + [now, client_order_id])
            state = _order(con, client_order_id)
        self._events.put(OrderUpdate(OrderEvent.REPLACED, state, now))
        return state

    # -- the market ------------------------------------------------------------------------

    def on_open(self, bar: Bar) -> list[Fill]:
        """Trade the working orders of a daily bar's symbol against its opening print (the
        open only), once the bar has opened: a market-on-open order fills then, as it would at
        a real broker, not when the day's bar ends. The bar itself, when it ends, no longer
        trades the orders that traded at its open (they had their turn at this bar)."""
        series = _one_bar(bar, ny_day(bar.ts), get_calendar(), opening_print=True)
        return self._trade(bar, series, opening_print=True)

    def on_bar(self, bar: Bar) -> list[Fill]:
        """Trade the bar's symbol's working orders against `bar`; its close becomes the last price."""
        series = _one_bar(bar, ny_day(bar.ts), get_calendar())
        return self._trade(bar, series, opening_print=False)

    def on_bars(self, bars: list[Bar]) -> list[Fill]:
        """`on_bar` for each of `bars` (in time order) in one transaction; a symbol with no
        working order only takes its last price, all of them in one statement."""
        made: list[Fill] = []
        if not bars:
            return made
        with self.warehouse.write() as con:  # each on_bar joins this transaction
            # The account's session and the symbols with a working order, in one statement.
            found = con.execute("SELECT 0, session, NULL FROM sim_account WHERE account = ? UNION ALL SELECT 1, NULL, "
                                "symbol FROM sim_orders WHERE status IN ('new', 'partially_filled')", [ACCOUNT]).fetchall()
            opened = [session for kind, session, _ in found if kind == 0]
            if not opened:
                self._open_account(con)
            rolled, working = (opened or [None])[0], {symbol for kind, _, symbol in found if kind == 1}
            self._measure(con, {(b.symbol, ny_day(b.ts)) for b in bars if b.symbol in working})
            marks: dict[str, Bar] = {}
            for bar in bars:
                day = ny_day(bar.ts)
                new_day = rolled is None or day > rolled
                if new_day:  # the day's equity counts every price before its first bar
                    _mark(con, marks)
                if bar.symbol in working:
                    made += self.on_bar(bar)  # it rolls the day itself
                else:
                    if new_day:
                        for event in self._roll_session(con, day):
                            self._events.put(event)
                    self._printed.pop((bar.symbol, bar.ts), None)
                    if bar.symbol not in marks or bar.end > marks[bar.symbol].end:  # one row a symbol: its newest
                        marks[bar.symbol] = bar
                rolled = day if new_day else rolled
            _mark(con, marks)
        return made

    def marked_through(self) -> dict[str, datetime]:
        """Each symbol's newest bar end the simulator has traded: a restarted session hands it
        the bars after that, in order."""
        with self.warehouse.write() as con:
            return dict(con.execute("SELECT symbol, ts FROM sim_prices").fetchall())

    def _trade(self, bar: Bar, series: SymbolBars, *, opening_print: bool) -> list[Fill]:
        day = ny_day(bar.ts)
        events: list[OrderUpdate] = []
        made: list[Fill] = []
        key = (bar.symbol, bar.ts)
        traded_at_open = self._printed.setdefault(key, set()) if opening_print else self._printed.pop(key, set())
        with self.warehouse.write() as con:
            self._open_account(con)
            events += self._roll_session(con, day)
            series = self._measured(con, series, day)
            # A bar trades the orders placed by its start; a closing auction, those placed before its end.
            rows = con.execute(
                f"SELECT {_COLUMNS} FROM sim_orders WHERE symbol = ? AND status IN ('new', 'partially_filled') "
                "AND (submitted_at <= ? OR (time_in_force = 'cls' AND submitted_at < ?)) "
                "ORDER BY submitted_at, client_order_id", [bar.symbol, bar.ts, bar.end]).fetchall()
            for row in rows:
                state = _state(row)
                if state.client_order_id in traded_at_open and not opening_print:
                    continue
                session = row[12]
                if state.time_in_force is TimeInForce.DAY and session is not None and day > session:
                    events.append(self._close(con, state, "expired", "a DAY order dies with its session"))
                    continue
                if state.time_in_force is TimeInForce.DAY and session is None:
                    con.execute("UPDATE sim_orders SET session = ? WHERE client_order_id = ?", [day, state.client_order_id])
                # A stop that already traded is a market order for its rest (as in the backtest).
                kind = OrderType.MARKET if state.order_type is OrderType.STOP and state.filled_qty else state.order_type
                spec = OrderSpec(state.client_order_id, state.symbol, state.side, state.remaining, kind,
                                 state.time_in_force, to_us(state.submitted_at), state.limit_price, state.stop_price)
                fills = fill_order(series, spec, self.costs)
                if fills and opening_print:
                    traded_at_open.add(state.client_order_id)
                for row_fill in fills:
                    fill, update = self._apply(con, state, row_fill.qty, row_fill.price,
                                               datetime.fromtimestamp(row_fill.ts_us / 1e6, UTC))
                    made.append(fill)
                    events.append(update)
                    state = update.order
                    if state.status is OrderStatus.FILLED:
                        events += self._after_fill(con, state, bar.end)
                    else:
                        self._shrink_sibling(con, state)
            # A bar that arrives late trades its orders but does not take the last price back in
            # time; positions are marked at bar closes, as the backtest marks them.
            if not opening_print:
                _mark(con, {bar.symbol: bar})
        for event in events:
            self._events.put(event)
        return made

    def _measured(self, con, series: SymbolBars, day: date) -> SymbolBars:
        """`series` with its name's ADV and volatility before `day`, when the costs price by them."""
        if self.costs.slippage.model is None:
            return series
        key = (series.symbol, day)
        if key not in self._liquidity:  # the sessions before today do not change during it
            row = stored_liquidity(con, [series.symbol], [day]).row(0, named=True)
            self._liquidity[key] = (row["adv_dollars"], row["sigma_daily"])
        adv, sigma = self._liquidity[key]
        return replace(series, adv_dollars=np.array([adv], dtype=float), sigma_daily=np.array([sigma], dtype=float))

    def _measure(self, con, wanted: set[tuple[str, date]]) -> None:
        """`_measured`'s liquidity of many (symbol, session) pairs at once, before a batch trades:
        DuckDB builds no frame on a connection whose last row a trade has left unread."""
        wanted -= self._liquidity.keys()
        if self.costs.slippage.model is None or not wanted:
            return
        frame = stored_liquidity(con, sorted({s for s, _ in wanted}), sorted({d for _, d in wanted}))
        for row in frame.iter_rows(named=True):
            self._liquidity.setdefault((row["symbol"], row["session"]), (row["adv_dollars"], row["sigma_daily"]))

    def _apply(self, con, state: BrokerOrder, qty: float, price: float, ts: datetime) -> tuple[Fill, OrderUpdate]:
        """Book one execution: the order's totals, its commission so far, cash, the fill row."""
        (n, filled_value, charged) = con.execute(
            "SELECT (SELECT count(*) FROM sim_fills WHERE client_order_id = ?), filled_value, charged "
            "FROM sim_orders WHERE client_order_id = ?", [state.client_order_id, state.client_order_id]).fetchone()
        filled, value = state.filled_qty + qty, filled_value + qty * price
        commission = self.costs.commission
        total = commission.commission(filled, value) + commission.fees(state.side, filled, value)
        charge = max(0.0, total - charged)  # the order's commission grows with what it filled
        signed = qty if state.side is Side.BUY else -qty
        done = filled >= state.qty - 1e-9
        con.execute("UPDATE sim_orders SET filled_qty = ?, filled_value = ?, charged = ?, status = ?, updated_at = ? "
                    "WHERE client_order_id = ?",
                    [filled, value, charged + charge, "filled" if done else "partially_filled", ts, state.client_order_id])
        con.execute("UPDATE sim_account SET cash = cash - ?, updated_at = ? WHERE account = ?",
                    [signed * price + charge, ts, ACCOUNT])
        fill = Fill(broker=self.name, fill_id=f"{state.broker_order_id}-{n + 1}", client_order_id=state.client_order_id,
                    symbol=state.symbol, side=state.side, ts=ts, qty=qty, price=price, commission=charge)
        con.execute("INSERT INTO sim_fills VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [fill.fill_id, fill.client_order_id, fill.symbol, fill.side.value, ts, qty, price, charge])
        after = _order(con, state.client_order_id)
        return fill, OrderUpdate(OrderEvent.FILL if done else OrderEvent.PARTIAL_FILL, after, ts, fill)

    def _after_fill(self, con, state: BrokerOrder, at: datetime) -> list[OrderUpdate]:
        """A filled bracket entry places its legs; a filled leg cancels its sibling (one cancels the other)."""
        row = con.execute("SELECT take_profit_price, stop_loss_price, parent FROM sim_orders WHERE client_order_id = ?",
                          [state.client_order_id]).fetchone()
        take_profit, stop_loss, parent = row
        events = []
        if parent is not None:
            for (sibling,) in con.execute("SELECT client_order_id FROM sim_orders WHERE parent = ? AND client_order_id <> ? "
                                          "AND status IN ('new', 'partially_filled')",
                                          [parent, state.client_order_id]).fetchall():
                events.append(self._close(con, _order(con, sibling), "canceled", "its bracket sibling filled"))
        elif take_profit is not None:
            exit_side = Side.SELL if state.side is Side.BUY else Side.BUY
            for suffix, kind, limit, stop in ((TAKE_PROFIT, OrderType.LIMIT, take_profit, None),
                                              (STOP_LOSS, OrderType.STOP, None, stop_loss)):
                leg = Order(client_order_id=leg_id(state.client_order_id, suffix), mode=self.mode, broker=self.name,
                            strategy="bracket", symbol=state.symbol, side=exit_side, qty=state.filled_qty,
                            order_type=kind, time_in_force=TimeInForce.GTC, created_at=at, limit_price=limit,
                            stop_price=stop)
                self._insert(con, leg, parent=state.client_order_id, at=at)
                events.append(OrderUpdate(OrderEvent.NEW, _order(con, leg.client_order_id), at))
        return events

    def _shrink_sibling(self, con, leg: BrokerOrder) -> None:
        """A bracket leg filled in part: its sibling covers only the shares still held."""
        (parent,) = con.execute("SELECT parent FROM sim_orders WHERE client_order_id = ?", [leg.client_order_id]).fetchone()
        if parent is not None:
            (bought,) = con.execute("SELECT filled_qty FROM sim_orders WHERE client_order_id = ?", [parent]).fetchone()
            con.execute("UPDATE sim_orders SET qty = greatest(filled_qty, ? - ?) WHERE parent = ? AND "
                        "client_order_id <> ? AND status IN ('new', 'partially_filled')",
                        [bought, leg.filled_qty, parent, leg.client_order_id])

    def _close(self, con, state: BrokerOrder, status: str, reason: str) -> OrderUpdate:
        now = self.now()
        con.execute("UPDATE sim_orders SET status = ?, reason = ?, updated_at = ? WHERE client_order_id = ?",
                    [status, reason, now, state.client_order_id])
        event = OrderEvent.EXPIRED if status == "expired" else OrderEvent.CANCELED
        return OrderUpdate(event, _order(con, state.client_order_id), now)

    def _roll_session(self, con, day: date) -> list[OrderUpdate]:
        """On a new New York day (its first bar), the equity it starts with becomes the account's
        last equity, and DAY orders of earlier sessions expire."""
        # Read out (fetchall): DuckDB builds no frame (`_measured`'s) on a connection whose last row is unread.
        [(session,)] = con.execute("SELECT session FROM sim_account WHERE account = ?", [ACCOUNT]).fetchall()
        if session is None or day > session:
            equity = _cash(con) + _book(con).market_value
            con.execute("UPDATE sim_account SET session = ?, last_equity = ? WHERE account = ?", [day, equity, ACCOUNT])
            ended = con.execute("SELECT client_order_id FROM sim_orders WHERE time_in_force = 'day' AND status IN "
                                "('new', 'partially_filled') AND session IS NOT NULL AND session < ?", [day]).fetchall()
            return [self._close(con, _order(con, cid), "expired", "a DAY order dies with its session") for (cid,) in ended]
        return []

    # -- queries ------------------------------------------------------------------------------

    def order(self, client_order_id: str) -> BrokerOrder | None:
        with self.warehouse.write() as con:
            return _order(con, client_order_id)

    def open_orders(self) -> list[BrokerOrder]:
        return self._orders("status IN ('new', 'partially_filled')", [])

    def orders(self, since: datetime) -> list[BrokerOrder]:
        return self._orders("submitted_at >= ?", [since])

    def _orders(self, where: str, params: list) -> list[BrokerOrder]:
        with self.warehouse.write() as con:
            rows = con.execute(f"SELECT {_COLUMNS} FROM sim_orders WHERE {where} ORDER BY submitted_at, client_order_id",
                               params).fetchall()
        return [_state(r) for r in rows]

    def fills(self, since: datetime) -> list[Fill]:
        with self.warehouse.write() as con:
            rows = con.execute("SELECT fill_id, client_order_id, symbol, side, ts, qty, price, commission FROM sim_fills "
                               "WHERE ts >= ? ORDER BY ts, fill_id", [since]).fetchall()
        return [Fill(broker=self.name, fill_id=r[0], client_order_id=r[1], symbol=r[2], side=Side(r[3]), ts=r[4],
                     qty=r[5], price=r[6], commission=r[7]) for r in rows]

    def positions(self) -> list[Position]:
        return self.book()[1]

    def account(self) -> Account:
        return self.book()[0]

    def book(self) -> tuple[Account, list[Position]]:
        now = self.now()
        with self.warehouse.write() as con:  # a read: the new day is rolled in by its first bar, not by a look
            book = _book(con)  # one statement
        cash, last_equity, session = book.account or (self.start_cash, None, None)
        value, power = book.market_value, max(0.0, cash - book.working_buys)
        if session is not None and ny_day(now) > session:
            last_equity = cash + value  # what the day's first bar will record as the equity it started with
        account = Account(broker=self.name, as_of=now, equity=cash + value, cash=cash, buying_power=power,
                          last_equity=last_equity)
        return account, [Position(symbol=s, qty=h, avg_price=c / h, as_of=now)
                         for s, (h, c) in book.holdings.items() if abs(h) > 1e-9]

    def updates(self, timeout: float = 0.0) -> list[OrderUpdate]:
        out = []
        try:
            out.append(self._events.get(timeout=timeout) if timeout > 0 else self._events.get_nowait())
            while True:
                out.append(self._events.get_nowait())
        except queue.Empty:
            return out

    def clock(self) -> Clock:
        calendar = get_calendar()
        now = self.now()
        session = calendar.session_at(now)
        is_open = calendar.is_open(now)
        next_open = calendar.next_open(now)
        next_close = session.close if session is not None and now < session.close else \
            calendar.session(ny_day(next_open)).close
        return Clock(timestamp=now, is_open=is_open, next_open=next_open, next_close=next_close)


# -- the book in SQL -----------------------------------------------------------------------


def _state(row: tuple) -> BrokerOrder:
    (cid, broker_id, symbol, side, qty, order_type, tif, limit_price, stop_price, _tp, _sl, _parent, _session, status,
     filled_qty, filled_value, _charged, reason, submitted_at, updated_at) = row
    return BrokerOrder(client_order_id=cid, broker_order_id=broker_id, symbol=symbol, side=side, qty=qty,
                       order_type=order_type, time_in_force=tif, status=status, filled_qty=filled_qty,
                       avg_fill_price=filled_value / filled_qty if filled_qty else None, limit_price=limit_price,
                       stop_price=stop_price, submitted_at=submitted_at, updated_at=updated_at, reason=reason)


def _order(con, client_order_id: str) -> BrokerOrder | None:
    row = con.execute(f"SELECT {_COLUMNS} FROM sim_orders WHERE client_order_id = ?", [client_order_id]).fetchone()
    return _state(row) if row else None


def _last_price(con, symbol: str) -> float | None:
    row = con.execute("SELECT price FROM sim_prices WHERE symbol = ?", [symbol]).fetchone()
    return row[0] if row else None


def _mark(con, marks: dict[str, Bar]) -> None:
    """Each bar's close becomes its symbol's last price, unless a newer one is there; `marks` is emptied."""
    if not marks:
        return
    # An UPDATE costs a half to a third of DuckDB's upsert (one symbol's, without a join, the least):
    # the upsert is left for a symbol's first price, or an old bar.
    if len(marks) == 1:
        (bar,) = marks.values()
        update = ("UPDATE sim_prices SET price = ?, ts = ? WHERE symbol = ? AND ts < ? RETURNING symbol",
                  [bar.close, bar.end, bar.symbol, bar.end])
    else:
        update = (f"UPDATE sim_prices AS p SET price = v.price, ts = v.ts FROM (VALUES {', '.join(['(?, ?, ?)'] * len(marks))}) "
                  "AS v(symbol, price, ts) WHERE p.symbol = v.symbol AND v.ts > p.ts RETURNING p.symbol",
                  [v for bar in marks.values() for v in (bar.symbol, bar.close, bar.end)])
    updated = {symbol for (symbol,) in con.execute(*update).fetchall()}
    rest = [bar for symbol, bar in marks.items() if symbol not in updated]
    if rest:
        con.execute("INSERT INTO sim_prices VALUES " + ", ".join(["(?, ?, ?)"] * len(rest)) + " ON CONFLICT (symbol) "
                    "DO UPDATE SET price = excluded.price, ts = excluded.ts WHERE excluded.ts > sim_prices.ts",
                    [v for bar in rest for v in (bar.symbol, bar.close, bar.end)])
    marks.clear()


def _cash(con) -> float:
    return con.execute("SELECT cash FROM sim_account WHERE account = ?", [ACCOUNT]).fetchone()[0]


def _held(con) -> dict[str, float]:
    rows = con.execute("SELECT symbol, sum(CASE WHEN side = 'buy' THEN qty ELSE -qty END) FROM sim_fills "
                       "GROUP BY symbol").fetchall()
    return dict(rows)


# The book in one statement, as rows to add up: the account row, every fill, the last prices,
# and the buys still working (their shares left, at their limit or stop if any). Four small
# scans in one statement cost about half of a statement that joins and groups them.
_BOOK = ("SELECT 0, NULL, cash, last_equity, session, NULL, NULL FROM sim_account WHERE account = ? "
         "UNION ALL SELECT 1, symbol, CASE WHEN side = 'buy' THEN qty ELSE -qty END, price, NULL, ts, fill_id "
         "FROM sim_fills "
         "UNION ALL SELECT 2, symbol, price, NULL, NULL, NULL, NULL FROM sim_prices "
         "UNION ALL SELECT 3, symbol, qty - filled_qty, coalesce(limit_price, stop_price), NULL, NULL, NULL "
         "FROM sim_orders WHERE side = 'buy' AND status IN ('new', 'partially_filled')")


@dataclass(frozen=True)
class _Book:
    """The account row (None before the first order or bar), the holdings and what they are worth."""

    account: tuple[float, float | None, date | None] | None  # cash, last equity, session
    holdings: dict[str, tuple[float, float]]  # symbol -> (shares, their average cost in all)
    market_value: float  # shares held at their last prices
    working_buys: float  # what the buys still working would cost: at their limit or stop, else the last price


def _book(con) -> _Book:
    account, fills, prices, buys = None, [], {}, []
    for kind, symbol, x, y, session, ts, fill_id in con.execute(_BOOK, [ACCOUNT]).fetchall():
        if kind == 0:
            account = (x, y, session)
        elif kind == 1:
            fills.append((symbol, ts, fill_id, x, y))
        elif kind == 2:
            prices[symbol] = x
        else:
            buys.append((symbol, x, y))
    holdings: dict[str, tuple[float, float]] = {}
    for symbol, _, _, signed, price in sorted(fills, key=lambda f: f[:3]):
        held, cost = holdings.get(symbol, (0.0, 0.0))
        if signed > 0:
            held, cost = held + signed, cost + signed * price
        else:  # average cost: a sale takes its shares out at the average price
            cost -= cost / held * -signed if held else 0.0
            held += signed
        holdings[symbol] = (held, cost)
    value = sum(held * prices[symbol] for symbol, (held, _) in holdings.items() if symbol in prices)
    cost = sum(left * (price if price is not None else prices[symbol]) for symbol, left, price in buys
               if price is not None or symbol in prices)
    return _Book(account, holdings, float(value), float(cost))


def _working_sells(con, symbol: str) -> float:
    (qty,) = con.execute("SELECT coalesce(sum(qty - filled_qty), 0) FROM sim_orders WHERE symbol = ? AND side = 'sell' "
                         "AND status IN ('new', 'partially_filled') AND parent IS NULL", [symbol]).fetchone()
    return float(qty)


def _one_bar(bar: Bar, day: date, calendar, *, opening_print: bool = False) -> SymbolBars:
    """`bar` in the arrays `fill_order` reads, with its session's auction marks; as an
    `opening_print`, only its open (no range, no close)."""
    session = calendar.session(day) if calendar.is_session(day) else None
    one = lambda v: np.array([v])  # noqa: E731
    high, low, close = (bar.open, bar.open, bar.open) if opening_print else (bar.high, bar.low, bar.close)
    closes = session is not None and bar.end == session.close and not opening_print
    return SymbolBars(symbol=bar.symbol, ts=one(to_us(bar.ts)), end=one(to_us(bar.end)), open=one(bar.open),
                      high=one(high), low=one(low), close=one(close), volume=one(bar.volume),
                      session=one(day.toordinal()), opens_session=one(session is not None and bar.ts == session.open),
                      closes_session=one(closes), adv_dollars=one(math.nan), sigma_daily=one(math.nan))
