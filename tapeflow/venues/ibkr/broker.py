"""Interactive Brokers orders, fills, positions and account through ib_async (TWS / IB Gateway).

Identity: IB numbers an order per connection (clientId, orderId) and for good (permId). The
client order id travels as `orderRef`, which IB keeps on the order and on every execution, so
`order(cid)`, `orders`, `fills` find tapeflow's orders across reconnects and restarts in open
orders, completed orders and executions. `broker_order_id` is the permId. A bracket's legs
carry `<cid>.tp` and `<cid>.sl`.

Blocking: like `tapeflow.venues.ibkr.bars`, this drives ib_async's synchronous API from the calling
thread (no second thread, no patched asyncio), so one IbBroker belongs to one thread; IB's
pushes (order status, executions, commissions) are taken in whenever a call runs the loop, and
`updates(timeout)` runs it on purpose. Every wait is bounded.

Failures: `submit` sends once and waits up to `ack_s` for IB's openOrder or error; an error code
becomes a typed rejection, a lost or silent connection `Disconnected` (the outcome is unknown:
`place()` looks the order up before any resend). Reads reconnect (bounded, with backoff) and are
retried once; a read that fails is `QueryFailed` or `Disconnected`, never an empty answer.
While IB reports its own link down (1100, until 1101/1102) nothing is sent and reads refuse.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from ib_async import IB, Contract, Stock, Trade
from ib_async import Order as IbOrder
from ib_async.objects import Fill as IbFill
from ib_async.order import OrderStatus as IbStatus
from ib_async.wrapper import RequestError

from tapeflow.brokers.base import (
    Broker,
    BrokerError,
    BrokerOrder,
    Clock,
    Disconnected,
    DuplicateOrderId,
    Halted,
    InsufficientBuyingPower,
    InvalidOrder,
    NotShortable,
    OrderEvent,
    OrderUpdate,
    QueryFailed,
    RateLimited,
    Replacement,
)
from tapeflow.brokers.ids import STOP_LOSS, TAKE_PROFIT, leg_id
from tapeflow.calendar.exchange import get_calendar
from tapeflow.config import Settings
from tapeflow.model import (
    Account,
    Fill,
    Mode,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TimeInForce,
)
from tapeflow.venues.ibkr.bars import ACCOUNT_CODE, hide_accounts_in_ib_logs

NAME = "ibkr"
PAPER_PORT, LIVE_PORT = 4002, 4001
UNSET = 1.7976931348623157e308  # IB's "no value" for doubles

# IB codes (https://interactivebrokers.github.io/tws-api/message_codes.html) this adapter tells apart.
PACING = 100
NOT_CONNECTED = frozenset({504, 1100, 1300})  # not connected; IB link lost; socket port reset
LINK_LOST, LINK_RESTORED = 1100, frozenset({1101, 1102})
CANCELLED = 202
WARNINGS = frozenset({105, 110, 165, 321, 329, 399, 404, 434, 492, 10167})  # ib_async leaves the order live
# While waiting for IB's answer to a new order or a change, only these leave it working (399 order
# message warnings, 404 held while shares are located, 10167 delayed data); 110, 321 and the
# others mean IB refused it.
LIVE_WARNINGS = frozenset({399, 404, 10167})
NOT_FOUND_FOR_CANCEL = frozenset({10147, 10148})
MARGIN_WORDS = ("margin", "equity", "buying power", "insufficient", "funds")
SHORT_WORDS = ("short", "locate", "borrow")
MAX_ERRORS_KEPT = 10_000
ACKED = frozenset({IbStatus.PreSubmitted, IbStatus.Submitted, IbStatus.Filled, IbStatus.Cancelled,
                   IbStatus.ApiCancelled, IbStatus.Inactive})

IB_TYPES = {OrderType.MARKET: "MKT", OrderType.LIMIT: "LMT", OrderType.STOP: "STP", OrderType.STOP_LIMIT: "STP LMT"}
AT_CLOSE = {OrderType.MARKET: "MOC", OrderType.LIMIT: "LOC"}
TYPES_BACK = {"MKT": OrderType.MARKET, "LMT": OrderType.LIMIT, "STP": OrderType.STOP, "STP LMT": OrderType.STOP_LIMIT,
              "MOC": OrderType.MARKET, "LOC": OrderType.LIMIT}
TIFS = {TimeInForce.DAY: "DAY", TimeInForce.GTC: "GTC", TimeInForce.OPG: "OPG"}
TIFS_BACK = {"DAY": TimeInForce.DAY, "GTC": TimeInForce.GTC, "OPG": TimeInForce.OPG}

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class IbPolicy:
    """How long to wait and how hard to retry."""

    connect_s: float = 4.0  # handshake plus ib_async's startup sync
    request_s: float = 5.0  # one read request
    ack_s: float = 2.0  # submit: openOrder or an error, else the outcome is unknown
    reconnects: int = 3  # connection attempts per call after a drop
    backoff_s: float = 0.25  # before the 2nd attempt; doubled after each
    poll_s: float = 0.01  # while waiting for IB's answer


class IbBroker(Broker):
    """One IB account through TWS / IB Gateway at host:port, as API client `client_id`."""

    name = NAME

    def __init__(self, host: str, port: int, client_id: int, *, account: str | None = None,
                 mode: Mode = Mode.PAPER, policy: IbPolicy = IbPolicy(),
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.host, self.port, self.client_id = host, port, client_id
        self.account_code = account or ""
        self.mode = Mode(mode)
        self.policy = policy
        self._sleep = sleep
        self._ib = IB()
        self._ib.RaiseRequestErrors = True  # a refused request raises with its code, not an empty list
        self._ib.RequestTimeout = policy.request_s
        self._ib.errorEvent += self._on_error
        self._ib.orderStatusEvent += self._on_status
        self._ib.commissionReportEvent += self._on_commission
        self._errors: dict[int, list[tuple[int, str]]] = {}  # orderId -> IB errors for it
        self._link_down = False  # IB's own connection (1100 .. 1101/1102)
        self._contracts: dict[str, Contract] = {}
        self._events: deque[OrderUpdate] = deque()
        self._seen: set[tuple[object, ...]] = set()  # events already queued
        self._closed = False
        hide_accounts_in_ib_logs()

    @classmethod
    def from_settings(cls, settings: Settings, *, host: str | None = None, port: int | None = None,
                      **kwargs: object) -> IbBroker:
        """Paper (port 4002) unless mode=live *and* live_confirmed (port 4001); host/port overridable."""
        live = settings.mode is Mode.LIVE
        if live and not settings.live_confirmed:
            raise ValueError("ibkr: mode=live also needs live_confirmed=true (TAPEFLOW_LIVE_CONFIRMED); "
                             "refusing to connect to a live account")
        if port is None:  # an explicitly set TAPEFLOW_IBKR_PORT wins; else the mode's gateway port
            explicit = "ibkr_port" in settings.model_fields_set
            port = settings.ibkr_port if explicit else (LIVE_PORT if live else PAPER_PORT)
        if port == LIVE_PORT and not live:
            raise ValueError(f"ibkr: port {LIVE_PORT} is IB Gateway's live port; paper mode uses {PAPER_PORT} "
                             "(live needs mode=live and live_confirmed=true)")
        return cls(host or settings.ibkr_host, port, settings.ibkr_trading_client_id, account=settings.ibkr_account,
                   mode=settings.mode, **kwargs)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"IbBroker({self.host}:{self.port}, clientId={self.client_id}, {self.mode})"

    # ---------------------------------------------------------------------- orders
    def submit(self, order: Order) -> BrokerOrder:
        cid = order.client_order_id
        _require_sync_caller()
        ib = self._connection()
        if self._link_down:
            raise Disconnected(f"ibkr: IB reports its link to IB's servers down (error {LINK_LOST}); order {cid} "
                               "not sent", broker=NAME, client_order_id=cid)
        # IB does not enforce unique orderRefs; tapeflow does (an order refused before IB
        # acknowledged it, with no permId, leaves the id free, as at Alpaca).
        if any(t.order.orderRef == cid and (t.order.permId or not t.isDone()) for t in ib.trades()):
            raise DuplicateOrderId(f"ibkr: client order id {cid} was already used at IB", broker=NAME,
                                   client_order_id=cid)
        contract = self._contract(order.symbol, cid)
        trades: list[Trade] = []
        try:
            ib_orders = self._ib_orders(order, ib)
            for ib_order in ib_orders:
                trades.append(ib.placeOrder(contract, ib_order))
        except (ConnectionError, OSError) as exc:
            raise Disconnected(f"ibkr: connection lost while sending order {cid} ({type(exc).__name__}); whether "
                               "IB has it is unknown", broker=NAME, client_order_id=cid) from None
        self._await(cid, [o.orderId for o in ib_orders], lambda: all(t.orderStatus.status in ACKED and t.order.permId
                                                                      for t in trades))
        return self._state(trades[0], legs=trades[1:])

    def cancel(self, client_order_id: str) -> BrokerOrder:
        trade = self._read(f"the cancel of order {client_order_id}", lambda ib: self._find(ib, client_order_id))
        if trade is None:
            raise InvalidOrder(f"ibkr: no order {client_order_id} to cancel", broker=NAME,
                               client_order_id=client_order_id)
        if not trade.isDone():
            try:
                self._connection().cancelOrder(trade.order)
            except (ConnectionError, OSError) as exc:
                raise Disconnected(f"ibkr: connection lost cancelling order {client_order_id} ({type(exc).__name__})",
                                   broker=NAME, client_order_id=client_order_id) from None
            # Cancelling twice is harmless at IB: no "unknown outcome" to guard against here.
            self._await(client_order_id, [trade.order.orderId], trade.isDone, unknown_ok=True)
        return self.order(client_order_id) or self._state(trade)

    def replace(self, client_order_id: str, change: Replacement) -> BrokerOrder:
        trade = self._read(f"order {client_order_id}", lambda ib: self._find(ib, client_order_id))
        if trade is None or trade.isDone():
            raise InvalidOrder(f"ibkr: order {client_order_id} is not working; nothing to replace", broker=NAME,
                               client_order_id=client_order_id)
        ib = self._connection()
        new = copy.copy(trade.order)
        if change.qty is not None:
            new.totalQuantity = change.qty
        if change.limit_price is not None:
            new.lmtPrice = change.limit_price
        if change.stop_price is not None:
            new.auxPrice = change.stop_price
        before = len(trade.log)
        self._errors.pop(new.orderId, None)
        try:
            ib.placeOrder(trade.contract, new)  # same orderId: IB modifies the order in place
        except AssertionError:  # ib_async refuses to modify an order that finished meanwhile
            raise InvalidOrder(f"ibkr: order {client_order_id} finished before it could be changed", broker=NAME,
                               client_order_id=client_order_id) from None
        except (ConnectionError, OSError) as exc:
            raise Disconnected(f"ibkr: connection lost replacing order {client_order_id} ({type(exc).__name__}); "
                               "whether IB took the change is unknown", broker=NAME,
                               client_order_id=client_order_id) from None
        self._await(client_order_id, [new.orderId], lambda: len(trade.log) > before + 1 or trade.isDone())
        return self._state(trade)

    def order(self, client_order_id: str) -> BrokerOrder | None:
        return self._read(f"order {client_order_id}", lambda ib: self._lookup(ib, client_order_id))

    def open_orders(self) -> list[BrokerOrder]:
        return [o for o in self._read("open orders", self._working_orders) if o.is_open]

    def orders(self, since: datetime) -> list[BrokerOrder]:
        """Working orders, and finished ones whose last activity IB reports is at/after `since`
        (IB gives no submit time for orders of earlier sessions; those without any time are kept)."""
        return [o for o in self._read("orders", self._all_orders)
                if o.is_open or o.updated_at is None or o.updated_at >= since]

    def fills(self, since: datetime) -> list[Fill]:
        """Executions of tapeflow's orders since `since` (IB keeps executions for the current day)."""
        return [f for f in self._read("executions", self._fills) if f.ts >= since]

    def positions(self) -> list[Position]:
        def ask(ib: IB) -> list[Position]:
            now, held = datetime.now(UTC), {}
            for p in ib.reqPositions():
                if not self.account_code or p.account == self.account_code:
                    held[p.contract.conId] = p  # a push may repeat a contract: the last word counts
            return [Position(p.contract.symbol, float(p.position), abs(float(p.avgCost)), now)
                    for p in held.values() if p.position]

        return self._read("positions", ask)

    def account(self) -> Account:
        def ask(ib: IB) -> Account:
            code = self._account_of(ib)
            ib.reqAccountUpdates(code)
            values = {v.tag: v.value for v in ib.accountValues(code) if v.currency in ("USD", "BASE", "")}
            try:
                equity, cash = float(values["NetLiquidation"]), float(values["TotalCashValue"])
                buying_power = max(0.0, float(values.get("BuyingPower", 0.0)))
            except (KeyError, ValueError):
                raise QueryFailed("ibkr: the account update lacked NetLiquidation or TotalCashValue",
                                  broker=NAME) from None
            last = values.get("PreviousDayEquityWithLoanValue")
            return Account(NAME, datetime.now(UTC), equity, cash, buying_power,
                           last_equity=float(last) if last else None)

        return self._read("the account", ask)

    def updates(self, timeout: float = 0.0) -> list[OrderUpdate]:
        """Events IB pushed (status changes; fills with their commission), waiting up to `timeout`.
        Never reconnects: a dropped connection is restored by the next read or submit."""
        _require_sync_caller()
        deadline = time.monotonic() + timeout
        self._pump()
        while not self._events and time.monotonic() < deadline and self._ib.isConnected():
            self._pump(min(self.policy.poll_s * 5, max(0.0, deadline - time.monotonic())))
        out = list(self._events)
        self._events.clear()
        return out

    def clock(self) -> Clock:
        now = self._read("the current time", lambda ib: ib.reqCurrentTime()).astimezone(UTC)
        cal = get_calendar()
        session = cal.session_at(now)
        is_open = cal.is_open(now)
        next_open = cal.next_open(now)
        if session is not None and now < session.close:
            next_close = session.close
        else:
            next_close = cal.session(cal.session_date(next_open)).close
        return Clock(now, is_open, next_open, next_close)

    def close(self) -> None:
        self._closed = True
        self._ib.disconnect()

    # ------------------------------------------------------------------ connection
    def connect(self) -> None:
        """Connect now (otherwise the first call does)."""
        self._connection()

    def _connection(self) -> IB:
        """The connected client; after a drop, reconnects (bounded attempts with backoff)."""
        if self._closed:
            raise Disconnected("ibkr: this broker was closed", broker=NAME)
        self._pump()
        if self._ib.isConnected():
            return self._ib
        problem = ""
        for attempt in range(self.policy.reconnects):
            if attempt:
                self._sleep(self.policy.backoff_s * 2 ** (attempt - 1))
            try:
                self._ib.connect(self.host, self.port, clientId=self.client_id, timeout=self.policy.connect_s,
                                 account=self.account_code, raiseSyncErrors=True)
            except (TimeoutError, OSError, asyncio.CancelledError) as exc:
                problem = "connection refused" if isinstance(exc, ConnectionRefusedError) else type(exc).__name__
                continue
            self._link_down = False
            self._check_paper(self._ib)
            log.info("ibkr: connected to %s:%s as client %s", self.host, self.port, self.client_id)
            return self._ib
        raise Disconnected(f"ibkr: cannot reach IB Gateway/TWS at {self.host}:{self.port} as client "
                           f"{self.client_id} after {self.policy.reconnects} attempts ({problem}); check "
                           "TAPEFLOW_IBKR_HOST/PORT and that the gateway runs with its API enabled", broker=NAME)

    def _check_paper(self, ib: IB) -> None:
        """Paper mode must not be wired to a live account: IB's paper account codes start with D."""
        if self.mode is Mode.PAPER and any(not a.startswith("D") for a in ib.managedAccounts()):
            ib.disconnect()
            self._closed = True
            raise BrokerError(f"ibkr: paper mode, but the gateway at {self.host}:{self.port} serves a live "
                              "account; refusing to trade", broker=NAME)

    def _pump(self, seconds: float = 0.0) -> None:
        """Let ib_async take in what IB sent (events, errors, a closed socket)."""
        if not self._ib.client.isConnected():
            return

        async def settle() -> None:
            await asyncio.sleep(seconds)
            for _ in range(3):  # a closed socket is noticed one loop turn after the EOF
                await asyncio.sleep(0)

        try:
            self._ib.run(settle())
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass  # the socket dropped: isConnected() now says so

    def _read(self, what: str, ask: Callable[[IB], T]) -> T:
        """Run a read, reconnecting and retrying once if the connection drops under it."""
        _require_sync_caller()
        for attempt in (1, 2):
            ib = self._connection()
            if self._link_down:
                raise Disconnected(f"ibkr: IB reports its link to IB's servers down (error {LINK_LOST}); "
                                   f"{what} would be stale", broker=NAME)
            try:
                return ask(ib)
            except RequestError as exc:
                raise QueryFailed(f"ibkr: IB refused {what} (error {exc.code}: {_clean(exc.message)})",
                                  broker=NAME) from None
            except TimeoutError:
                # A silent gateway: start afresh next time rather than trust this connection.
                ib.disconnect()
                if attempt == 2:
                    raise QueryFailed(f"ibkr: IB did not answer {what} within {self.policy.request_s:g} s",
                                      broker=NAME) from None
            except (ConnectionError, OSError, asyncio.CancelledError):
                if attempt == 2:
                    raise Disconnected(f"ibkr: lost the connection to IB during {what}", broker=NAME) from None
        raise AssertionError("unreachable")

    def _await(self, cid: str, order_ids: list[int], done: Callable[[], bool], unknown_ok: bool = False) -> None:
        """Wait (bounded) until `done()`, raising the typed error IB sent for one of `order_ids`."""
        deadline = time.monotonic() + self.policy.ack_s
        while True:
            for oid in order_ids:
                for code, message in self._errors.get(oid, []):
                    if code in NOT_FOUND_FOR_CANCEL and unknown_ok:
                        return
                    if code not in LIVE_WARNINGS and code != CANCELLED and not 2100 <= code < 2200:
                        raise _rejection(code, message, cid)
            if done():
                return
            if not self._ib.isConnected() or time.monotonic() > deadline:
                if unknown_ok:
                    return
                why = "the connection dropped" if not self._ib.isConnected() else (
                    f"IB did not acknowledge it within {self.policy.ack_s:g} s")
                raise Disconnected(f"ibkr: order {cid} was sent but {why}; whether IB has it is unknown",
                                   broker=NAME, client_order_id=cid)
            self._pump(self.policy.poll_s)

    # --------------------------------------------------------------- IB callbacks
    def _on_error(self, req_id: int, code: int, message: str, contract: Contract | None) -> None:
        if req_id >= 0:
            self._errors.setdefault(req_id, []).append((code, message))
            while len(self._errors) > MAX_ERRORS_KEPT:  # a long session: forget the oldest
                del self._errors[next(iter(self._errors))]
        if code == LINK_LOST:
            self._link_down = True
            log.warning("ibkr: IB reports its link to IB's servers lost (1100); not trading until restored")
        elif code in LINK_RESTORED:
            self._link_down = False
            log.info("ibkr: IB's link restored (%s)", code)

    def _on_status(self, trade: Trade) -> None:
        ref = trade.order.orderRef
        if not ref:
            return  # not tapeflow's order
        state = self._state(trade)
        event = {OrderStatus.NEW: OrderEvent.NEW, OrderStatus.CANCELED: OrderEvent.CANCELED,
                 OrderStatus.REJECTED: OrderEvent.REJECTED}.get(state.status)
        # Fills are reported from the commission report, which carries the execution and its cost.
        key = (ref, trade.order.permId or trade.order.orderId, event)
        if event is None or key in self._seen or (event is OrderEvent.NEW and not trade.order.permId):
            return
        self._seen.add(key)
        self._events.append(OrderUpdate(event, state, datetime.now(UTC)))

    def _on_commission(self, trade: Trade, fill: IbFill, report: object) -> None:
        if not trade.order.orderRef or ("fill", fill.execution.execId) in self._seen:
            return
        self._seen.add(("fill", fill.execution.execId))
        state = self._state(trade)
        complete = fill.execution.cumQty >= trade.order.totalQuantity - 1e-9
        event = OrderEvent.FILL if complete else OrderEvent.PARTIAL_FILL
        self._events.append(OrderUpdate(event, state, fill.execution.time, fill=self._fill(fill)))

    # ----------------------------------------------------------------- requests
    def _contract(self, symbol: str, cid: str) -> Contract:
        """The qualified US stock on SMART; an unknown symbol is InvalidOrder."""
        if symbol in self._contracts:
            return self._contracts[symbol]
        try:
            qualified = self._ib.qualifyContracts(Stock(symbol, "SMART", "USD"))
        except RequestError as exc:
            raise InvalidOrder(f"ibkr: IB does not know {symbol} as a US stock (error {exc.code}: "
                               f"{_clean(exc.message)})", broker=NAME, client_order_id=cid) from None
        except (TimeoutError, ConnectionError, OSError, asyncio.CancelledError):
            # Nothing was sent yet, but say Disconnected: place() looks up, finds nothing, resends.
            raise Disconnected(f"ibkr: no answer qualifying {symbol}; order {cid} not sent", broker=NAME,
                               client_order_id=cid) from None
        found = qualified[0] if qualified else None
        if not isinstance(found, Contract) or not found.conId:
            raise InvalidOrder(f"ibkr: IB could not qualify {symbol} as one US stock on SMART", broker=NAME,
                               client_order_id=cid)
        self._contracts[symbol] = found
        return found

    def _ib_orders(self, order: Order, ib: IB) -> list[IbOrder]:
        """The IB order(s) for `order`: one, or a bracket's parent, take-profit and stop-loss."""
        cid = order.client_order_id
        action = "BUY" if order.side is Side.BUY else "SELL"
        if order.time_in_force is TimeInForce.CLS:
            if order.order_type not in AT_CLOSE:
                raise InvalidOrder(f"ibkr: {order.order_type} orders cannot be market/limit-on-close", broker=NAME,
                                   client_order_id=cid)
            order_type, tif = AT_CLOSE[order.order_type], "DAY"
        else:
            if order.time_in_force is TimeInForce.OPG and order.order_type not in AT_CLOSE:
                raise InvalidOrder(f"ibkr: OPG takes market or limit orders, not {order.order_type}", broker=NAME,
                                   client_order_id=cid)
            order_type, tif = IB_TYPES[order.order_type], TIFS[order.time_in_force]
        parent = IbOrder(orderId=ib.client.getReqId(), action=action, totalQuantity=order.qty, orderType=order_type,
                         tif=tif, orderRef=cid, account=self.account_code, transmit=not order.is_bracket)
        if order.limit_price is not None:
            parent.lmtPrice = order.limit_price
        if order.stop_price is not None:
            parent.auxPrice = order.stop_price
        if not order.is_bracket:
            return [parent]
        exit_action = "SELL" if action == "BUY" else "BUY"
        leg_tif = "GTC" if tif == "GTC" else "DAY"
        # One-cancels-all with block (ocaType 1): the leg that fills cancels the other.
        legs = dict(action=exit_action, totalQuantity=order.qty, tif=leg_tif, parentId=parent.orderId,
                    ocaGroup=f"{cid}.oca", ocaType=1, account=self.account_code)
        take = IbOrder(orderId=ib.client.getReqId(), orderType="LMT", lmtPrice=order.take_profit_price,
                       orderRef=leg_id(cid, TAKE_PROFIT), transmit=False, **legs)
        stop = IbOrder(orderId=ib.client.getReqId(), orderType="STP", auxPrice=order.stop_loss_price,
                       orderRef=leg_id(cid, STOP_LOSS), transmit=True, **legs)  # the last leg transmits the whole group
        return [parent, take, stop]

    def _book(self, ib: IB) -> tuple[dict[object, Trade], dict[int, list[IbFill]]]:
        """Every order IB reports (session, open, completed) by permId, and executions by permId."""
        opened = ib.reqOpenOrders()
        done = ib.reqCompletedOrders(apiOnly=True)
        fills: dict[int, list[IbFill]] = {}
        for f in ib.reqExecutions():
            fills.setdefault(f.execution.permId, []).append(f)
        book: dict[object, Trade] = {}
        for t in [*ib.trades(), *opened]:
            book[t.order.permId or ("unacked", t.order.orderId)] = t
        for t in done:  # a completed order outranks a session copy that still looks open
            if t.order.permId not in book or not book[t.order.permId].isDone():
                book[t.order.permId] = t
        return book, fills

    def _find(self, ib: IB, cid: str) -> Trade | None:
        book, _ = self._book(ib)
        return _latest(t for t in book.values() if t.order.orderRef == cid)

    def _lookup(self, ib: IB, cid: str) -> BrokerOrder | None:
        book, fills = self._book(ib)
        trade = _latest(t for t in book.values() if t.order.orderRef == cid)
        if trade is None:
            return None
        legs = [t for t in book.values() if t.order.orderRef in (leg_id(cid, TAKE_PROFIT), leg_id(cid, STOP_LOSS))]
        return self._state(trade, fills, legs)

    def _all_orders(self, ib: IB) -> list[BrokerOrder]:
        book, fills = self._book(ib)
        return self._listing(book, fills)

    def _working_orders(self, ib: IB) -> list[BrokerOrder]:
        """The working orders alone: one reqOpenOrders, no completed orders or executions
        (a trading cycle asks for these every minute)."""
        opened = {t.order.permId or ("unacked", t.order.orderId): t for t in ib.reqOpenOrders()}
        return self._listing(opened, None)

    def _listing(self, book: dict[object, Trade], fills: dict[int, list[IbFill]] | None) -> list[BrokerOrder]:
        """tapeflow's orders in `book`, each with its bracket legs."""
        refs = {t.order.orderRef for t in book.values()}
        out = []
        for t in book.values():
            ref = t.order.orderRef
            if not ref or _leg_of(ref) in refs:
                continue  # not tapeflow's, or a leg listed under its parent
            legs = [x for x in book.values() if x.order.orderRef in (leg_id(ref, TAKE_PROFIT), leg_id(ref, STOP_LOSS))]
            out.append(self._state(t, fills, legs))
        return out

    def _fills(self, ib: IB) -> list[Fill]:
        ib.reqExecutions()
        return [self._fill(f) for f in ib.fills() if f.execution.orderRef]

    def _fill(self, f: IbFill) -> Fill:
        ex = f.execution
        # The commission report lands on ib_async's own record of the execution.
        known = self._ib.wrapper.fills.get(ex.execId, f)
        commission = known.commissionReport.commission if known.commissionReport.execId else 0.0
        return Fill(broker=NAME, fill_id=ex.execId, client_order_id=ex.orderRef, symbol=f.contract.symbol,
                    side=Side.BUY if ex.side == "BOT" else Side.SELL, ts=ex.time, qty=float(ex.shares),
                    price=float(ex.price), commission=max(0.0, float(commission)))

    def _account_of(self, ib: IB) -> str:
        if self.account_code:
            return self.account_code
        accounts = ib.managedAccounts()
        if len(accounts) != 1:
            raise QueryFailed(f"ibkr: the gateway manages {len(accounts)} accounts; set TAPEFLOW_IBKR_ACCOUNT",
                              broker=NAME)
        return accounts[0]

    # ------------------------------------------------------------------ mapping
    def _state(self, trade: Trade, fills: dict[int, list[IbFill]] | None = None,
               legs: list[Trade] | None = None) -> BrokerOrder:
        """The BrokerOrder for an ib_async Trade, completed from its executions where IB's order lacks them."""
        o, st = trade.order, trade.orderStatus
        execs = (fills or {}).get(o.permId, []) or list(trade.fills)
        exec_qty = sum(float(f.execution.shares) for f in execs)
        filled_qty = max(float(st.filled or 0), exec_qty, _known(o.filledQuantity) or 0.0)
        filled_qty = min(filled_qty, float(o.totalQuantity))
        avg = st.avgFillPrice if st.avgFillPrice and st.filled else None
        if avg is None and exec_qty:
            avg = sum(float(f.execution.shares) * f.execution.price for f in execs) / exec_qty
        logged = [e.time for e in trade.log if e.time.tzinfo is not None]
        times = logged + [f.execution.time for f in execs]
        status, reason = _status(trade, filled_qty)
        ib_type = o.orderType
        return BrokerOrder(
            client_order_id=o.orderRef, broker_order_id=str(o.permId or ""), symbol=trade.contract.symbol,
            side=Side.BUY if o.action == "BUY" else Side.SELL, qty=float(o.totalQuantity),
            order_type=TYPES_BACK.get(ib_type, OrderType.MARKET),
            time_in_force=TimeInForce.CLS if ib_type in ("MOC", "LOC") else TIFS_BACK.get(o.tif, TimeInForce.DAY),
            status=status, filled_qty=filled_qty, avg_fill_price=avg if filled_qty else None,
            limit_price=_known(o.lmtPrice) if ib_type in ("LMT", "STP LMT", "LOC") else None,
            stop_price=_known(o.auxPrice) if ib_type in ("STP", "STP LMT") else None,
            submitted_at=min(logged) if logged else None, updated_at=max(times) if times else None,
            reason=reason, legs=tuple(self._state(leg, fills) for leg in legs or ()),
        )


