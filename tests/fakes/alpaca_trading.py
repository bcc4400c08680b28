"""A stateful fake of Alpaca's Trading API (REST /v2 and the trade_updates websocket), for
driving the REAL alpaca-py `TradingClient` and `TradingStream` over 127.0.0.1.

REST (JSON; numbers as strings, times RFC 3339, as Alpaca sends them; credentials in the
APCA-API-KEY-ID / APCA-API-SECRET-KEY headers, else 401 {"code":40110000,...}):

    GET    /v2/account | /v2/clock | /v2/assets/{symbol} | /v2/positions | /v2/positions/{symbol}
    POST   /v2/orders                        simple or bracket; answers status "accepted"
    GET    /v2/orders?status=&after=&until=&direction=&limit=&nested=&symbols=&side=
    GET    /v2/orders:by_client_order_id?client_order_id=   | GET /v2/orders/{id}
    PATCH  /v2/orders/{id}                   replace: a new order, the old one "replaced"
    DELETE /v2/orders/{id}                   204, no body  | DELETE /v2/orders: 207
    GET    /v2/account/activities/FILL?after=&until=&direction=&page_size=&page_token=

Refusals, as Alpaca words them (codes are best-effort, see shared/reference/brokers/REPORT.md):
403 40310000 "insufficient buying power" / "insufficient qty available for order ..." (the
account cannot short); 422 40010001 "client_order_id must be unique" (also after a cancel:
Alpaca never reuses an id), "could not find us_equity 'X'" (unknown asset, the wording of
alpacahq/Alpaca-API#184), invalid fields; 404 40410000 "order not found"; 422 42210000 "order
is not cancelable".

trade_updates (ws://127.0.0.1:P/stream, binary JSON frames like paper): the client
authenticates ({"action":"authenticate","data":{"key_id","secret_key"}} -> "authorized" or
"unauthorized" and a close), listens ({"action":"listen",...} -> {"stream":"listening",...}),
then gets {"stream":"trade_updates","data":{"event","timestamp","order",["execution_id",
"price","qty","position_qty"]}} for new, partial_fill, fill, canceled, replaced, expired.
A fill's activity id is "<yyyymmddhhmmssmmm>::<execution_id>".

Controls (from the test thread): set_price, set_market_open, run_auction("opg"|"cls"),
fill(cid, qty=None, price=None), expire(cid), inject_error(...), reject_next(message),
delay_next(seconds), drop_connection(failures), requests, posted(cid), submissions(cid).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from zoneinfo import ZoneInfo

from tests.fakes.vendor_http import ECHO_KINDS, echo_answer, echo_message, request_text

NEW_YORK = ZoneInfo("America/New_York")
WORKING = ("accepted", "new", "partially_filled", "held")
ACCOUNT_ID = "4a2b1c9e-0f6d-4e8a-9b7c-3d5e6f7a8b90"
# websockets logs frames at DEBUG, the client's authentication frame included: kept quiet.
_SERVER_LOG = logging.getLogger("tests.fakes.alpaca_trading.websocket")
_SERVER_LOG.setLevel(logging.WARNING)


def _dec(x: Any) -> Decimal:
    return Decimal(str(x))


def _s(x: Decimal | float | None) -> str | None:
    """Alpaca's decimal strings: "10", "9.5"."""
    return None if x is None else format(_dec(x).normalize(), "f")


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Refusal(Exception):
    """An Alpaca error answer."""

    def __init__(self, status: int, code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.body = status, {"code": code, "message": message, **extra}


@dataclass(frozen=True)
class Seen:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class _Injected:
    method: str
    path: re.Pattern[str]
    status: int
    body: Any  # dict (JSON) or str (sent as text/html)
    times: int
    after_write: bool


@dataclass
class _Order:
    """An order and the state Alpaca does not show."""

    json: dict[str, Any]
    submitted: datetime
    role: str = "entry"  # entry | take_profit | stop_loss
    parent: str | None = None
    legs: list[str] = field(default_factory=list)
    triggered: bool = False  # a stop (limit) whose stop price was reached

    def __getitem__(self, key: str) -> Any:
        return self.json[key]


class AlpacaTradingFake:
    """Alpaca's trading REST API and trade_updates stream on 127.0.0.1 (ephemeral ports)."""

    def __init__(self, api_key: str = "fake-key-id", secret_key: str = "fake-secret-key", *,
                 cash: float = 100_000.0, prices: dict[str, float] | None = None, market_open: bool = True,
                 max_lifetime: float = 600.0) -> None:
        self.api_key, self.secret_key = api_key, secret_key
        self.cash = _dec(cash)
        self.last_equity = _dec(cash)
        self.prices: dict[str, Decimal] = {s: _dec(p) for s, p in (prices or {}).items()}
        self.market_open = market_open
        self.max_lifetime = max_lifetime
        self.lock = threading.RLock()
        self.orders: dict[str, _Order] = {}
        self.by_cid: dict[str, str] = {}
        self.positions: dict[str, dict[str, Decimal]] = {}
        self.activities: list[dict[str, Any]] = []
        self.requests: list[Seen] = []
        self._accepted: Counter[str] = Counter()
        self._injected: list[_Injected] = []
        self._echoes: list[str] = []  # kinds of echo page (vendor_http.ECHO_KINDS) the next requests get
        self._echo_streams = 0  # stream clients that get their auth message quoted back
        self.echoed = 0  # answers and stream messages that quoted a request back
        self._drop_http = 0
        self._delays: list[float] = []
        self._sockets: set[socket.socket] = set()
        self._ws_clients: set[Any] = set()
        self._ws_loop: asyncio.AbstractEventLoop | None = None
        self._ws_outbox: asyncio.Queue[bytes] | None = None
        self._ws_ready = threading.Event()
        self._timer: threading.Timer | None = None
        self._stopped = False

    # -- life ----------------------------------------------------------------------------

    def start(self) -> AlpacaTradingFake:
        fake = self

        class Handler(_Handler):
            pass

        Handler.fake = fake
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
        self._ws_thread = threading.Thread(target=lambda: asyncio.run(self._ws_main()), daemon=True)
        self._ws_thread.start()
        if not self._ws_ready.wait(5):
            raise RuntimeError("the trade_updates server did not start")
        self._timer = threading.Timer(self.max_lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        with self.lock:
            if self._stopped:
                return
            self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._close_http_sockets()
        if self._ws_loop is not None and not self._ws_loop.is_closed():
            self._ws_loop.call_soon_threadsafe(self._ws_stop.set)
            self._ws_thread.join(2)

    def __enter__(self) -> AlpacaTradingFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def stream_url(self) -> str:
        return f"ws://127.0.0.1:{self._ws_port}/stream"

    # -- controls ------------------------------------------------------------------------

    def set_price(self, symbol: str, price: float) -> None:
        """The market trades at `price`: working orders it reaches fill (resting limits at their limit)."""
        with self.lock:
            self.prices[symbol] = _dec(price)
            for o in list(self.orders.values()):
                if o["symbol"] == symbol:
                    self._work(o, resting=True)

    def set_market_open(self, is_open: bool) -> None:
        with self.lock:
            self.market_open = is_open
            if is_open:
                for o in list(self.orders.values()):
                    self._work(o, resting=True)

    def run_auction(self, tif: str = "opg") -> None:
        """The opening (opg) or closing (cls) auction: those orders fill at the last price."""
        with self.lock:
            for o in list(self.orders.values()):
                if o["time_in_force"] == tif and o["status"] in WORKING:
                    self._work(o, resting=False, auction=True)

    def fill(self, client_order_id: str, qty: float | None = None, price: float | None = None) -> None:
        """Execute `qty` (default: all that remains) at `price` (default: its limit, else the last price)."""
        with self.lock:
            o = self.orders[self.by_cid[client_order_id]]
            px = _dec(price) if price is not None else _dec(o["limit_price"] or self.prices[o["symbol"]])
            self._execute(o, _dec(qty) if qty is not None else None, px)

    def expire(self, client_order_id: str) -> None:
        with self.lock:
            o = self.orders[self.by_cid[client_order_id]]
            self._end(o, "expired", "expired_at")

    def inject_error(self, status: int, body: Any = None, *, method: str = "POST", path: str = r"^/v2/orders$",
                     times: int = 1, after_write: bool = False) -> None:
        """The next `times` matching requests get `status` and `body` (a dict, or text sent as
        HTML). after_write=True does the request first: a gateway error hiding a done write."""
        answer = body if body is not None else {"code": status * 100000, "message": "injected"}
        with self.lock:
            self._injected.append(_Injected(method, re.compile(path), status, answer, times, after_write))

    def echo_next(self, kind: str, times: int = 1) -> None:
        """The next `times` requests are answered with a page quoting them back (vendor_http.echo_answer)."""
        if kind not in ECHO_KINDS:
            raise ValueError(f"echo kind must be one of {ECHO_KINDS}, got {kind!r}")
        with self.lock:
            self._echoes += [kind] * times

    def echo_stream_next(self, times: int = 1) -> None:
        """The next `times` stream clients, once authorized, get a trade_updates message quoting
        their authentication message back before they are told they listen."""
        with self.lock:
            self._echo_streams += times

    def reject_next(self, message: str, status: int = 403, code: int = 40310000) -> None:
        """The next order is refused with Alpaca's error body."""
        self.inject_error(status, {"code": code, "message": message})

    def drop_connection(self, failures: int = 1) -> None:
        """The network dies: stream sockets and open HTTP connections close, and the next
        `failures` HTTP requests are cut off without an answer."""
        with self.lock:
            self._drop_http += failures
        self._close_http_sockets()
        if self._ws_loop is not None:
            done = threading.Event()
            self._ws_loop.call_soon_threadsafe(lambda: (self._abort_ws_clients(), done.set()))
            done.wait(2)  # on return the stream sockets are gone

    def delay_next(self, seconds: float, times: int = 1) -> None:
        """The next `times` requests are answered only after `seconds` (a client timeout)."""
        with self.lock:
            self._delays += [seconds] * times

    def posted(self, client_order_id: str) -> list[Any]:
        """Bodies of every POST /v2/orders with this client order id, as received."""
        with self.lock:
            return [r.body for r in self.requests if r.method == "POST" and r.path == "/v2/orders"
                    and isinstance(r.body, dict) and r.body.get("client_order_id") == client_order_id]

    def submissions(self, client_order_id: str) -> int:
        """How many orders with this client order id were accepted."""
        with self.lock:
            return self._accepted[client_order_id]

    def order_json(self, client_order_id: str) -> dict[str, Any]:
        with self.lock:
            return dict(self.orders[self.by_cid[client_order_id]].json)

    @property
    def stream_clients(self) -> int:
        return len(self._ws_clients)

    # -- HTTP ----------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, str], body: Any,
               headers: dict[str, str]) -> tuple[int, Any] | None:
        """(status, body) for one request; None: cut the connection without an answer."""
        with self.lock:
            delay = self._delays.pop(0) if self._delays else 0.0
        if delay:
            time.sleep(delay)
        with self.lock:
            self.requests.append(Seen(method, path, query, body))
            if self._drop_http > 0:
                self._drop_http -= 1
                return None
            if self._echoes:
                self.echoed += 1
                target = path + (f"?{urlencode(query)}" if query else "")
                sent = "" if body is None else json.dumps(body)
                return echo_answer(self._echoes.pop(0), request_text(method, target, headers.items(), sent))
            injected = next((e for e in self._injected if e.times > 0 and e.method == method
                             and e.path.search(path)), None)
            if injected is not None:
                injected.times -= 1
                if injected.after_write:
                    self._route(method, path, query, body, headers)
                return injected.status, injected.body
            return self._route(method, path, query, body, headers)

    def _route(self, method: str, path: str, query: dict[str, str], body: Any,
               headers: dict[str, str]) -> tuple[int, Any]:
        if (headers.get("apca-api-key-id"), headers.get("apca-api-secret-key")) != (self.api_key, self.secret_key):
            return 401, {"code": 40110000, "message": "request is not authorized"}
        for verb, pattern, handler in ROUTES:
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                try:
                    return handler(self, query, body, *match.groups())
                except Refusal as refusal:
                    return refusal.status, refusal.body
        return 404, {"code": 40410000, "message": "endpoint not found"}

    def _close_http_sockets(self) -> None:
        with self.lock:
            sockets = list(self._sockets)
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # -- account, clock, assets, positions --------------------------------------------------

    def r_account(self, q: dict, b: Any) -> tuple[int, Any]:
        long_value = sum((p["qty"] * self.prices[s] for s, p in self.positions.items()), Decimal(0))
        equity = self.cash + long_value
        bp = self._buying_power()
        return 200, {
            "id": ACCOUNT_ID, "account_number": "PA3TAPEFLOW1", "status": "ACTIVE", "crypto_status": "ACTIVE",
            "currency": "USD", "cash": _s(self.cash), "buying_power": _s(bp), "regt_buying_power": _s(bp),
            "daytrading_buying_power": "0", "non_marginable_buying_power": _s(bp), "equity": _s(equity),
            "last_equity": _s(self.last_equity), "portfolio_value": _s(equity), "long_market_value": _s(long_value),
            "short_market_value": "0", "initial_margin": "0", "maintenance_margin": "0",
            "last_maintenance_margin": "0", "sma": "0", "multiplier": "1", "accrued_fees": "0",
            "pattern_day_trader": False, "trading_blocked": False, "transfers_blocked": False,
            "account_blocked": False, "trade_suspended_by_user": False, "shorting_enabled": False,
            "daytrade_count": 0, "created_at": "2024-01-02T14:30:00Z",
        }

    def _buying_power(self, ignore: str | None = None) -> Decimal:
        held = Decimal(0)
        for o in self.orders.values():
            if o["side"] == "buy" and o["status"] in WORKING and o.role == "entry" and o["id"] != ignore:
                px = _dec(o["limit_price"] or self.prices[o["symbol"]])
                held += (_dec(o["qty"]) - _dec(o["filled_qty"])) * px
        return self.cash - held

    def r_clock(self, q: dict, b: Any) -> tuple[int, Any]:
        now = datetime.now(NEW_YORK)
        opens = (now + timedelta(days=1)).replace(hour=9, minute=30, second=0, microsecond=0)
        closes = now.replace(hour=16, minute=0, second=0, microsecond=0)
        if closes <= now:
            closes += timedelta(days=1)
        return 200, {"timestamp": now.isoformat(), "is_open": self.market_open, "next_open": opens.isoformat(),
                     "next_close": closes.isoformat()}

    def _asset_id(self, symbol: str) -> str:
        if symbol not in self.prices:
            raise Refusal(422, 40010001, f"could not find us_equity '{symbol}'")
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"alpaca-asset/{symbol}"))

    def r_asset(self, q: dict, b: Any, symbol: str) -> tuple[int, Any]:
        if symbol not in self.prices:
            raise Refusal(404, 40410000, "asset not found")
        return 200, {"id": self._asset_id(symbol), "class": "us_equity", "exchange": "NASDAQ", "symbol": symbol,
                     "name": f"{symbol} Inc.", "status": "active", "tradable": True, "marginable": True,
                     "shortable": False, "easy_to_borrow": False, "fractionable": True, "attributes": []}

    def _position_json(self, symbol: str) -> dict[str, Any]:
        p, px = self.positions[symbol], self.prices[symbol]
        value, cost = p["qty"] * px, p["qty"] * p["avg"]
        return {"asset_id": self._asset_id(symbol), "symbol": symbol, "exchange": "NASDAQ", "asset_class": "us_equity",
                "asset_marginable": True, "qty": _s(p["qty"]), "qty_available": _s(p["qty"]),
                "avg_entry_price": _s(p["avg"]), "side": "long", "market_value": _s(value), "cost_basis": _s(cost),
                "unrealized_pl": _s(value - cost), "unrealized_plpc": _s((value - cost) / cost if cost else 0),
                "unrealized_intraday_pl": _s(value - cost),
                "unrealized_intraday_plpc": _s((value - cost) / cost if cost else 0), "current_price": _s(px),
                "lastday_price": _s(px), "change_today": "0"}

    def r_positions(self, q: dict, b: Any) -> tuple[int, Any]:
        return 200, [self._position_json(s) for s in sorted(self.positions)]

    def r_position(self, q: dict, b: Any, symbol: str) -> tuple[int, Any]:
        if symbol not in self.positions:
            raise Refusal(404, 40410000, "position does not exist")
        return 200, self._position_json(symbol)

    # -- orders ----------------------------------------------------------------------------

    def _public(self, o: _Order, nested: bool = True) -> dict[str, Any]:
        out = dict(o.json)
        out["legs"] = [self._public(self.orders[i]) for i in o.legs] if (nested and o.legs) else None
        return out

    def _new_order(self, req: dict[str, Any], *, replaces: str | None = None, role: str = "entry",
                   parent: str | None = None, status: str = "accepted") -> _Order:
        symbol = req.get("symbol") or ""
        asset_id = self._asset_id(symbol)
        side, kind, tif = req.get("side"), req.get("type"), req.get("time_in_force")
        if side not in ("buy", "sell"):
            raise Refusal(422, 40010001, "side must be buy or sell")
        if kind not in ("market", "limit", "stop", "stop_limit"):
            raise Refusal(422, 40010001, f"invalid order type {kind!r}")
        if tif not in ("day", "gtc", "opg", "cls", "ioc", "fok"):
            raise Refusal(422, 40010001, "invalid time_in_force")
        if tif in ("opg", "cls") and kind not in ("market", "limit"):
            raise Refusal(422, 40010001, "opg/cls orders must be market or limit orders")
        if req.get("qty") is None or _dec(req["qty"]) <= 0:
            raise Refusal(422, 40010001, "qty must be > 0")
        if kind in ("limit", "stop_limit") and req.get("limit_price") is None:
            raise Refusal(422, 40010001, "limit_price is required")
        if kind in ("stop", "stop_limit") and req.get("stop_price") is None:
            raise Refusal(422, 40010001, "stop_price is required")
        cid = req.get("client_order_id") or str(uuid.uuid4())
        if len(cid) > 128:
            raise Refusal(422, 40010001, "client_order_id must be no more than 128 characters")
        if cid in self.by_cid:
            raise Refusal(422, 40010001, "client_order_id must be unique")
        qty = _dec(req["qty"])
        if role == "entry":
            self._check_funds(symbol, side, qty, req.get("limit_price"), ignore=replaces)
        now = datetime.now(UTC)
        ts = _stamp(now)
        o = _Order(json={
            "id": str(uuid.uuid4()), "client_order_id": cid, "created_at": ts, "updated_at": ts, "submitted_at": ts,
            "filled_at": None, "expired_at": None, "expires_at": None, "canceled_at": None, "failed_at": None,
            "replaced_at": None, "replaced_by": None, "replaces": replaces, "asset_id": asset_id, "symbol": symbol,
            "asset_class": "us_equity", "notional": None, "qty": _s(qty), "filled_qty": "0", "filled_avg_price": None,
            "order_class": req.get("order_class") or "simple", "order_type": kind, "type": kind, "side": side,
            "position_intent": "buy_to_open" if side == "buy" else "sell_to_close", "time_in_force": tif,
            "limit_price": _s(req.get("limit_price")), "stop_price": _s(req.get("stop_price")), "status": status,
            "extended_hours": bool(req.get("extended_hours") or False), "legs": None, "trail_percent": None,
            "trail_price": None, "hwm": None,
        }, submitted=now, role=role, parent=parent)
        self.orders[o["id"]] = o
        self.by_cid[cid] = o["id"]
        self._accepted[cid] += 1
        return o

    def _check_funds(self, symbol: str, side: str, qty: Decimal, limit: Any, ignore: str | None) -> None:
        if side == "buy":
            cost = qty * _dec(limit if limit is not None else self.prices[symbol])
            bp = self._buying_power(ignore)
            if cost > bp:
                raise Refusal(403, 40310000, "insufficient buying power", buying_power=_s(bp), cost_basis=_s(cost))
            return
        have = self.positions.get(symbol, {}).get("qty", Decimal(0))
        held = sum((_dec(o["qty"]) - _dec(o["filled_qty"]) for o in self.orders.values()
                    if o["symbol"] == symbol and o["side"] == "sell" and o["status"] in WORKING
                    and o.role == "entry" and o["id"] != ignore), Decimal(0))
        if qty > have - held:  # this account cannot sell short
            raise Refusal(403, 40310000, f"insufficient qty available for order (requested: {_s(qty)}, "
                          f"available: {_s(have - held)})", available=_s(have - held), existing_qty=_s(have),
                          held_for_orders=_s(held), symbol=symbol)

    def r_submit(self, q: dict, b: Any) -> tuple[int, Any]:
        req = b if isinstance(b, dict) else {}
        bracket = req.get("order_class") == "bracket"
        if bracket:
            self._check_bracket(req)
        o = self._new_order(req)
        if bracket:
            self._add_legs(o, req)
        answer = self._public(o)  # the answer shows "accepted"; the order moves on at once, as at Alpaca
        self._open(o)
        return 200, answer

    def _check_bracket(self, req: dict[str, Any]) -> None:
        tp, sl = req.get("take_profit") or {}, req.get("stop_loss") or {}
        if tp.get("limit_price") is None or sl.get("stop_price") is None:
            raise Refusal(422, 40010001, "bracket orders require take_profit.limit_price and stop_loss.stop_price")
        if req.get("time_in_force") not in ("day", "gtc"):
            raise Refusal(422, 40010001, "bracket orders must be day or gtc")
        if req.get("type") not in ("market", "limit"):
            raise Refusal(422, 40010001, "bracket orders must be market or limit orders")

    def _add_legs(self, o: _Order, req: dict[str, Any]) -> None:
        exit_side = "sell" if o["side"] == "buy" else "buy"
        base = {"symbol": o["symbol"], "qty": o["qty"], "side": exit_side, "time_in_force": o["time_in_force"],
                "order_class": "bracket"}
        tp = self._new_order({**base, "type": "limit", "limit_price": req["take_profit"]["limit_price"]},
                             role="take_profit", parent=o["id"], status="held")
        sl = req["stop_loss"]
        kind = "stop_limit" if sl.get("limit_price") is not None else "stop"
        stop = self._new_order({**base, "type": kind, "stop_price": sl["stop_price"],
                                "limit_price": sl.get("limit_price")}, role="stop_loss", parent=o["id"], status="held")
        o.legs = [tp["id"], stop["id"]]

    def _open(self, o: _Order, resting: bool = False) -> None:
        self._touch(o, status="new")
        self._emit("new", o)
        self._work(o, resting=resting)

    def _touch(self, o: _Order, **changes: Any) -> None:
        o.json.update(changes, updated_at=_stamp(datetime.now(UTC)))

    def _work(self, o: _Order, *, resting: bool, auction: bool = False) -> None:
        """Fill `o` if the market reaches it. A limit that was resting fills at its limit;
        one that was marketable on arrival, at the market."""
        if o["status"] not in ("new", "partially_filled"):
            return
        if o["time_in_force"] in ("opg", "cls") and not auction:
            return
        if not self.market_open and not auction:
            return
        px, side = self.prices[o["symbol"]], o["side"]
        stop = _dec(o["stop_price"]) if o["stop_price"] else None
        if stop is not None and not o.triggered:
            if not (px >= stop if side == "buy" else px <= stop):
                return
            o.triggered = True
        if o["type"] in ("market", "stop"):
            self._execute(o, None, px)
            return
        limit = _dec(o["limit_price"])
        if px <= limit if side == "buy" else px >= limit:
            self._execute(o, None, limit if resting else px)
        elif o["time_in_force"] in ("ioc", "fok"):
            self._end(o, "canceled", "canceled_at")

    def _execute(self, o: _Order, qty: Decimal | None, price: Decimal) -> None:
        before = _dec(o["filled_qty"])
        remaining = _dec(o["qty"]) - before
        qty = min(qty if qty is not None else remaining, remaining)
        if qty <= 0:
            return
        done = before + qty
        avg = (before * _dec(o["filled_avg_price"] or 0) + qty * price) / done
        now = datetime.now(UTC)
        full = done >= _dec(o["qty"])
        self._touch(o, filled_qty=_s(done), filled_avg_price=_s(avg), status="filled" if full else "partially_filled",
                    filled_at=_stamp(now) if full else None)
        sign = 1 if o["side"] == "buy" else -1
        self.cash -= sign * qty * price
        position = self.positions.setdefault(o["symbol"], {"qty": Decimal(0), "avg": Decimal(0)})
        if sign > 0:
            position["avg"] = (position["qty"] * position["avg"] + qty * price) / (position["qty"] + qty)
        position["qty"] += sign * qty
        if position["qty"] == 0:
            del self.positions[o["symbol"]]
        execution = str(uuid.uuid4())
        self.activities.append({
            "id": f"{now.strftime('%Y%m%d%H%M%S')}{now.microsecond // 1000:03d}::{execution}", "activity_type": "FILL",
            "transaction_time": _stamp(now), "type": "fill" if full else "partial_fill", "price": _s(price),
            "qty": _s(qty), "side": o["side"], "symbol": o["symbol"], "leaves_qty": _s(_dec(o["qty"]) - done),
            "order_id": o["id"], "cum_qty": _s(done), "order_status": o["status"],
        })
        self._emit("fill" if full else "partial_fill", o, execution_id=execution, price=_s(price), qty=_s(qty),
                   position_qty=_s(self.positions.get(o["symbol"], {}).get("qty", Decimal(0))), timestamp=_stamp(now))
        if full:
            self._after_fill(o)

    def _after_fill(self, o: _Order) -> None:
        """A filled bracket entry releases its exits; a filled exit cancels the other one."""
        if o.role == "entry":
            for leg in (self.orders[i] for i in o.legs):
                self._open(leg, resting=True)
        elif o.parent is not None:
            for other in (self.orders[i] for i in self.orders[o.parent].legs if i != o["id"]):
                self._end(other, "canceled", "canceled_at")

    def _end(self, o: _Order, status: str, stamp: str) -> None:
        if o["status"] not in WORKING:
            return
        self._touch(o, status=status, **{stamp: _stamp(datetime.now(UTC))})
        self._emit(status, o)

    def _find(self, order_id: str) -> _Order:
        if order_id not in self.orders:
            raise Refusal(404, 40410000, "order not found")
        return self.orders[order_id]

    def r_order(self, q: dict, b: Any, order_id: str) -> tuple[int, Any]:
        return 200, self._public(self._find(order_id))

    def r_order_by_cid(self, q: dict, b: Any) -> tuple[int, Any]:
        cid = q.get("client_order_id", "")
        if cid not in self.by_cid:
            raise Refusal(404, 40410000, "order not found")
        return 200, self._public(self.orders[self.by_cid[cid]])

    def r_orders(self, q: dict, b: Any) -> tuple[int, Any]:
        status = q.get("status", "open")
        nested = q.get("nested", "").lower() == "true"
        after = datetime.fromisoformat(q["after"]) if "after" in q else None
        until = datetime.fromisoformat(q["until"]) if "until" in q else None
        symbols = set(q["symbols"].split(",")) if q.get("symbols") else None
        chosen = []
        for o in self.orders.values():
            is_open = o["status"] in WORKING
            if (status == "open" and not is_open) or (status == "closed" and is_open):
                continue
            if (nested and o.parent) or (symbols and o["symbol"] not in symbols):
                continue
            if q.get("side") and o["side"] != q["side"]:
                continue
            if (after and o.submitted <= after) or (until and o.submitted >= until):
                continue
            chosen.append(o)
        chosen.sort(key=lambda o: o.submitted, reverse=q.get("direction", "desc") == "desc")
        limit = min(int(q.get("limit", "50")), 500)
        return 200, [self._public(o, nested) for o in chosen[:limit]]

    def r_cancel(self, q: dict, b: Any, order_id: str) -> tuple[int, Any]:
        o = self._find(order_id)
        if o["status"] not in WORKING:
            raise Refusal(422, 42210000, "order is not cancelable")
        for leg in (self.orders[i] for i in o.legs):
            self._end(leg, "canceled", "canceled_at")
        self._end(o, "canceled", "canceled_at")
        return 204, None

    def r_cancel_all(self, q: dict, b: Any) -> tuple[int, Any]:
        out = []
        for o in list(self.orders.values()):
            if o["status"] in WORKING and o.parent is None:
                self.r_cancel(q, b, o["id"])
                out.append({"id": o["id"], "status": 200, "body": self._public(o)})
        return 207, out

    def r_replace(self, q: dict, b: Any, order_id: str) -> tuple[int, Any]:
        old = self._find(order_id)
        if old["status"] not in ("accepted", "new") or old.legs or old.parent:
            raise Refusal(422, 42210000, "order is not replaceable")
        req = {k: old[k] for k in ("symbol", "side", "type", "time_in_force", "qty", "limit_price", "stop_price")}
        req.update({k: v for k, v in (b or {}).items() if v is not None})
        new = self._new_order(req, replaces=old["id"])
        self._touch(old, status="replaced", replaced_at=_stamp(datetime.now(UTC)), replaced_by=new["id"])
        self._emit("replaced", old)
        self._open(new)
        return 200, self._public(new)

    def r_fill_activities(self, q: dict, b: Any) -> tuple[int, Any]:
        after = datetime.fromisoformat(q["after"]) if "after" in q else None
        until = datetime.fromisoformat(q["until"]) if "until" in q else None
        rows = [a for a in self.activities
                if (after is None or datetime.fromisoformat(a["transaction_time"]) > after)
                and (until is None or datetime.fromisoformat(a["transaction_time"]) < until)]
        # By time; executions within one millisecond stay in the order they happened.
        rows.sort(key=lambda a: a["transaction_time"], reverse=q.get("direction", "desc") == "desc")
        if q.get("page_token"):
            ids = [a["id"] for a in rows]
            rows = rows[ids.index(q["page_token"]) + 1:] if q["page_token"] in ids else []
        size = min(int(q.get("page_size", "100")), 100)
        return 200, rows[:size]

    # -- trade_updates ---------------------------------------------------------------------

    def _emit(self, event: str, o: _Order, **fill: Any) -> None:
        if self._ws_loop is None or self._ws_outbox is None:
            return
        data = {"event": event, "timestamp": fill.pop("timestamp", o["updated_at"]), "order": self._public(o), **fill}
        frame = json.dumps({"stream": "trade_updates", "data": data}).encode()
        if self._ws_loop.is_closed():  # stopping: nobody is listening any more
            return
        try:
            self._ws_loop.call_soon_threadsafe(self._ws_outbox.put_nowait, frame)
        except RuntimeError:  # the loop closed between the check and the call
            pass

    def _abort_ws_clients(self) -> None:
        for ws in list(self._ws_clients):
            ws.transport.abort()
        self._ws_clients.clear()

    async def _ws_main(self) -> None:
        from websockets.asyncio.server import serve

        self._ws_stop = asyncio.Event()
        self._ws_outbox = asyncio.Queue()

        async def broadcast() -> None:
            while True:
                frame = await self._ws_outbox.get()
                for ws in list(self._ws_clients):
                    try:
                        await ws.send(frame)  # bytes: a binary frame, as paper sends
                    except Exception:
                        self._ws_clients.discard(ws)

        async def session(ws: Any) -> None:
            auth: Any = None
            try:
                async for raw in ws:
                    message = json.loads(raw)
                    if message.get("action") in ("authenticate", "auth"):
                        auth = message
                        data = message.get("data") or {}
                        ok = (data.get("key_id"), data.get("secret_key")) == (self.api_key, self.secret_key)
                        await ws.send(json.dumps({"stream": "authorization", "data": {
                            "action": "authenticate", "status": "authorized" if ok else "unauthorized"}}).encode())
                        if not ok:
                            await ws.close(1008, "unauthorized")
                            return
                    elif message.get("action") == "listen":
                        with self.lock:
                            echo, self._echo_streams = self._echo_streams > 0, max(0, self._echo_streams - 1)
                            self.echoed += echo
                        if echo:
                            await ws.send(json.dumps({"stream": "trade_updates", "data": {
                                "event": "error", "message": echo_message(auth)}}).encode())
                        streams = [s for s in (message.get("data") or {}).get("streams", []) if s == "trade_updates"]
                        (self._ws_clients.add if streams else self._ws_clients.discard)(ws)
                        await ws.send(json.dumps({"stream": "listening", "data": {"streams": streams}}).encode())
            except Exception:
                pass
            finally:
                self._ws_clients.discard(ws)

        async with serve(session, "127.0.0.1", 0, logger=_SERVER_LOG) as server:
            self._ws_port = server.sockets[0].getsockname()[1]
            self._ws_loop = asyncio.get_running_loop()
            sender = asyncio.create_task(broadcast())
            self._ws_ready.set()
            await self._ws_stop.wait()
            sender.cancel()
            for ws in list(self._ws_clients):
                ws.transport.abort()


