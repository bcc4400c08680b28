"""A fake IB Gateway / TWS for historical bars, speaking the real TWS API socket protocol.

Grown from the team's verified reference fake of the IB gateway (shared reference material):
the same handshake ("API\\0" + "v157..178", server answers min(178, client max)), the same
startup sync answers ib_async's `IB.connect()` waits for, and contract qualification with
error 200 for unknown symbols, and historical data. With `trading=True` the gateway also takes
orders: `tests/fakes/ib_trading.py` (its `TradingDesk`, as `gw.trading`) answers those messages.

Wire format at server version 178, as ib_async 2.1.0 encodes and decodes it (`client.py`
`reqHistoricalData`, `decoder.py` `historicalData`); '|' stands for the NUL separator:

    C: 20|reqId|conId|symbol|secType|lastTrade|strike|right|multiplier|exchange|primaryExchange|
       currency|localSymbol|tradingClass|includeExpired|endDateTime|barSize|duration|useRTH|
       whatToShow|formatDate|keepUpToDate|chartOptions          (no version field: v >= 124)
    S: 17|reqId|startDateStr|endDateStr|nBars|(date|open|high|low|close|volume|wap|barCount)*n
    S: 4|2|reqId|code|message|                  (error: 162 no data / pacing, 200, 321, ...)

Message 17 carries its own end: ib_async 2.1.0 calls `historicalDataEnd` from it. The separate
HISTORICAL_DATA_END (108) exists only from server version 196, which this client never
negotiates. Bar dates: epoch seconds of the bar start for formatDate=2 (intraday), New York
"yyyymmdd" for daily bars. startDateStr/endDateStr use the captured "yyyymmdd  HH:MM:SS" form.

Binds 127.0.0.1 only, runs its own asyncio loop in a daemon thread, and stops on context exit
or, failing that, after `max_lifetime` seconds.

    with FakeIBGateway(symbols=["AAPL"]) as gw:
        gw.add_bars("AAPL", "1 min", minute_bars(start, 390))
        ib = IB(); ib.connect("127.0.0.1", gw.port, clientId=1)
"""

from __future__ import annotations

import asyncio
import math
import struct
import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

SERVER_VERSION = 178
ACCOUNT = "DU1234567"
NEW_YORK = ZoneInfo("America/New_York")

# Error texts as IB sends them (162 texts from real gateway logs quoted in public issues).
HMDS = "Historical Market Data Service error message:"
PACING = HMDS + "Historical data request pacing violation"
TOO_LONG = HMDS + "Time length exceed max."
UNKNOWN_SYMBOL = "No security definition has been found for the request"
CLIENT_ID_IN_USE = "Unable to connect as the client id is already in use. Retry with a unique client id."

BAR_SIZES = {"1 min": timedelta(minutes=1), "1 day": timedelta(days=1)}
# The largest span one request may cover, per IB's step-size table (1 min: 1 D; 1 day: 1 Y).
MAX_SPAN = {"1 min": timedelta(days=1), "1 day": timedelta(days=365)}
DURATION_UNITS = {"S": timedelta(seconds=1), "D": timedelta(days=1), "W": timedelta(weeks=1),
                  "M": timedelta(days=31), "Y": timedelta(days=365)}
SECONDS_LIMIT = 86_400  # IB refuses "<n> S" durations beyond one day


def frame(*fields: object) -> bytes:
    """One message: 4-byte big-endian length, then NUL-terminated text fields."""
    out = []
    for f in fields:
        if f is None:
            f = ""
        elif isinstance(f, bool):
            f = "1" if f else "0"
        out.append(str(f))
    payload = ("\0".join(out) + "\0").encode()
    return struct.pack(">I", len(payload)) + payload


def error_frame(req_id: int, code: int, message: str) -> bytes:
    """ERR_MSG (4), version 2, with the empty advancedOrderRejectJson field."""
    return frame(4, 2, req_id, code, message, "")


@dataclass(frozen=True)
class FakeBar:
    """One bar as the gateway stores it: its start instant and TRADES values."""

    start: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    wap: float
    count: int