def _status(trade: Trade, filled: float) -> tuple[OrderStatus, str]:
    """IB's order status as tapeflow's, with IB's reason for a rejection or a cancel."""
    ib_status = trade.orderStatus.status
    errors = [e for e in trade.log if e.errorCode and e.errorCode not in WARNINGS]
    if ib_status == IbStatus.Inactive:
        return OrderStatus.REJECTED, _clean(errors[-1].message) if errors else "inactive at IB"
    if ib_status in (IbStatus.Cancelled, IbStatus.ApiCancelled):
        rejected = [e for e in errors if e.errorCode != CANCELLED]
        if rejected and not filled:
            return OrderStatus.REJECTED, _clean(rejected[-1].message)
        return OrderStatus.CANCELED, _clean(errors[-1].message) if errors else ""
    if ib_status == IbStatus.Filled:
        return OrderStatus.FILLED, ""
    # PendingSubmit, PreSubmitted, Submitted, PendingCancel, ApiPending, ValidationError: still working
    return (OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.NEW), ""


def _rejection(code: int, message: str, cid: str) -> BrokerError:
    """The typed error for IB error `code` on order `cid`."""
    text = message.lower()
    detail = f"ibkr refused order {cid} (error {code}): {_clean(message)}"
    if code in NOT_CONNECTED:
        return Disconnected(f"ibkr: order {cid}: IB is not connected (error {code}): {_clean(message)}",
                            broker=NAME, client_order_id=cid)
    if code == PACING:
        return RateLimited(f"ibkr: order {cid}: IB's message rate limit (error {code}); whether it ran is unknown",
                           broker=NAME, client_order_id=cid)
    if "halt" in text:
        return Halted(detail, broker=NAME, client_order_id=cid)
    if code == 201 and any(w in text for w in MARGIN_WORDS):
        return InsufficientBuyingPower(detail, broker=NAME, client_order_id=cid)
    if code == 201 and any(w in text for w in SHORT_WORDS):
        return NotShortable(detail, broker=NAME, client_order_id=cid)
    return InvalidOrder(detail, broker=NAME, client_order_id=cid)


def _latest(trades: object) -> Trade | None:
    """Of several orders with one orderRef (never sent twice by tapeflow), the newest."""
    found = sorted(trades, key=lambda t: t.order.permId or 0)  # type: ignore[attr-defined]
    return found[-1] if found else None


def _leg_of(ref: str) -> str | None:
    """The entry's client order id if `ref` names a bracket leg."""
    for leg in (TAKE_PROFIT, STOP_LOSS):
        if ref.endswith("." + leg):
            return ref[: -len(leg) - 1]
    return None


def _known(x: float) -> float | None:
    return None if x is None or x >= UNSET else float(x)


def _clean(message: str) -> str:
    """IB's text without account codes."""
    return ACCOUNT_CODE.sub("<account>", message)


def _require_sync_caller() -> None:
    """ib_async's blocking API runs its own loop; inside a running one it would fail obscurely."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError("IbBroker is blocking: call it from synchronous code, not from inside a running event loop")
