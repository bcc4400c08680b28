"""Alpaca orders, fills, positions and account through alpaca-py (`TradingClient` over REST,
`TradingStream` for the trade_updates websocket), paper by default.

Sending: `submit` sends once. alpaca-py itself repeats a request that met 429 or 504; a 504
can hide an order that did land, so the repeat meets 422 "client_order_id must be unique":
that surfaces as `DuplicateOrderId`, and timeouts, 5xx and dropped sockets as `Disconnected`,
so that `submit.place` looks the order up by its client order id before sending it again.
Reads are safe to repeat and are, a bounded number of times, when the connection fails.

Fills: `fills(since)` reads the account activities of type FILL (`GET
/v2/account/activities/FILL`, one row per execution, paged by `page_token`) because the stream
cannot tell what happened while nobody listened. An activity's id is "<time>::<uuid>"; its
uuid is taken as the fill id, the same id trade_updates sends as `execution_id`, so a fill seen
on both paths is one fill. (Activities name the order's id, not its client order id: those
are looked up once and remembered.)

Secrets: the keys travel in headers (REST) and in the first websocket frame; no message,
exception or log line made here carries them, and websockets' frame log is kept off them.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, QueryOrderStatus
from alpaca.trading.enums import OrderSide as AlpacaSide
from alpaca.trading.enums import TimeInForce as AlpacaTif
from alpaca.trading.models import Order as AlpacaOrder
from alpaca.trading.models import TradeUpdate
from alpaca.trading.requests import (
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
)
from alpaca.trading.stream import TradingStream
from pydantic import SecretStr, ValidationError

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
    OrderRejected,
    OrderUpdate,
    QueryFailed,
    RateLimited,
    Replacement,
)
from tapeflow.config import Settings
from tapeflow.model import (
    Account,
    Fill,
    InvalidRecord,
    Mode,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TimeInForce,
)
from tapeflow.redact import guard_http_debug_logs, redact_text, redact_url
from tapeflow.venues.alpaca.websocket import PromptStop, guard_stream_logs, websocket_params

NAME = "alpaca"
KEY_SETTING = "TAPEFLOW_ALPACA_API_KEY"
SECRET_SETTING = "TAPEFLOW_ALPACA_SECRET_KEY"
PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"
MESSAGE_LIMIT = 200
ORDERS_PAGE = 500  # Alpaca's maximum `limit` for GET /v2/orders
ACTIVITIES_PAGE = 100  # and its maximum `page_size` for account activities

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class AlpacaTuning:
    """Timeouts, retries and waits; tests shrink the waits to zero."""

    timeout_s: float = 10.0  # per HTTP request (alpaca-py sets none)
    sdk_retries: int = 3  # alpaca-py's own repeats of a request that met 429 or 504
    sdk_wait_s: float = 3.0  # ...and its wait between them
    read_attempts: int = 3  # tries of a read whose connection failed
    read_wait_s: float = 0.25  # doubled after each failed try
    stream_ready_s: float = 5.0  # how long the constructor waits for trade_updates to listen
    stream_backoff_s: float = 1.0  # first wait before the stream reconnects (alpaca-py doubles it)

    @classmethod
    def from_settings(cls, settings: Settings) -> AlpacaTuning:
        return cls(timeout_s=settings.http_timeout_s, read_attempts=settings.http_attempts)


# -- alpaca-py, as tapeflow runs it ----------------------------------------------------


class _Client(TradingClient):
    """alpaca-py's trading client with a timeout on every request and tunable repeats."""

    def __init__(self, key: str, secret: str, url: str, tuning: AlpacaTuning) -> None:
        super().__init__(key, secret, url_override=url)
        # RESTClient ignores 0 for these arguments, and TradingClient does not pass them on.
        self._retry = tuning.sdk_retries
        self._retry_wait = tuning.sdk_wait_s
        self._retry_codes = [429, 504]
        self._timeout_s = tuning.timeout_s

    def _one_request(self, method: str, url: str, opts: dict, retry: int) -> dict:
        return super()._one_request(method, url, {**opts, "timeout": self._timeout_s}, retry)