def minute_bars(first: datetime, n: int, price: float = 100.0) -> list[FakeBar]:
    """`n` consecutive one-minute bars from `first`, prices rising by a cent a minute."""
    bars = []
    for i in range(n):
        p = round(price + i / 100, 2)
        bars.append(FakeBar(first + timedelta(minutes=i), p, round(p + 0.05, 2), round(p - 0.05, 2), round(p + 0.01, 2),
                            100.0 + i, p, 10 + i))
    return bars


def daily_bar(day: date, open_: float, volume: float = 1_000_000.0) -> FakeBar:
    """A daily bar for New York session date `day` (stored at its 09:30 open)."""
    start = datetime.combine(day, time(9, 30), NEW_YORK).astimezone(UTC)
    return FakeBar(start, open_, open_ + 2, open_ - 1, open_ + 1, volume, open_ + 0.5, 5_000)


@dataclass(frozen=True)
class HistoryRequest:
    """A reqHistoricalData as the fake received it."""

    req_id: int
    con_id: int
    symbol: str
    exchange: str
    end: str
    bar_size: str
    duration: str
    use_rth: str
    what_to_show: str
    format_date: str
    keep_up_to_date: str


@dataclass
class _Stock:
    symbol: str
    con_id: int
    primary_exchange: str = "NASDAQ"
    currency: str = "USD"