class _Handler(BaseHTTPRequestHandler):
    fake: AlpacaTradingFake
    protocol_version = "HTTP/1.1"  # keep-alive, as alpaca-py's session expects

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, delayed ACKs cost 40 ms a request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.fake.lock:
            self.fake._sockets.add(self.connection)

    def finish(self) -> None:
        with self.fake.lock:
            self.fake._sockets.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        headers = {k.lower(): v for k, v in self.headers.items()}
        answer = self.fake.handle(self.command, parts.path, query, body, headers)
        if answer is None:  # cut off: no status line at all
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        status, payload = answer
        html = isinstance(payload, str)
        data = b"" if payload is None else (payload.encode() if html else json.dumps(payload).encode())
        try:
            self.send_response(status)
            if data:
                self.send_header("Content-Type", "text/html" if html else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True  # the client or drop_connection closed the socket

    do_GET = do_POST = do_PATCH = do_DELETE = _serve


F = AlpacaTradingFake
ROUTES = [
    ("GET", r"/v2/account", F.r_account),
    ("GET", r"/v2/clock", F.r_clock),
    ("GET", r"/v2/assets/([^/]+)", F.r_asset),
    ("GET", r"/v2/positions", F.r_positions),
    ("GET", r"/v2/positions/([^/]+)", F.r_position),
    ("POST", r"/v2/orders", F.r_submit),
    ("GET", r"/v2/orders", F.r_orders),
    ("DELETE", r"/v2/orders", F.r_cancel_all),
    ("GET", r"/v2/orders:by_client_order_id", F.r_order_by_cid),
    ("GET", r"/v2/orders/([^/]+)", F.r_order),
    ("PATCH", r"/v2/orders/([^/]+)", F.r_replace),
    ("DELETE", r"/v2/orders/([^/]+)", F.r_cancel),
    ("GET", r"/v2/account/activities/FILL", F.r_fill_activities),
]


# -- the venue the broker contract suite drives ---------------------------------------------

FAKE_KEY = "PKFAKE0123456789ABCD"
FAKE_SECRET = "fake-secret-0123456789abcdefghijklmnopqrstuv"


class AlpacaVenue:
    """AlpacaBroker against the fake: a 100,000 USD paper account (tests/broker_venues.py)."""

    def __init__(self, tmp_path: Path) -> None:
        self.fake = AlpacaTradingFake(FAKE_KEY, FAKE_SECRET, cash=100_000.0).start()
        self.broker = self._connect()

    def _connect(self) -> Any:
        from tapeflow.venues.alpaca.broker import AlpacaBroker, AlpacaTuning

        tuning = AlpacaTuning(timeout_s=5.0, sdk_wait_s=0.0, read_wait_s=0.01, stream_backoff_s=0.05)
        return AlpacaBroker(FAKE_KEY, FAKE_SECRET, url=self.fake.url, stream_url=self.fake.stream_url, tuning=tuning)

    def set_price(self, symbol: str, price: float) -> None:
        self.fake.set_price(symbol, price)

    def fill(self, client_order_id: str, qty: float | None = None) -> None:
        self.fake.fill(client_order_id, qty)

    def fail_after_write_next(self) -> None:
        self.fake.inject_error(504, {"message": "gateway timeout"}, after_write=True)

    def drop_connection(self) -> None:
        self.fake.drop_connection()

    def submissions(self, client_order_id: str) -> int:
        return self.fake.submissions(client_order_id)

    def restart(self) -> Any:
        self.broker.close()
        self.broker = self._connect()
        return self.broker

    def stop(self) -> None:
        try:
            self.broker.close()
        finally:
            self.fake.stop()