class _FrameLogFilter(logging.Filter):
    """websockets logs each frame at DEBUG; the authentication frame carries the keys."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if any(word in text for word in ("secret_key", "key_id", "authenticate")):
            record.msg, record.args = "(authentication frame withheld)", ()
        return True


_WS_LOG = logging.getLogger(f"{__name__}.websocket")
_WS_LOG.addFilter(_FrameLogFilter())


class _Stream(PromptStop, TradingStream):
    """TradingStream that says when it listens and stops at once instead of within 5 s."""

    def __init__(self, key: str, secret: str, url: str, backoff_s: float) -> None:
        super().__init__(key, secret, url_override=url, websocket_params=websocket_params(_WS_LOG))
        self._reconnect_min_backoff = backoff_s
        self.listening = threading.Event()

    async def _dispatch(self, msg: dict) -> None:
        if msg.get("stream") == "listening":
            self.listening.set()
        await super()._dispatch(msg)

    def _cast(self, msg: dict) -> Any:
        # alpaca-py logs what this raises, and pydantic's error quotes the values it could not
        # read (a server echoing our auth message quotes the keys, cut short past any mask):
        # the error names the fields only.
        try:
            return super()._cast(msg)
        except ValidationError as exc:
            fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['type']}" for e in exc.errors(include_input=False))
            raise ValueError(f"{NAME} trade update not understood ({fields}): dropped") from None


# -- mapping Alpaca's records ------------------------------------------------------------

# Statuses of an order still working at Alpaca (accepted, routed, held as a bracket leg, or
# waiting on a cancel / replace that has not happened yet).
WORKING = frozenset({"accepted", "pending_new", "new", "held", "pending_cancel", "pending_replace", "pending_review",
                     "accepted_for_bidding", "stopped", "suspended"})
FINAL = {"filled": OrderStatus.FILLED, "canceled": OrderStatus.CANCELED, "expired": OrderStatus.EXPIRED,
         "done_for_day": OrderStatus.EXPIRED, "rejected": OrderStatus.REJECTED, "replaced": OrderStatus.REPLACED}
EVENTS = {"new": OrderEvent.NEW, "partial_fill": OrderEvent.PARTIAL_FILL, "fill": OrderEvent.FILL,
          "canceled": OrderEvent.CANCELED, "rejected": OrderEvent.REJECTED, "expired": OrderEvent.EXPIRED,
          "done_for_day": OrderEvent.EXPIRED, "replaced": OrderEvent.REPLACED}
# Orders placed outside tapeflow may use what tapeflow's model lacks: a trailing stop reads as
# a stop, IOC / FOK as a day order (neither outlives the day).
ORDER_TYPES = {"market": OrderType.MARKET, "limit": OrderType.LIMIT, "stop": OrderType.STOP,
               "stop_limit": OrderType.STOP_LIMIT, "trailing_stop": OrderType.STOP}
TIFS = {"day": TimeInForce.DAY, "gtc": TimeInForce.GTC, "opg": TimeInForce.OPG, "cls": TimeInForce.CLS,
        "ioc": TimeInForce.DAY, "fok": TimeInForce.DAY}


def _value(x: Any) -> str:
    """An alpaca-py enum or a plain string, as text."""
    return str(getattr(x, "value", x))


def _num(x: Any) -> float | None:
    return None if x is None or x == "" else float(x)


def order_status(status: str, filled_qty: float, qty: float) -> OrderStatus:
    """tapeflow's status for Alpaca's: working orders are new, or partially filled once they are."""
    if status == "partially_filled" or (status in WORKING and filled_qty > 0):
        return OrderStatus.PARTIALLY_FILLED
    if status in WORKING:
        return OrderStatus.NEW
    if status == "calculated":  # done for the day, settlement pending
        return OrderStatus.FILLED if filled_qty >= qty > 0 else OrderStatus.EXPIRED
    if status in FINAL:
        return FINAL[status]
    log.warning("%s order status %r is unknown to tapeflow: read as still working", NAME, status)
    return OrderStatus.PARTIALLY_FILLED if filled_qty > 0 else OrderStatus.NEW


def broker_order(o: AlpacaOrder) -> BrokerOrder:
    """An alpaca-py Order as a BrokerOrder (legs of a bracket included)."""
    if o.side is None or o.symbol is None:
        raise InvalidRecord(f"order {o.client_order_id} has no side or symbol (a multi-leg option order?)")
    filled = _num(o.filled_qty) or 0.0
    qty = _num(o.qty) or filled  # a notional order has no qty until it fills
    kind = _value(o.type or o.order_type)
    if kind not in ORDER_TYPES:
        raise InvalidRecord(f"order {o.client_order_id} has type {kind!r}, which tapeflow cannot represent")
    return BrokerOrder(
        client_order_id=o.client_order_id, broker_order_id=str(o.id), symbol=o.symbol, side=Side(_value(o.side)),
        qty=qty, order_type=ORDER_TYPES[kind], time_in_force=TIFS.get(_value(o.time_in_force), TimeInForce.DAY),
        status=order_status(_value(o.status), filled, qty), filled_qty=filled,
        avg_fill_price=_num(o.filled_avg_price) if filled else None, limit_price=_num(o.limit_price),
        stop_price=_num(o.stop_price), submitted_at=o.submitted_at, updated_at=o.updated_at,
        legs=tuple(broker_order(leg) for leg in o.legs or ()),
    )


def fill_id(activity_or_execution_id: str) -> str:
    """The execution's uuid: an activity id "20210127144930176::<uuid>" or a bare execution id."""
    return str(activity_or_execution_id).rsplit("::", 1)[-1]


