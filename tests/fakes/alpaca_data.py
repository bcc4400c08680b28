"""A fake of Alpaca's Market Data REST API v2 (stock bars), for driving the REAL alpaca-py
`StockHistoricalDataClient` over loopback.

Wire format (what alpaca-py 0.44 sends and parses):

    GET /v2/stocks/bars?symbols=A,B&timeframe=1Min|1Day&start=&end=&limit=&feed=&adjustment=
                        [&page_token=][&sort=asc|desc]
        -> {"bars": {"A": [{"t","o","h","l","c","v","n","vw"}, ...], "B": [...]},
            "next_page_token": "<opaque>" | null, "currency": "USD"}
    GET /v2/stocks/bars/latest?symbols=A,B[&feed=]
        -> {"bars": {"A": {"t","o","h","l","c","v","n","vw"}}}

Bars of all requested symbols form one list (by symbol, then time) that is cut into pages of
min(limit, page_cap); a symbol's bars may span pages. `start` and `end` are both inclusive.
Credentials: headers APCA-API-KEY-ID and APCA-API-SECRET-KEY; missing -> 401
{"message": "unauthorized."}, wrong -> 403 {"message": "forbidden"}. Bad parameters -> 422
{"message": "..."}; rate limiting -> 429 {"message": "too many requests."} with the
X-RateLimit-Limit / -Remaining / -Reset (unix seconds) headers Alpaca sends.

Paging logic adapted from the team's reference fake (shared/reference/brokers/alpaca_fake.py).
"""

from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.vendor_http import FakeVendor, Request

FEEDS = ("sip", "iex", "delayed_sip", "otc", "boats", "overnight")
ADJUSTMENTS = ("raw", "split", "dividend", "all")
MAX_LIMIT = 10_000
TIMEFRAME_PATTERN = re.compile(r"^([1-9][0-9]*)(Min|T|Hour|H|Day|D|Week|W|Month|M)$")
MALFORMED_PAGE = '{"bars": {"AAPL": [{"t": "2026-03-02T14:30:00Z", "o": 1.0,'

ERROR_BODIES: dict[int, dict[str, str]] = {
    401: {"message": "unauthorized."},
    403: {"message": "forbidden"},
    422: {"message": "invalid request"},
    429: {"message": "too many requests."},
    500: {"message": "internal server error"},
    502: {"message": "bad gateway"},
    503: {"message": "service unavailable"},
    504: {"message": "gateway timeout"},
}


@dataclass
class ScriptedError:
    """An Alpaca-shaped error answer for the next matching request."""

    status: int
    body: Any
    headers: dict[str, str]
    path_prefix: str = ""


class _Invalid(Exception):
    """A request Alpaca would answer with 422."""


