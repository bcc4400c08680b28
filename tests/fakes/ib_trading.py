"""Trading for the fake IB Gateway: orders, executions, positions and the account, on the wire
as ib_async 2.1.0 decodes them at server version 178 (the team's verified reference fake of
the gateway, shared reference material, is the model of every layout below).

'|' stands for the NUL separator; C is the client, S the gateway:

    C: 3|orderId|<12 contract fields>|secIdType|secId|action|qty|orderType|lmt|aux|tif|ocaGroup|
       account|openClose|origin|orderRef|transmit|parentId|...|ocaType (f[46])|...   placeOrder
    S: 5|openOrder (127 fields) and 3|orderId|status|filled|remaining|avg|permId|parentId|last|
       clientId|whyHeld|mktCapPrice, for PreSubmitted then Submitted
    S: 11|-1|orderId|<11 contract fields>|execId|time|acct|exch|BOT/SLD|shares|price|permId|
       clientId|0|cumQty|avgPrice|orderRef|evRule|evMult|modelCode|lastLiquidity|pendingPriceRevision,
       then openOrder + orderStatus, then 59|1|execId|commission|USD|realizedPnl|yield|yieldDate
    S: 4|2|orderId|code|message|       201 rejection (margin, short), 200 unknown symbol, 202 cancelled
    C: 4|1|orderId|time  cancelOrder;  5|1 reqOpenOrders -> openOrder/orderStatus... 53|1
    C: 99|apiOnly  reqCompletedOrders -> 101|completedOrder (no orderId: permId identifies)... 102
    C: 7|3|reqId|filter...  reqExecutions -> execDetails + commissionReport per fill... 55|1|reqId
    C: 61|1 reqPositions -> 61|3|acct|<contract>|pos|avgCost (16 fields)... 62|1
    C: 6|2|1|acct reqAccountUpdates -> 6|2|tag|val|ccy|acct..., 7|8|portfolio (20 fields)..., 8, 54
    C: 62|1|reqId|group|tags reqAccountSummary -> 63|1|reqId|acct|tag|val|ccy... 64|1|reqId

Orders and executions belong to the gateway, not to a connection: a client that reconnects
with the same client id finds its open orders (reqOpenOrders), its finished ones
(reqCompletedOrders) and its executions (reqExecutions), as after a real restart.
All state lives on the gateway's event loop; test controls run there through `call`.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tests.fakes.ib_gateway import error_frame, frame

if TYPE_CHECKING:
    from tests.fakes.ib_gateway import FakeIBGateway, _Conn, _Stock

UNSET_DOUBLE = "1.7976931348623157E308"
UNSET_INT = "2147483647"
WORKING = ("PreSubmitted", "Submitted")
MARGIN_REJECTION = ("Order rejected - reason:YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN THE DESIRED POSITION "
                    "YOUR EQUITY WITH LOAN VALUE [{cash:.2f} USD] MUST EXCEED THE INITIAL MARGIN [{need:.2f} USD]")
SHORT_REJECTION = "Order rejected - reason:Shares of {symbol} are not available for short sale."
UNKNOWN_SYMBOL = "No security definition has been found for the request"
ORDER_TYPES = ("MKT", "LMT", "STP", "STP LMT", "MOC", "LOC")


@dataclass
class FakeOrder:
    """An order as the gateway holds it."""

    order_id: int
    client_id: int
    perm_id: int
    stock: _Stock
    action: str
    qty: float
    order_type: str
    lmt: float | None
    aux: float | None
    tif: str
    account: str
    order_ref: str
    oca_group: str
    oca_type: int
    parent_id: int
    outside_rth: bool
    status: str = "PreSubmitted"
    filled: float = 0.0
    avg_price: float = 0.0
    last_price: float = 0.0
    held: bool = False  # a bracket leg waiting for its parent's fill, or a group not yet transmitted
    triggered: bool = False  # a stop-limit whose stop was reached
    completed_at: str = ""

    @property
    def remaining(self) -> float:
        return max(0.0, self.qty - self.filled)

    @property
    def working(self) -> bool:
        return self.status in WORKING


@dataclass(frozen=True)
class FakeExecution:
    exec_id: str
    order: FakeOrder
    qty: float
    price: float
    time: str
    cum_qty: float
    avg_price: float
    commission: float


@dataclass
class TradingDesk:
    """The trading side of a FakeIBGateway, with controls for tests."""

    gw: FakeIBGateway
    cash: float = 100_000.0
    commission_per_share: float = 0.005
    min_commission: float = 1.0
    prices: dict[str, float] = field(default_factory=dict)
    orders: list[FakeOrder] = field(default_factory=list)
    executions: list[FakeExecution] = field(default_factory=list)
    positions: dict[str, list[float]] = field(default_factory=dict)  # symbol -> [qty, avg cost]
    placed: list[list[str]] = field(default_factory=list)  # every placeOrder's fields, as received
    rejections: list[tuple[str, int, str]] = field(default_factory=list)  # (orderRef, code, message)
    not_shortable: set[str] = field(default_factory=set)
    next_order_id: int = 1
    drop_after_next_place: bool = False
    _reject_next: list[tuple[int, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.start_cash = self.cash
        self._perm = itertools.count(1_000_001)
        self._exec = itertools.count(1)

    # ------------------------------------------------------------------ test controls
    def call(self, fn: Any, *args: Any) -> Any:
        """Run fn(*args) on the gateway's loop and return its result."""

        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.gw.loop).result(5)

    def set_price(self, symbol: str, price: float) -> None:
        """The market trades at `price`: working orders it reaches fill."""
        self.call(self._set_price, symbol, price)

    def fill(self, ref: str | int, qty: float | None = None) -> None:
        """Execute `qty` (default: the rest) of a working order, found by orderRef or orderId."""
        self.call(self._fill, ref, qty)

    def open_auction(self) -> None:
        """The opening auction: OPG orders fill at the last price (limits if they cross)."""
        self.call(self._auction, "OPG")

    def close_auction(self) -> None:
        """The closing auction: MOC / LOC orders fill at the last price (LOC if it crosses)."""
        self.call(self._auction, "CLOSE")

    def reject_next(self, code: int, message: str) -> None:
        """The next accepted-looking placeOrder gets error `code` instead."""
        self.call(self._reject_next.append, (code, message))

    def drop_clients(self) -> None:
        """Close every client socket now (gateway restart, network blip)."""
        self.call(self._drop_all)

    def fail_after_next_place(self) -> None:
        """The next placeOrder is registered, then the socket drops before any answer."""
        self.call(setattr, self, "drop_after_next_place", True)

    def system_message(self, code: int, message: str) -> None:
        """A reqId -1 message to every client, e.g. 1100 (IB link lost) or 1102 (restored)."""
        self.call(self._broadcast, error_frame(-1, code, message))

    def submissions(self, order_ref: str) -> int:
        """How many orders with this orderRef the gateway accepted."""
        return self.call(lambda: sum(1 for o in self.orders if o.order_ref == order_ref))

    def received(self, order_ref: str) -> list[dict[str, str]]:
        """The placeOrder messages for this orderRef (and its legs), as named wire fields."""
        return self.call(lambda: [_named(f) for f in self.placed if f[26].startswith(order_ref)])

    def order(self, ref: str | int) -> FakeOrder | None:
        return self.call(self._find, ref)

    def mute(self, message_id: int) -> None:
        """Never answer requests with this message id (a hung gateway) until `unmute`."""
        self.call(setattr, self, f"m{message_id}", lambda conn, f: None)

    def unmute(self, message_id: int) -> None:
        self.call(self.__dict__.pop, f"m{message_id}", None)

    def refuse_next(self, message_id: int, code: int, message: str) -> None:
        """Answer the next request with this message id (one carrying a reqId) with error `code`."""
        name = f"m{message_id}"

        def refuse(conn: _Conn, f: list[str]) -> None:
            self.__dict__.pop(name, None)
            conn.send(error_frame(int(f[2]), code, message))

        self.call(setattr, self, name, refuse)

    # ----------------------------------------------------------------- message handlers
    # Called by the gateway's connection as handler(conn, fields); names are m<message id>.
    def m3(self, conn: _Conn, f: list[str]) -> None:  # placeOrder
        self.place(conn, f)

    def m4(self, conn: _Conn, f: list[str]) -> None:  # cancelOrder: 4, 1, orderId, manualCancelOrderTime
        order_id = int(f[2])
        o = self._by_key(conn.client_id, order_id)
        if o is None:
            conn.send(error_frame(order_id, 10147, f"OrderId {order_id} that needs to be cancelled is not found."))
        elif not o.working:
            conn.send(error_frame(order_id, 10148, f"OrderId {order_id} that needs to be cancelled cannot be "
                                                   f"cancelled, state: {o.status}."))
        else:
            conn.send(self._status_frame(o, "PendingCancel"))
            self._cancel(o, "Order Canceled - reason:")

    def m5(self, conn: _Conn, f: list[str]) -> None:  # reqOpenOrders: this client's working orders
        self._send_open(conn, lambda o: o.client_id == conn.client_id)

    def m16(self, conn: _Conn, f: list[str]) -> None:  # reqAllOpenOrders
        self._send_open(conn, lambda o: True)

    def m99(self, conn: _Conn, f: list[str]) -> None:  # reqCompletedOrders: 99, apiOnly
        done = b"".join(self._completed_frame(o) for o in self.orders if o.status in ("Filled", "Cancelled"))
        conn.send(done + frame(102))

    def m7(self, conn: _Conn, f: list[str]) -> None:  # reqExecutions: 7, 3, reqId, filter...
        req_id = int(f[2])
        out = b"".join(self._exec_frame(req_id, e) + self._commission_frame(e) for e in self.executions)
        conn.send(out + frame(55, 1, req_id))

    def m61(self, conn: _Conn, f: list[str]) -> None:  # reqPositions (and keep them coming)
        conn.positions_sub = True  # type: ignore[attr-defined]
        out = b"".join(self._position_frame(s) for s in self.positions)
        conn.send(out + frame(62, 1))

    def m64(self, conn: _Conn, f: list[str]) -> None:  # cancelPositions
        conn.positions_sub = False  # type: ignore[attr-defined]

    def m6(self, conn: _Conn, f: list[str]) -> None:  # reqAccountUpdates: 6, 2, subscribe, acctCode
        conn.account_sub = f[2] == "1"  # type: ignore[attr-defined]
        if conn.account_sub:  # type: ignore[attr-defined]
            conn.send(self._account_frames() + frame(54, 1, self.gw.account))

    def m76(self, conn: _Conn, f: list[str]) -> None:  # reqAccountUpdatesMulti: 76, 1, reqId, acct, model, nlv
        out = b"".join(frame(73, 1, f[2], self.gw.account, f[4], tag, value, ccy)
                       for tag, (value, ccy) in self.account_values().items())
        conn.send(out + frame(74, 1, f[2]))

    def m62(self, conn: _Conn, f: list[str]) -> None:  # reqAccountSummary: 62, 1, reqId, group, tags
        tags = set(f[4].split(","))
        out = b"".join(frame(63, 1, f[2], self.gw.account, tag, value, ccy)
                       for tag, (value, ccy) in self.account_values().items() if tag in tags)
        conn.send(out + frame(64, 1, f[2]))

    def m63(self, conn: _Conn, f: list[str]) -> None:  # cancelAccountSummary
        pass

    def m8(self, conn: _Conn, f: list[str]) -> None:  # reqIds
        conn.send(frame(9, 1, self.next_order_id))

    def m58(self, conn: _Conn, f: list[str]) -> None:  # reqGlobalCancel
        for o in self.orders:
            if o.working:
                self._cancel(o, "Order Canceled - reason:")

    # ------------------------------------------------------------------------ orders
    def place(self, conn: _Conn, f: list[str]) -> None:
        """A new order (or a modification of one this client placed), checked as IB would."""
        order_id, symbol, sec_type, con_id = int(f[1]), f[3], f[4], int(f[2] or 0)
        action, qty, order_type = f[16], float(f[17] or 0), f[18]
        lmt, aux = _price(f[19]), _price(f[20])
        existing = self._by_key(conn.client_id, order_id)
        self.placed.append(f)
        if existing is not None:
            return self._modify(conn, existing, qty, lmt, aux)
        if order_id < self.next_order_id:
            return self._reject(conn, order_id, f[26], 103, "Duplicate order id")
        self.next_order_id = order_id + 1
        stock = self.gw.stocks.get(symbol)
        if stock is None or sec_type != "STK" or (con_id and con_id != stock.con_id):
            return self._reject(conn, order_id, f[26], 200, UNKNOWN_SYMBOL)
        if order_type not in ORDER_TYPES:
            return self._reject(conn, order_id, f[26], 387, f"Unsupported order type {order_type}")
        if self._reject_next:
            code, message = self._reject_next.pop(0)
            return self._reject(conn, order_id, f[26], code, message)
        price = self.prices.get(symbol, 0.0)
        need = qty * (lmt or price)
        if action == "BUY" and need > self.buying_power():
            return self._reject(conn, order_id, f[26], 201, MARGIN_REJECTION.format(cash=self.cash, need=need / 4))
        held_qty = self.positions.get(symbol, [0.0])[0]
        if action == "SELL" and symbol in self.not_shortable and qty > held_qty and int(f[28] or 0) == 0:
            return self._reject(conn, order_id, f[26], 201, SHORT_REJECTION.format(symbol=symbol))
        o = FakeOrder(order_id, conn.client_id, next(self._perm), stock, action, qty, order_type, lmt, aux,
                      f[21] or "DAY", f[23] or self.gw.account, f[26], f[22], int(f[46] or 0), int(f[28] or 0),
                      f[33] == "1")
        transmit = f[27] == "1"
        o.held = not transmit or o.parent_id != 0
        self.orders.append(o)
        if self.drop_after_next_place:
            self.drop_after_next_place = False
            return self._drop(conn)  # registered, but the answer never leaves
        conn.send(self._open_frame(o) + self._status_frame(o))
        o.status = "Submitted"
        conn.send(self._open_frame(o) + self._status_frame(o))
        if transmit:
            self._transmit_group(o)
        if not o.held:
            self._try_fill(o)

    def _transmit_group(self, last: FakeOrder) -> None:
        """The transmitting leg releases its untransmitted parent; legs work once the parent fills."""
        parent = self._by_key(last.client_id, last.parent_id) if last.parent_id else last
        if parent is None:
            return
        parent.held = False
        self._try_fill(parent)

    def _modify(self, conn: _Conn, o: FakeOrder, qty: float, lmt: float | None, aux: float | None) -> None:
        if not o.working:
            return self._reject(conn, o.order_id, o.order_ref, 104, "Can't modify a filled order")
        o.qty, o.lmt, o.aux = qty, lmt, aux
        conn.send(self._open_frame(o) + self._status_frame(o))
        self._try_fill(o)

    def _reject(self, conn: _Conn, order_id: int, ref: str, code: int, message: str) -> None:
        self.rejections.append((ref, code, message))
        conn.send(error_frame(order_id, code, message))

    def _try_fill(self, o: FakeOrder, auction: str = "") -> None:
        if not o.working or o.held:
            return
        price = self.prices.get(o.stock.symbol)
        if price is None:
            return
        at_close = o.order_type in ("MOC", "LOC")
        if (o.tif == "OPG" and auction != "OPG") or (at_close and auction != "CLOSE"):
            return
        buy = o.action == "BUY"
        if o.order_type in ("STP", "STP LMT") and not o.triggered:
            assert o.aux is not None
            o.triggered = price >= o.aux if buy else price <= o.aux
            if not o.triggered:
                return
        if o.order_type in ("MKT", "MOC", "STP"):
            self._execute(o, o.remaining, price)
        elif o.lmt is not None and (price <= o.lmt if buy else price >= o.lmt):
            self._execute(o, o.remaining, o.lmt)

    def _set_price(self, symbol: str, price: float) -> None:
        self.prices[symbol] = price
        for o in list(self.orders):
            if o.stock.symbol == symbol:
                self._try_fill(o)

    def _auction(self, which: str) -> None:
        for o in list(self.orders):
            self._try_fill(o, auction=which)

    def _fill(self, ref: str | int, qty: float | None) -> None:
        o = self._find(ref)
        if o is None or not o.working:
            raise ValueError(f"no working order {ref!r}")
        price = o.lmt if o.lmt is not None else self.prices[o.stock.symbol]
        self._execute(o, o.remaining if qty is None else qty, price)

    def _execute(self, o: FakeOrder, qty: float, price: float) -> None:
        """One execution: order, cash and position change; the owner hears of it if connected."""
        now = datetime.now(UTC)
        cum = o.filled + qty
        o.avg_price = (o.avg_price * o.filled + price * qty) / cum
        o.filled, o.last_price = cum, price
        if o.remaining <= 1e-9:
            o.status, o.completed_at = "Filled", _ib_time(now)
        fee = max(self.min_commission, qty * self.commission_per_share)
        e = FakeExecution(f"0000e0d5.{int(now.timestamp()):x}.01.01.{next(self._exec):04d}", o, qty, price,
                          _ib_time(now), cum, o.avg_price, fee)
        self.executions.append(e)
        sign = 1 if o.action == "BUY" else -1
        self.cash -= sign * qty * price + fee
        held, avg = self.positions.get(o.stock.symbol, [0.0, 0.0])
        new = held + sign * qty
        if sign > 0 and new > 0:
            avg = (held * avg + qty * price + fee) / new if held > 0 else (qty * price + fee) / qty
        self.positions[o.stock.symbol] = [new, avg if new else 0.0]
        owner = self.gw._clients.get(o.client_id)
        if owner is not None:
            owner.send(self._exec_frame(-1, e) + self._open_frame(o) + self._status_frame(o)
                       + self._commission_frame(e))
        self._push_holdings()
        if not new:
            del self.positions[o.stock.symbol]
        if o.status == "Filled":
            self._after_fill(o)

    def _after_fill(self, o: FakeOrder) -> None:
        """A bracket parent's fill starts its legs; a leg's fill cancels the rest of its OCA group."""
        for leg in self.orders:
            if leg.parent_id == o.order_id and leg.client_id == o.client_id and leg.held:
                leg.held = False
                self._try_fill(leg)
        if o.oca_group:
            for other in self.orders:
                if other is not o and other.oca_group == o.oca_group and other.working:
                    self._cancel(other, "Order Canceled - reason:OCA group member filled")

    def _cancel(self, o: FakeOrder, reason: str) -> None:
        o.status, o.completed_at = "Cancelled", _ib_time(datetime.now(UTC))
        owner = self.gw._clients.get(o.client_id)
        if owner is not None:
            owner.send(self._status_frame(o) + error_frame(o.order_id, 202, reason))
        for leg in self.orders:  # a cancelled parent takes its legs along
            if leg.parent_id == o.order_id and leg.client_id == o.client_id and leg.working:
                self._cancel(leg, reason)

    # ------------------------------------------------------------------- connections
    def _drop(self, conn: _Conn) -> None:
        self.gw._clients.pop(conn.client_id, None)
        conn.w.close()

    def _drop_all(self) -> None:
        for conn in list(self.gw._conns):
            self._drop(conn)

    def _broadcast(self, data: bytes) -> None:
        for conn in list(self.gw._clients.values()):
            conn.send(data)

    def _push_holdings(self) -> None:
        for conn in list(self.gw._clients.values()):
            if getattr(conn, "positions_sub", False):
                conn.send(b"".join(self._position_frame(s) for s in self.positions))
            if getattr(conn, "account_sub", False):
                conn.send(self._account_frames())

    def _send_open(self, conn: _Conn, want: Any) -> None:
        out = b"".join(self._open_frame(o) + self._status_frame(o) for o in self.orders if o.working and want(o))
        conn.send(out + frame(53, 1))

    # ------------------------------------------------------------------------ lookups
    def _by_key(self, client_id: int, order_id: int) -> FakeOrder | None:
        return next((o for o in self.orders if o.client_id == client_id and o.order_id == order_id), None)

    def _find(self, ref: str | int) -> FakeOrder | None:
        if isinstance(ref, int):
            return next((o for o in reversed(self.orders) if o.order_id == ref), None)
        return next((o for o in reversed(self.orders) if o.order_ref == ref), None)

    def buying_power(self) -> float:
        return max(0.0, 4 * self.cash)

    def account_values(self) -> dict[str, tuple[object, str]]:
        gross = sum(q * self.prices.get(s, 0.0) for s, (q, _) in self.positions.items())
        equity = self.cash + gross
        return {"AccountType": ("INDIVIDUAL", ""), "NetLiquidation": (equity, "USD"),
                "TotalCashValue": (self.cash, "USD"), "SettledCash": (self.cash, "USD"),
                "BuyingPower": (self.buying_power(), "USD"), "AvailableFunds": (self.cash, "USD"),
                "ExcessLiquidity": (self.cash, "USD"), "GrossPositionValue": (gross, "USD"),
                "EquityWithLoanValue": (equity, "USD"), "PreviousDayEquityWithLoanValue": (self.start_cash, "USD"),
                "InitMarginReq": (0.0, "USD"), "MaintMarginReq": (0.0, "USD")}

    # ----------------------------------------------------------------------- encoders
    def _open_frame(self, o: FakeOrder) -> bytes:
        """OPEN_ORDER (5) at v178: 127 fields, in ib_async's decoder order."""
        s = o.stock
        return frame(
            5, o.order_id, s.con_id, s.symbol, "STK", "", "0", "", "", "SMART", s.currency, s.symbol, "NMS",
            o.action, _num(o.qty), o.order_type, _px(o.lmt), _px(o.aux), o.tif, o.oca_group, o.account, "", 0,
            o.order_ref, o.client_id, o.perm_id, o.outside_rth, False, "0", "", "", "", "", "",  # ..faPercentage
            "", "", "", "", "", "0", "", "-1", "0", "", "", "", "", "",  # modelCode..stockRangeUpper
            UNSET_INT, False, False, False, "", o.oca_type, False, False, "",  # displaySize..nbboPriceCap
            o.parent_id, 0, "", "0", "", "",  # parentId..deltaNeutralAuxPrice
            False, "0", "", "", "", "", "",  # continuousUpdate..comboLegsDescrip
            0, 0, 0,  # combo legs, order combo legs, smart combo params
            "", "", "",  # scale init/subs level size, price increment
            "",  # hedgeType
            False, "", "", False, 0,  # optOutSmartRouting..deltaNeutralContract present
            "",  # algoStrategy
            False, False, o.status, *([UNSET_DOUBLE] * 9), "", "", "", "", "", False, False,  # ..randomizePrice
            0,  # conditions
            "None", "", "", "", "", "", "", "0", "", "", "", "", False, False, False, False,  # ..usePriceMgmtAlgo
            UNSET_INT, False, False,  # duration, postToAts, autoCancelParent
            "", "", "", "", "")  # minTradeQty..midOffsetAtHalf

    def _completed_frame(self, o: FakeOrder) -> bytes:
        """COMPLETED_ORDER (101) at v178: no orderId or clientId; permId names the order."""
        s = o.stock
        return frame(
            101, s.con_id, s.symbol, "STK", "", "0", "", "", "SMART", s.currency, s.symbol, "NMS",
            o.action, _num(o.qty), o.order_type, _px(o.lmt), _px(o.aux), o.tif, o.oca_group, o.account, "", 0,
            o.order_ref, o.perm_id, o.outside_rth, False, "0", "", "", "", "",  # ..faPercentage
            "", "", "", "", "", "0", "", "-1", "", "", "", "", "",  # modelCode..stockRangeUpper
            UNSET_INT, False, False, "", o.oca_type, 0, "", "0", "", "",  # displaySize..deltaNeutralAuxPrice
            False, "0", "", "", "",  # continuousUpdate..comboLegsDescrip
            0, 0, 0,  # combo legs, order combo legs, smart combo params
            "", "", "",  # scale init/subs level size, price increment
            "",  # hedgeType
            "", "", False, 0,  # clearingAccount, clearingIntent, notHeld, deltaNeutralContract present
            "",  # algoStrategy
            False, o.status, False, False,  # solicited, status, randomizeSize, randomizePrice
            0,  # conditions
            "", "", "", False, False, "", _num(o.filled), "", False, "", False, False, "",  # ..parentPermId
            o.completed_at, o.status,  # completedTime, completedStatus
            "", "", "", "", "")  # minTradeQty..midOffsetAtHalf

    def _status_frame(self, o: FakeOrder, status: str | None = None) -> bytes:
        return frame(3, o.order_id, status or o.status, _num(o.filled), _num(o.remaining), o.avg_price, o.perm_id,
                     o.parent_id, o.last_price, o.client_id, "", 0)

    def _exec_frame(self, req_id: int, e: FakeExecution) -> bytes:
        o, s = e.order, e.order.stock
        return frame(11, req_id, o.order_id, s.con_id, s.symbol, "STK", "", "0", "", "", "ISLAND", s.currency,
                     s.symbol, "NMS", e.exec_id, e.time, o.account, "ISLAND", "BOT" if o.action == "BUY" else "SLD",
                     _num(e.qty), e.price, o.perm_id, o.client_id, 0, _num(e.cum_qty), e.avg_price, o.order_ref,
                     "", "", "", 1, False)

    def _commission_frame(self, e: FakeExecution) -> bytes:
        return frame(59, 1, e.exec_id, e.commission, "USD", UNSET_DOUBLE, UNSET_DOUBLE, "")

    def _position_frame(self, symbol: str) -> bytes:
        s = self.gw.stocks[symbol]
        qty, avg = self.positions[symbol]
        return frame(61, 3, self.gw.account, s.con_id, s.symbol, "STK", "", "0.0", "", "", "", s.currency,
                     s.symbol, "NMS", _num(qty), avg)

    def _account_frames(self) -> bytes:
        acct = self.gw.account
        out = b"".join(frame(6, 2, tag, value, ccy, acct) for tag, (value, ccy) in self.account_values().items())
        for symbol, (qty, avg) in self.positions.items():
            s, px = self.gw.stocks[symbol], self.prices.get(symbol, 0.0)
            out += frame(7, 8, s.con_id, s.symbol, "STK", "", "0.0", "", "", s.primary_exchange, s.currency,
                         s.symbol, "NMS", _num(qty), px, qty * px, avg, (px - avg) * qty, 0.0, acct)
        return out + frame(8, 1, datetime.now(UTC).strftime("%H:%M"))


PLACE_FIELDS = {"orderId": 1, "conId": 2, "symbol": 3, "secType": 4, "exchange": 9, "action": 16,
                "totalQuantity": 17, "orderType": 18, "lmtPrice": 19, "auxPrice": 20, "tif": 21, "ocaGroup": 22,
                "account": 23, "orderRef": 26, "transmit": 27, "parentId": 28, "outsideRth": 33, "ocaType": 46}


def _named(f: list[str]) -> dict[str, str]:
    """A placeOrder's interesting fields by name (positions as ib_async 2.1.0 sends them at v178)."""
    return {name: f[i] for name, i in PLACE_FIELDS.items()}


def _price(text: str) -> float | None:
    return float(text) if text else None


def _px(value: float | None) -> object:
    return value if value is not None else "0.0"


def _num(x: float) -> str:
    """Quantities travel as Decimal text: "10", not "10.0"."""
    return str(int(x)) if x == int(x) else repr(x)


def _ib_time(t: datetime) -> str:
    return t.strftime("%Y%m%d %H:%M:%S") + " UTC"