def _side(text: str) -> Side:
    return Side.BUY if text == "buy" else Side.SELL  # Alpaca also says sell_short


def _instant(text: Any) -> datetime:
    if not isinstance(text, str):
        raise InvalidRecord(f"expected an RFC 3339 time, got {text!r}")
    return datetime.fromisoformat(text)


# -- errors ------------------------------------------------------------------------------

AUTH_WORDS = ("not authorized", "unauthorized", "forbidden", "access key", "authentication")
SHORT_WORDS = ("shortable", "short", "locate", "borrow", "qty available", "insufficient qty")


@dataclass(frozen=True)
class _Answer:
    """An error answer from Alpaca: HTTP status (None: no answer at all) and its message."""

    status: int | None
    message: str
    code: int | None = None


def _read_body(text: str) -> tuple[str, int | None]:
    """Message and code of an Alpaca error body; a proxy's HTML page is described, not parsed
    (alpaca-py's APIError.code would raise JSONDecodeError on it)."""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        code = body.get("code")
        return body["message"], code if isinstance(code, int) else None
    plain = " ".join(re.sub(r"<[^>]*>", " ", text or "").split())
    return f"non-JSON answer: {plain or '(empty)'}", None


class AlpacaBroker(Broker):
    """One Alpaca account, paper (default) or live, through alpaca-py."""

    name = NAME

    def __init__(
        self,
        api_key: SecretStr | str,
        secret_key: SecretStr | str,
        *,
        mode: Mode = Mode.PAPER,
        live_confirmed: bool = False,
        url: str | None = None,
        stream_url: str | None = None,
        tuning: AlpacaTuning = AlpacaTuning(),
        stream: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.mode = Mode(mode)
        if self.mode is Mode.BACKTEST:
            raise ValueError("a broker trades paper or live; backtests use the simulator")
        if self.mode is Mode.LIVE and not live_confirmed:
            raise ValueError("live trading at alpaca needs the explicit confirmation TAPEFLOW_LIVE_CONFIRMED=true")
        self._secrets = [SecretStr(s) if isinstance(s, str) else s for s in (api_key, secret_key)]
        key, secret = (s.get_secret_value() for s in self._secrets)
        if not key or not secret:
            raise BrokerError(f"{NAME} needs {KEY_SETTING} and {SECRET_SETTING} to be set", broker=NAME)
        guard_http_debug_logs()
        self.url = url or (LIVE_URL if self.mode is Mode.LIVE else PAPER_URL)
        self.stream_url = stream_url or _stream_url(self.url)
        self.tuning = tuning
        self._sleep = sleep
        self._client = _Client(key, secret, self.url, tuning)
        self._cids: dict[str, str] = {}  # Alpaca order id -> client order id, for activities
        self._updates: queue.Queue[OrderUpdate] = queue.Queue()
        self._stream: _Stream | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        if stream:
            self._start_stream(key, secret)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> AlpacaBroker:
        """The broker the settings describe: paper URL unless mode=live and live_confirmed."""
        live = settings.mode is Mode.LIVE
        if live and not settings.live_confirmed:
            raise ValueError("TAPEFLOW_MODE=live needs TAPEFLOW_LIVE_CONFIRMED=true as well: refusing to trade live")
        if settings.alpaca_api_key is None or settings.alpaca_secret_key is None:
            raise BrokerError(f"{NAME} needs {KEY_SETTING} and {SECRET_SETTING} to be set", broker=NAME)
        options: dict[str, Any] = {
            "mode": settings.mode, "live_confirmed": settings.live_confirmed,
            "url": settings.alpaca_live_url if live else settings.alpaca_paper_url,
            "stream_url": settings.alpaca_stream_url, "tuning": AlpacaTuning.from_settings(settings),
        }
        return cls(settings.alpaca_api_key, settings.alpaca_secret_key, **{**options, **overrides})

    def __repr__(self) -> str:
        return f"AlpacaBroker(mode={self.mode.value!r}, url={redact_url(self.url)!r})"

    # -- the stream ----------------------------------------------------------------------

    def _start_stream(self, key: str, secret: str) -> None:
        guard_stream_logs(key, secret)
        self._stream = _Stream(key, secret, self.stream_url, self.tuning.stream_backoff_s)
        self._stream.subscribe_trade_updates(self._on_trade_update)
        self._thread = threading.Thread(target=self._stream.run, name="alpaca-trade-updates", daemon=True)
        self._thread.start()
        if not self._stream.listening.wait(self.tuning.stream_ready_s):
            log.warning("%s trade_updates stream at %s is not listening yet: updates() may miss events until it "
                        "connects (orders are still read over REST)", NAME, redact_url(self.stream_url))

    async def _on_trade_update(self, data: TradeUpdate) -> None:
        try:
            update = self._update(data)
        except (InvalidRecord, ValueError, TypeError) as exc:
            log.error("%s trade update not understood (%s): dropped; the next sync reads the order over REST",
                      NAME, self._scrub(str(exc)))
            return
        if update is not None:
            self._updates.put(update)

    def _update(self, data: TradeUpdate) -> OrderUpdate | None:
        event = EVENTS.get(_value(data.event))
        self._cids[str(data.order.id)] = data.order.client_order_id
        if event is None:
            return None  # pending_new, accepted, pending_cancel...: the order's state did not change
        state = broker_order(data.order)
        fill = None
        if event in (OrderEvent.FILL, OrderEvent.PARTIAL_FILL):
            # Without an execution id the order id and its filled quantity name the execution.
            execution = str(data.execution_id) if data.execution_id else f"{state.broker_order_id}:{state.filled_qty:g}"
            fill = Fill(broker=NAME, fill_id=fill_id(execution), client_order_id=state.client_order_id,
                        symbol=state.symbol, side=state.side, ts=data.timestamp, qty=float(data.qty or 0),
                        price=float(data.price or 0))
        return OrderUpdate(event=event, order=state, ts=data.timestamp, fill=fill)

    def updates(self, timeout: float = 0.0) -> list[OrderUpdate]:
        try:
            got = [self._updates.get(timeout=timeout) if timeout > 0 else self._updates.get_nowait()]
        except queue.Empty:
            return []
        while True:
            try:
                got.append(self._updates.get_nowait())
            except queue.Empty:
                return got

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._stream is not None:
            self._stream.halt()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._client._session.close()

    # -- orders --------------------------------------------------------------------------

    def submit(self, order: Order) -> BrokerOrder:
        cid = order.client_order_id
        request = self._order_request(order)
        try:
            # An answer that cannot be read is as good as lost: the order may well stand.
            return self._remember(self._client.submit_order(request))
        except Exception as exc:
            raise self._error(exc, writing=True, cid=cid, doing=f"submitting order {cid}") from None

    def _order_request(self, order: Order) -> MarketOrderRequest:
        fields: dict[str, Any] = {
            "symbol": order.symbol, "qty": order.qty, "side": AlpacaSide(order.side.value),
            "time_in_force": AlpacaTif(order.time_in_force.value), "client_order_id": order.client_order_id,
        }
        if order.is_bracket:
            fields.update(order_class=OrderClass.BRACKET,
                          take_profit=TakeProfitRequest(limit_price=order.take_profit_price),
                          stop_loss=StopLossRequest(stop_price=order.stop_loss_price))
        kinds = {
            OrderType.MARKET: (MarketOrderRequest, {}),
            OrderType.LIMIT: (LimitOrderRequest, {"limit_price": order.limit_price}),
            OrderType.STOP: (StopOrderRequest, {"stop_price": order.stop_price}),
            OrderType.STOP_LIMIT: (StopLimitOrderRequest, {"limit_price": order.limit_price,
                                                           "stop_price": order.stop_price}),
        }
        kind, prices = kinds[order.order_type]
        try:
            return kind(**fields, **prices)
        except (ValidationError, ValueError) as exc:
            # alpaca-py refused to build the request: nothing was sent.
            raise InvalidOrder(f"{NAME} cannot take order {order.client_order_id}: {_first_line(exc)}",
                               broker=NAME, client_order_id=order.client_order_id) from None

    def cancel(self, client_order_id: str) -> BrokerOrder:
        state = self._existing(client_order_id, "cancel")
        if not state.is_open:
            return state
        try:
            self._client.cancel_order_by_id(state.broker_order_id)  # 204, no body
        except Exception as exc:
            error = self._error(exc, writing=True, cid=client_order_id, doing=f"cancelling order {client_order_id}")
            if not isinstance(error, OrderRejected):
                raise error from None
            # 422 "not cancelable": it filled or ended meanwhile; the order as it stands says so.
            log.info("%s would not cancel %s (%s)", NAME, client_order_id, error)
        return self._existing(client_order_id, "cancel")

    def replace(self, client_order_id: str, change: Replacement) -> BrokerOrder:
        """Alpaca replaces by a new order with a client order id of its own: `<cid>.r<n>`,
        derived, so that a replace whose answer was lost is found again."""
        state = self._existing(client_order_id, "replace")
        new_cid = replacement_id(client_order_id)
        if change.qty is not None and change.qty != int(change.qty):
            raise InvalidOrder(f"{NAME} replaces whole-share quantities only, not {change.qty}",
                               broker=NAME, client_order_id=client_order_id)
        request = ReplaceOrderRequest(qty=None if change.qty is None else int(change.qty),
                                      limit_price=change.limit_price, stop_price=change.stop_price,
                                      client_order_id=new_cid)
        try:
            return self._remember(self._client.replace_order_by_id(state.broker_order_id, request))
        except Exception as exc:
            error = self._error(exc, writing=True, cid=client_order_id, doing=f"replacing order {client_order_id}")
            if isinstance(error, DuplicateOrderId):
                found = self.order(new_cid)  # the replacement exists already: an earlier try landed
                if found is not None:
                    return found
            raise error from None

    def order(self, client_order_id: str) -> BrokerOrder | None:
        def get() -> BrokerOrder | None:
            try:
                return self._remember(self._client.get_order_by_client_id(client_order_id))
            except APIError as exc:
                if exc.status_code == 404:
                    return None
                raise
        return self._read(f"order {client_order_id}", get)

    def _existing(self, client_order_id: str, action: str) -> BrokerOrder:
        state = self.order(client_order_id)
        if state is None:
            raise InvalidOrder(f"{NAME} has no order {client_order_id} to {action}", broker=NAME,
                               client_order_id=client_order_id)
        return state

    def open_orders(self) -> list[BrokerOrder]:
        return self._read("open orders", lambda: self._list_orders(QueryOrderStatus.OPEN, None))

    def orders(self, since: datetime) -> list[BrokerOrder]:
        return self._read("orders", lambda: self._list_orders(QueryOrderStatus.ALL, since))

    def _list_orders(self, status: QueryOrderStatus, since: datetime | None) -> list[BrokerOrder]:
        """Every page, oldest first: each next page starts after the last order seen. Alpaca's
        `after` is exclusive, so pages overlap by a microsecond and repeats are dropped. Not
        nested: a bracket's legs are orders of their own here, each with its own status."""
        seen: dict[str, BrokerOrder] = {}
        after = since
        while True:
            page = self._client.get_orders(GetOrdersRequest(status=status, after=after, direction="asc",
                                                            limit=ORDERS_PAGE, nested=False))
            fresh = [o for o in page if str(o.id) not in seen]
            for o in fresh:
                seen[str(o.id)] = self._remember(o)
            if len(page) < ORDERS_PAGE or not fresh:
                return list(seen.values())
            after = max(o.submitted_at for o in page) - timedelta(microseconds=1)

    def _remember(self, o: AlpacaOrder) -> BrokerOrder:
        state = broker_order(o)
        for one in (state, *state.legs):
            self._cids[one.broker_order_id] = one.client_order_id
        return state

    # -- fills, positions, account, clock --------------------------------------------------

    def fills(self, since: datetime) -> list[Fill]:
        return self._read("fills", lambda: self._fills(since))

    def _fills(self, since: datetime) -> list[Fill]:
        activities: list[dict] = []
        token = None
        while True:
            params = {"after": since.astimezone(UTC).isoformat(), "direction": "asc",
                      "page_size": ACTIVITIES_PAGE, "page_token": token}
            page = self._client.get("/account/activities/FILL", params)
            if not isinstance(page, list):
                raise InvalidRecord(f"account activities came back as {type(page).__name__}, not a list")
            activities += page
            if len(page) < ACTIVITIES_PAGE:
                break
            token = page[-1].get("id")
        return [self._fill(a) for a in activities]

    def _fill(self, activity: dict) -> Fill:
        try:
            order_id = str(activity["order_id"])
            return Fill(broker=NAME, fill_id=fill_id(activity["id"]), client_order_id=self._cid(order_id),
                        symbol=activity["symbol"], side=_side(activity["side"]),
                        ts=_instant(activity["transaction_time"]), qty=float(activity["qty"]),
                        price=float(activity["price"]))
        except (KeyError, TypeError) as exc:
            raise InvalidRecord(f"fill activity lacks {exc}") from None

    def _cid(self, order_id: str) -> str:
        if order_id not in self._cids:
            self._remember(self._client.get_order_by_id(order_id))
        return self._cids[order_id]

    def positions(self) -> list[Position]:
        def get() -> list[Position]:
            now = datetime.now(UTC)
            held = []
            for p in self._client.get_all_positions():
                qty = float(p.qty)
                if _value(p.side) == "short" and qty > 0:
                    qty = -qty
                held.append(Position(symbol=p.symbol, qty=qty, avg_price=float(p.avg_entry_price), as_of=now))
            return held
        return self._read("positions", get)

    def account(self) -> Account:
        def get() -> Account:
            a = self._client.get_account()
            return Account(broker=NAME, as_of=datetime.now(UTC), equity=float(a.equity or 0),
                           cash=float(a.cash or 0), buying_power=float(a.buying_power or 0),
                           last_equity=_num(a.last_equity))
        return self._read("account", get)

    def clock(self) -> Clock:
        def get() -> Clock:
            c = self._client.get_clock()
            return Clock(timestamp=c.timestamp, is_open=c.is_open, next_open=c.next_open, next_close=c.next_close)
        return self._read("clock", get)

    # -- reading safely, and typed errors ---------------------------------------------------

    def _read(self, what: str, fetch: Callable[[], T]) -> T:
        """Run a read; a failed connection (not a rate limit: alpaca-py waited on those) is
        tried again up to `read_attempts` times with a doubling wait."""
        attempts = max(1, self.tuning.read_attempts)
        for attempt in range(1, attempts + 1):
            try:
                return fetch()
            except Exception as exc:
                error = self._error(exc, writing=False, cid=None, doing=f"reading {what}")
            if isinstance(error, RateLimited) or not isinstance(error, Disconnected) or attempt == attempts:
                raise error
            log.warning("%s (attempt %d of %d); trying again", error, attempt, attempts)
            self._sleep(self.tuning.read_wait_s * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def _error(self, exc: Exception, *, writing: bool, cid: str | None, doing: str) -> BrokerError:
        """The typed error for a vendor exception; `writing`: an order was being sent or changed."""
        answer = self._answer(exc)
        if answer is None:  # the answer came, but could not be read
            detail = f"{NAME} answered {doing} with something unreadable ({type(exc).__name__}: {_first_line(exc)})"
            kind: type[BrokerError] = Disconnected if writing else QueryFailed
            return kind(self._scrub(detail), broker=NAME, client_order_id=cid)
        message = self._scrub(answer.message)[:MESSAGE_LIMIT]
        status = "no answer" if answer.status is None else f"HTTP {answer.status}"
        kind = _error_kind(answer, writing)
        text = f"{NAME} {doing}: {status}: {message}"
        if kind is BrokerError:
            text = (f"{NAME} refused the credentials ({status}: {message}): check {KEY_SETTING} and {SECRET_SETTING}"
                    f" (paper keys work only with the paper URL, live keys with the live one)")
        elif answer.status in (429, 504) and self.tuning.sdk_retries:
            text += f" (after {self.tuning.sdk_retries} repeats by alpaca-py)"
        return kind(text, broker=NAME, client_order_id=cid)

    @staticmethod
    def _answer(exc: Exception) -> _Answer | None:
        if isinstance(exc, APIError):
            message, code = _read_body(str(exc))
            return _Answer(exc.status_code, message, code)
        if isinstance(exc, requests.Timeout):
            return _Answer(None, "timed out")
        if isinstance(exc, requests.JSONDecodeError):
            return None
        if isinstance(exc, (requests.ConnectionError, requests.RequestException, ConnectionError)):
            # requests' messages repeat the URL and its pool internals: the name says enough.
            return _Answer(None, f"connection failed ({type(exc).__name__})")
        return None

    def _scrub(self, text: str) -> str:
        return redact_text(text, [s.get_secret_value() for s in self._secrets])


def _error_kind(answer: _Answer, writing: bool) -> type[BrokerError]:
    """Which typed error an Alpaca error answer is (BrokerError itself: refused credentials)."""
    status, text = answer.status, answer.message.lower()
    if status is None or status >= 500:
        return Disconnected
    if status == 429:
        return RateLimited
    if status == 401 or (status == 403 and (answer.code == 40110000 or any(w in text for w in AUTH_WORDS))):
        return BrokerError
    if not writing:
        return QueryFailed
    if "client_order_id" in text and "unique" in text:
        return DuplicateOrderId
    if "buying power" in text:
        return InsufficientBuyingPower
    if "halt" in text:
        return Halted
    if status == 403 and any(w in text for w in SHORT_WORDS):
        return NotShortable
    if status in (400, 404, 422):
        return InvalidOrder  # unknown asset, bad price or quantity, not cancelable / replaceable
    return OrderRejected


def replacement_id(client_order_id: str) -> str:
    """`cid` -> `cid.r1` -> `cid.r2`: the client order id of the order that replaces this one."""
    m = re.fullmatch(r"(.*)\.r(\d+)", client_order_id)
    return f"{m.group(1)}.r{int(m.group(2)) + 1}" if m else f"{client_order_id}.r1"


def _stream_url(rest_url: str) -> str:
    """Alpaca serves trade_updates at the REST host's /stream: https -> wss, http -> ws."""
    parts = urlsplit(rest_url)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/stream", "", ""))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:MESSAGE_LIMIT]


__all__ = ["AlpacaBroker", "AlpacaTuning", "broker_order", "order_status", "replacement_id"]