class AlpacaDataFake(FakeVendor):
    """Alpaca's stock bars endpoints; `page_cap` is the server's page size (small forces paging)."""

    def __init__(
        self,
        api_key: str = "test-key-id",
        secret_key: str = "test-secret-key",
        *,
        page_cap: int = MAX_LIMIT,
        sip_allowed: bool = True,
        max_lifetime: float = 600.0,
    ) -> None:
        super().__init__(max_lifetime=max_lifetime)
        self.api_key, self.secret_key = api_key, secret_key
        self.page_cap = self._initial_page_cap = page_cap
        self.sip_allowed = sip_allowed
        self._bars: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._latest: dict[str, dict[str, Any]] = {}
        self._errors: list[ScriptedError] = []
        self._empty_pages = 0
        self._data_lock = threading.Lock()
        self.route("/v2/stocks/bars", self._get_bars)
        self.route("/v2/stocks/bars/latest", self._get_latest)

    def reset(self, *, page_cap: int | None = None, sip_allowed: bool = True) -> None:
        """Forget data, scripted faults and the request log, so one server can serve many tests
        (stopping a FakeVendor costs up to its 0.5 s poll interval)."""
        with self._lock:
            self._errors.clear()
            self._faults.clear()
            self.requests.clear()
            self._empty_pages = 0
        with self._data_lock:
            self._bars.clear()
            self._latest.clear()
        self.page_cap = self._initial_page_cap if page_cap is None else page_cap
        self.sip_allowed = sip_allowed

    # -- data ------------------------------------------------------------------------------

    def add_bars(self, symbol: str, timeframe: str, bars: list[dict[str, Any]]) -> None:
        """Store bars for (symbol, "1Min" | "1Day"); kept in time order, duplicates included."""
        with self._data_lock:
            stored = self._bars.setdefault((symbol, timeframe), [])
            stored.extend(bars)
            stored.sort(key=_time_order)

    def set_latest(self, symbol: str, bar: dict[str, Any]) -> None:
        """What /v2/stocks/bars/latest answers for `symbol`."""
        with self._data_lock:
            self._latest[symbol] = bar

    # -- scripting ---------------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        times: int = 1,
        retry_after: str | None = None,
        path_prefix: str = "",
        *,
        rate_limit_reset: int | None = None,
        body: Any = None,
    ) -> None:
        """The next `times` requests get `status` with Alpaca's error body (or `body`)."""
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        if status == 429:
            headers.update({"X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "0"})
            if rate_limit_reset is not None:
                headers["X-RateLimit-Reset"] = str(rate_limit_reset)
        answer = body if body is not None else ERROR_BODIES.get(status, {"message": f"http {status}"})
        with self._lock:
            self._errors += [ScriptedError(status, answer, dict(headers), path_prefix) for _ in range(times)]

    def empty_pages_next(self, times: int = 1) -> None:
        """The next bar pages hold no bars but a token to the same place (Alpaca does this)."""
        with self._lock:
            self._empty_pages += times

    # -- serving -----------------------------------------------------------------------------

    def _serve(self, http: BaseHTTPRequestHandler) -> None:
        # Scripted errors need Alpaca's body and headers, which FakeVendor's faults cannot
        # carry; they are answered here, before the base class's delay/malformed faults.
        parts = urlsplit(http.path)
        with self._lock:
            error = next((e for e in self._errors if parts.path.startswith(e.path_prefix)), None)
            if error is not None:
                self._errors.remove(error)
                self.requests.append(
                    Request(
                        path=parts.path,
                        query={k: v[-1] for k, v in parse_qs(parts.query).items()},
                        headers={k.lower(): v for k, v in http.headers.items()},
                    )
                )
        if error is None:
            super()._serve(http)
            return
        data = (error.body if isinstance(error.body, str) else json.dumps(error.body)).encode()
        try:
            http.send_response(error.status)
            for name, value in error.headers.items():
                http.send_header(name, value)
            http.send_header("Content-Type", "application/json")
            http.send_header("Content-Length", str(len(data)))
            http.end_headers()
            http.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _authorize(self, request: Request) -> tuple[int, Any] | None:
        key, secret = request.headers.get("apca-api-key-id"), request.headers.get("apca-api-secret-key")
        if not key or not secret:
            return 401, ERROR_BODIES[401]
        if (key, secret) != (self.api_key, self.secret_key):
            return 403, ERROR_BODIES[403]
        return None

    def _feed(self, query: dict[str, str]) -> tuple[int, Any] | None:
        feed = query.get("feed", "sip" if self.sip_allowed else "iex")
        if feed not in FEEDS:
            raise _Invalid(f"invalid feed: {feed}")
        if feed == "sip" and not self.sip_allowed:
            return 403, {"message": "subscription does not permit querying recent SIP data"}
        return None

    def _get_bars(self, request: Request) -> tuple[int, Any]:
        refused = self._authorize(request)
        if refused:
            return refused
        q = request.query
        try:
            refused = self._feed(q)
            if refused:
                return refused
            symbols, timeframe = _symbols(q), _timeframe(q)
            start, end = _bound(q, "start"), _bound(q, "end")
            if start and end and end < start:
                raise _Invalid("end should not be before start")
            if q.get("adjustment", "raw") not in ADJUSTMENTS:
                raise _Invalid(f"invalid adjustment: {q['adjustment']}")
            limit = _limit(q)
            offset = _offset(q.get("page_token"))
        except _Invalid as exc:
            return 422, {"message": str(exc)}
        with self._data_lock:
            flat = [
                (symbol, bar)
                for symbol in sorted(symbols)
                for bar in self._bars.get((symbol, timeframe), [])
                if _within(bar, start, end)
            ]
        if q.get("sort", "asc") == "desc":
            flat.sort(key=lambda item: (item[0], str(item[1].get("t"))), reverse=True)
        with self._lock:
            empty, self._empty_pages = self._empty_pages > 0, max(0, self._empty_pages - 1)
        if empty:
            return 200, {"bars": {}, "next_page_token": _token(offset), "currency": "USD"}
        size = max(1, min(limit, self.page_cap))
        chunk = flat[offset : offset + size]
        following = offset + size
        page: dict[str, list[dict[str, Any]]] = {}
        for symbol, bar in chunk:
            page.setdefault(symbol, []).append(bar)
        token = _token(following) if following < len(flat) else None
        return 200, {"bars": page, "next_page_token": token, "currency": "USD"}

    def _get_latest(self, request: Request) -> tuple[int, Any]:
        refused = self._authorize(request)
        if refused:
            return refused
        try:
            refused = self._feed(request.query)
            if refused:
                return refused
            symbols = _symbols(request.query)
        except _Invalid as exc:
            return 422, {"message": str(exc)}
        with self._data_lock:
            return 200, {"bars": {s: self._latest[s] for s in symbols if s in self._latest}}


def _symbols(q: dict[str, str]) -> list[str]:
    symbols = [s for s in q.get("symbols", "").split(",") if s]
    if not symbols:
        raise _Invalid("symbols is required")
    return symbols


def _timeframe(q: dict[str, str]) -> str:
    timeframe = q.get("timeframe", "")
    if not TIMEFRAME_PATTERN.match(timeframe):
        raise _Invalid(f"invalid timeframe: {timeframe}")
    return timeframe


def _limit(q: dict[str, str]) -> int:
    try:
        limit = int(q.get("limit", str(MAX_LIMIT)))
    except ValueError:
        raise _Invalid(f"invalid limit: {q['limit']}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise _Invalid(f"invalid limit: {limit}")
    return limit


def _instant(text: str) -> datetime | None:
    """RFC-3339 or a bare date (Alpaca accepts both for start/end); None if neither."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _bound(q: dict[str, str], name: str) -> datetime | None:
    if name not in q:
        return None
    value = _instant(q[name])
    if value is None:
        raise _Invalid(f"invalid {name}: {q[name]}")
    return value


def _within(bar: dict[str, Any], start: datetime | None, end: datetime | None) -> bool:
    t = _instant(str(bar.get("t", "")))
    if t is None:
        return True  # a bar the test made undatable on purpose is always served
    return (start is None or start <= t) and (end is None or t <= end)


def _time_order(bar: dict[str, Any]) -> tuple[bool, datetime]:
    """Sort key: by `t`; bars without a usable `t` last, in the order they were added."""
    t = _instant(str(bar.get("t", "")))
    return t is None, t or datetime.min.replace(tzinfo=UTC)


def _token(offset: int) -> str:
    return base64.b64encode(f"offset:{offset}".encode()).decode()


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        kind, _, number = base64.b64decode(token, validate=True).decode().partition(":")
        if kind != "offset":
            raise ValueError(kind)
        return int(number)
    except ValueError:
        raise _Invalid("invalid page token") from None


__all__ = ["AlpacaDataFake", "ERROR_BODIES", "MALFORMED_PAGE"]