class FakeIBGateway:
    """A gateway serving contract details and historical TRADES bars, with scripted faults."""

    def __init__(self, symbols: tuple[str, ...] | list[str] = ("AAPL", "MSFT"), *, account: str = ACCOUNT,
                 server_version: int = SERVER_VERSION, max_lifetime: float = 600.0, trading: bool = False,
                 cash: float = 100_000.0) -> None:
        self.account = account
        self.server_version = server_version
        self.max_lifetime = max_lifetime
        self.stocks = {s: _Stock(s, 265598 if s == "AAPL" else 100_000 + i) for i, s in enumerate(sorted(symbols))}
        self.bars: dict[tuple[str, str], list[FakeBar]] = {}
        self.history_requests: list[HistoryRequest] = []
        self.log: list[tuple[int, list[str]]] = []  # (clientId, fields) of every message received
        self.answer_beyond_duration = False  # True: answer every stored bar up to the end, as if duration were huge
        self._faults: deque[tuple[str, int, str]] = deque()  # ("error"|"drop"|"silent", code, message)
        self._lock = threading.Lock()
        self._clients: dict[int, _Conn] = {}
        self._conns: set[_Conn] = set()
        self.port = 0
        self.trading = None
        if trading:
            from tests.fakes.ib_trading import (
                TradingDesk,  # trading imports this module's encoders
            )

            self.trading = TradingDesk(self, cash=cash)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeIBGateway:
        ready = threading.Event()

        def run() -> None:
            self.loop = asyncio.new_event_loop()
            self.loop.run_until_complete(self._serve(ready))
            self.loop.close()

        self._thread = threading.Thread(target=run, name="fake-ib-gateway", daemon=True)
        self._thread.start()
        if not ready.wait(5):
            raise RuntimeError("fake IB gateway did not start")
        return self

    async def _serve(self, ready: threading.Event) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._on_conn, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        try:
            await asyncio.wait_for(self._stop.wait(), self.max_lifetime)
        except TimeoutError:
            pass  # a test that forgot to stop us must not leave a server behind
        server.close()
        for conn in list(self._conns):
            conn.w.close()
        await asyncio.sleep(0.05)  # let connection handlers see EOF and finish

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)

    def __enter__(self) -> FakeIBGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --------------------------------------------------------------- test controls
    def add_bars(self, symbol: str, bar_size: str, bars: list[FakeBar]) -> None:
        """Store bars (duplicates allowed: they are sent as stored) for `symbol` and `bar_size`."""
        self.bars.setdefault((symbol, bar_size), []).extend(bars)

    def fail_next_history(self, code: int, message: str, times: int = 1) -> None:
        """The next `times` historical requests get error `code` instead of bars."""
        with self._lock:
            self._faults.extend([("error", code, message)] * times)

    def drop_on_next_history(self) -> None:
        """The next historical request makes the gateway close the socket (a mid-request drop)."""
        with self._lock:
            self._faults.append(("drop", 0, ""))

    def ignore_next_history(self) -> None:
        """The next historical request is never answered (a hung gateway)."""
        with self._lock:
            self._faults.append(("silent", 0, ""))

    def drop_clients(self) -> None:
        """Close every client socket (nightly restart, network blip)."""
        self.loop.call_soon_threadsafe(lambda: [c.w.close() for c in list(self._conns)])

    def _next_fault(self) -> tuple[str, int, str] | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    # ------------------------------------------------------------------ connection
    async def _on_conn(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        conn = _Conn(self, r, w)
        self._conns.add(conn)
        try:
            await conn.run()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._conns.discard(conn)
            if self._clients.get(conn.client_id) is conn:
                del self._clients[conn.client_id]
            w.close()

    # -------------------------------------------------------------------- encoders
    def contract_details(self, req_id: int, s: _Stock, exchange: str) -> bytes:
        """CONTRACT_DATA (10) for a US stock at v178, field for field as ib_async decodes it."""
        return frame(
            10, req_id, s.symbol, "STK", "", "0", "", exchange, s.currency, s.symbol,
            "NMS", "NMS", s.con_id, "0.01", "",
            "ACTIVETIM,AD,ADJUST,ALERT,ALGO,ALLOC,AVGCOST,BASKET,COND,DAY,GAT,GTC,GTD,IOC,LIT,LMT,LOC,MIT,MKT,"
            "MOC,MTL,OCA,OPG,REL,STP,STPLMT,TRAIL,WHATIF",
            "SMART,AMEX,NYSE,BATS,ARCA,ISLAND,IEX", "1", "0", f"{s.symbol} INC", s.primary_exchange, "",
            "Technology", "Computers", "Computers", "US/Eastern",
            "20261124:0400-20261124:2000", "20261124:0930-20261124:1600", "", "",
            "1", "ISIN", "US0000000000",
            "1", "", "", "26,26,26,26,26,26,26,26,26,26,26,26,26,26,26,26", "", "COMMON",
            "0.0001", "0.0001", "100")

    def history(self, conn: _Conn, req: HistoryRequest) -> None:
        """Answer one reqHistoricalData: bars, an IB error, a drop, or silence."""
        fault = self._next_fault()
        if fault is not None:
            kind, code, message = fault
            if kind == "drop":
                conn.w.close()
            elif kind == "error":
                conn.send(error_frame(req.req_id, code, message))
            return  # "silent": never answer
        stock = next((s for s in self.stocks.values() if s.con_id == req.con_id), None)
        if stock is None or stock.symbol != req.symbol:
            return conn.send(error_frame(req.req_id, 200, UNKNOWN_SYMBOL))
        problem, start, end = self._validate(req)
        if problem is not None:
            return conn.send(error_frame(req.req_id, *problem))
        assert start is not None and end is not None
        if self.answer_beyond_duration:
            start = datetime.min.replace(tzinfo=UTC)
        bars = [b for b in self.bars.get((req.symbol, req.bar_size), []) if start <= b.start < end]
        if req.use_rth == "1" and req.bar_size != "1 day":
            bars = [b for b in bars if time(9, 30) <= b.start.astimezone(NEW_YORK).time() < time(16)]
        if not bars:
            return conn.send(error_frame(req.req_id, 162, f"{HMDS}HMDS query returned no data: "
                                                          f"{req.symbol}@{req.exchange} Trades"))
        bars.sort(key=lambda b: b.start)  # stable: stored duplicates stay side by side
        fields: list[object] = []
        for b in bars:
            fields += [_bar_date(b, req), b.open, b.high, b.low, b.close, _decimal(b.volume), _decimal(b.wap), b.count]
        conn.send(frame(17, req.req_id, _header_time(start if start.year > 1 else end), _header_time(end),
                        len(bars), *fields))

    def _validate(self, req: HistoryRequest) -> tuple[tuple[int, str] | None, datetime | None, datetime | None]:
        """IB's checks on a request: ((code, message) or None, range start, range end)."""
        if req.bar_size not in BAR_SIZES:
            return (321, "Error validating request.-'bP' : cause - Historical data bar size setting is invalid. "
                         "Legal ones are: 1 secs, 5 secs, ..., 1 min, ..., 1 day, 1W, 1M"), None, None
        if req.what_to_show != "TRADES":
            return (321, f"Error validating request.-'bP' : cause - the fake serves TRADES only, "
                         f"not {req.what_to_show}"), None, None
        end = _parse_end(req.end)
        span = _parse_duration(req.duration)
        if end is None or span is None:
            return (321, f"Error validating request.-'bP' : cause - invalid end '{req.end}' or duration "
                         f"'{req.duration}'"), None, None
        if req.duration.endswith(" S") and span.total_seconds() > SECONDS_LIMIT:
            # Wording approximated: IB wants longer spans given in days.
            return (321, "Error validating request.-'bP' : cause - Historical data requests for durations "
                         "longer than 86400 seconds must be made in days."), None, None
        if span > MAX_SPAN[req.bar_size]:
            return (162, TOO_LONG), None, None
        return None, end - span, end


class _Conn:
    """One client connection: handshake, then one handler per message id (method m<id>)."""

    def __init__(self, gw: FakeIBGateway, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.gw, self.r, self.w = gw, r, w
        self.client_id = -1

    def send(self, data: bytes) -> None:
        if not self.w.is_closing():
            self.w.write(data)

    async def read_frame(self) -> str:
        n = struct.unpack(">I", await self.r.readexactly(4))[0]
        return (await self.r.readexactly(n)).decode(errors="replace")

    async def run(self) -> None:
        if await self.r.readexactly(4) != b"API\0":
            return
        lo, hi = (await self.read_frame()).split(" ")[0].lstrip("v").split("..")
        version = min(self.gw.server_version, int(hi))
        if version < int(lo):
            return  # the real gateway just drops the connection
        self.send(frame(version, datetime.now(NEW_YORK).strftime("%Y%m%d %H:%M:%S") + " EST"))
        while True:
            fields = (await self.read_frame()).split("\0")[:-1]
            self.gw.log.append((self.client_id, fields))
            desk = getattr(self.gw.trading, f"m{fields[0]}", None) if self.gw.trading else None
            if desk is not None:
                desk(self, fields)
                continue
            handler = getattr(self, f"m{fields[0]}", None)
            if handler is not None:
                handler(fields)

    # ---- startup: startApi and the sync requests IB.connect() waits for ----------
    def m71(self, f: list[str]) -> None:  # startApi: 71, 2, clientId, optCapab
        cid = int(f[2])
        if cid in self.gw._clients:
            self.send(error_frame(-1, 326, CLIENT_ID_IN_USE))
            self.w.close()
            return
        self.client_id = cid
        self.gw._clients[cid] = self
        next_id = self.gw.trading.next_order_id if self.gw.trading else 1
        self.send(frame(15, 1, self.gw.account) + frame(9, 1, next_id))
        for code, msg in ((2104, "Market data farm connection is OK:usfarm"),
                          (2106, "HMDS data farm connection is OK:ushmds"),
                          (2158, "Sec-def data farm connection is OK:secdefil")):
            self.send(error_frame(-1, code, msg))

    def m61(self, f: list[str]) -> None:  # reqPositions -> (no positions) positionEnd
        self.send(frame(62, 1))

    def m64(self, f: list[str]) -> None:  # cancelPositions
        pass

    def m5(self, f: list[str]) -> None:  # reqOpenOrders -> openOrderEnd
        self.send(frame(53, 1))

    def m16(self, f: list[str]) -> None:  # reqAllOpenOrders -> openOrderEnd
        self.send(frame(53, 1))

    def m99(self, f: list[str]) -> None:  # reqCompletedOrders -> completedOrdersEnd
        self.send(frame(102))

    def m6(self, f: list[str]) -> None:  # reqAccountUpdates: 6, 2, subscribe, acctCode
        if f[2] == "1":
            acct = self.gw.account
            self.send(frame(6, 2, "NetLiquidation", "100000.0", "USD", acct)
                      + frame(8, 1, datetime.now(NEW_YORK).strftime("%H:%M")) + frame(54, 1, acct))

    def m76(self, f: list[str]) -> None:  # reqAccountUpdatesMulti: 76, 1, reqId, account, modelCode, nlv
        self.send(frame(73, 1, f[2], self.gw.account, f[4], "NetLiquidation", "100000.0", "USD") + frame(74, 1, f[2]))

    def m77(self, f: list[str]) -> None:  # cancelAccountUpdatesMulti
        pass

    def m7(self, f: list[str]) -> None:  # reqExecutions -> (none) execDetailsEnd
        self.send(frame(55, 1, f[2]))

    def m8(self, f: list[str]) -> None:  # reqIds
        self.send(frame(9, 1, 1))

    def m17(self, f: list[str]) -> None:  # reqManagedAccts
        self.send(frame(15, 1, self.gw.account))

    def m49(self, f: list[str]) -> None:  # reqCurrentTime
        self.send(frame(49, 1, int(datetime.now(UTC).timestamp())))

    def m59(self, f: list[str]) -> None:  # reqMarketDataType
        pass

    def m15(self, f: list[str]) -> None:  # reqAutoOpenOrders
        pass

    # ---- contract details and historical data --------------------------------------
    def m9(self, f: list[str]) -> None:  # reqContractDetails: 9, 8, reqId, conId, symbol, secType, ..., exchange
        req_id, con_id, sym, sec_type, exchange = int(f[2]), int(f[3] or 0), f[4], f[5], f[10]
        stock = self.gw.stocks.get(sym) or next((s for s in self.gw.stocks.values() if s.con_id == con_id), None)
        if stock is None or sec_type not in ("", "STK"):
            self.send(error_frame(req_id, 200, UNKNOWN_SYMBOL))
            return
        self.send(self.gw.contract_details(req_id, stock, exchange or "SMART") + frame(52, 1, req_id))

    def m20(self, f: list[str]) -> None:  # reqHistoricalData (layout in the module docstring)
        req = HistoryRequest(
            req_id=int(f[1]), con_id=int(f[2] or 0), symbol=f[3], exchange=f[9], end=f[15], bar_size=f[16],
            duration=f[17], use_rth=f[18], what_to_show=f[19], format_date=f[20], keep_up_to_date=f[21],
        )
        self.gw.history_requests.append(req)
        self.gw.history(self, req)

    def m25(self, f: list[str]) -> None:  # cancelHistoricalData: 25, 1, reqId
        pass


def _parse_end(text: str) -> datetime | None:
    """endDateTime forms IB accepts: "" (now), "yyyymmdd HH:MM:SS UTC", "yyyymmdd-HH:MM:SS" (UTC),
    "yyyymmdd HH:MM:SS <IANA zone>"."""
    if not text:
        return datetime.now(UTC)
    try:
        if "-" in text[:9]:
            return datetime.strptime(text, "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC)
        day, clock, zone = text.split(" ", 2)
        tz = UTC if zone == "UTC" else ZoneInfo(zone)
        return datetime.strptime(f"{day} {clock}", "%Y%m%d %H:%M:%S").replace(tzinfo=tz).astimezone(UTC)
    except (ValueError, KeyError):
        return None


def _parse_duration(text: str) -> timedelta | None:
    """"<n> S|D|W|M|Y" as a span (months as 31 days, years as 365)."""
    parts = text.split(" ")
    if len(parts) != 2 or not parts[0].isdigit() or parts[1] not in DURATION_UNITS or int(parts[0]) <= 0:
        return None
    return int(parts[0]) * DURATION_UNITS[parts[1]]


def _bar_date(b: FakeBar, req: HistoryRequest) -> str:
    """A bar's date field: New York date for daily bars; epoch seconds (formatDate=2) or
    "yyyymmdd HH:MM:SS US/Eastern" (formatDate=1) for intraday bars."""
    if req.bar_size == "1 day":
        return b.start.astimezone(NEW_YORK).strftime("%Y%m%d")
    if req.format_date == "2":
        return str(int(b.start.timestamp()))
    return b.start.astimezone(NEW_YORK).strftime("%Y%m%d %H:%M:%S") + " US/Eastern"


def _header_time(t: datetime) -> str:
    return t.astimezone(NEW_YORK).strftime("%Y%m%d  %H:%M:%S")


def _decimal(x: float) -> str:
    """Volume and WAP travel as Decimal text: no trailing ".0" on whole numbers."""
    if math.isfinite(x) and x == int(x):
        return str(int(x))
    return repr(x)
