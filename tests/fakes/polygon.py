"""A fake Polygon.io aggregates endpoint on 127.0.0.1, speaking Polygon's wire format.

`GET /v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{from}/{to}` with `adjusted`,
`sort`, `limit` (1..50000) and, on later pages, `cursor`. `from`/`to` are `YYYY-MM-DD` (a New
York date, inclusive) or ms timestamps. Credentials as Polygon checks them: `apiKey=` in the
query or `Authorization: Bearer <key>`; none -> 401 "API Key was not provided", a wrong one ->
401 "Unknown API Key". Later pages are reached by `next_url`, a full URL without the key whose
opaque `cursor` carries the offset and the first request's options, as Polygon's does.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tests.fakes.vendor_http import FakeVendor, Fault, Request

NEW_YORK = ZoneInfo("America/New_York")
MAX_LIMIT = 50_000
TIMESPANS = ("minute", "hour", "day", "week", "month", "quarter", "year")


def _ny_midnight_ms(day: date) -> int:
    return int(datetime.combine(day, time(0), NEW_YORK).timestamp() * 1000)


def ms(instant: datetime) -> int:
    """Polygon's `t`: ms since the epoch of an aware instant."""
    return int(instant.timestamp() * 1000)


def agg(
    t: int, o: float, h: float, l: float, c: float, v: float, vw: float | None = None, n: int = 10  # noqa: E741 - Polygon's field names
) -> dict[str, Any]:
    """One aggregate as Polygon sends it (`vw` defaults to the bar's mean price)."""
    vw = vw if vw is not None else round((o + h + l + c) / 4, 4)
    return {"v": v, "vw": vw, "o": o, "c": c, "h": h, "l": l, "t": t, "n": n}


def minute_agg(start: datetime, price: float, v: float = 1000.0, n: int = 10) -> dict[str, Any]:
    """A minute aggregate starting at `start`, around `price`."""
    return agg(ms(start), price, price + 0.5, price - 0.5, price + 0.25, v, n=n)


def day_agg(day: date, price: float, v: float = 1_000_000.0, n: int = 5000) -> dict[str, Any]:
    """A day aggregate for the session `day`, stamped midnight New York as Polygon does."""
    return agg(_ny_midnight_ms(day), price, price + 2, price - 2, price + 1, v, n=n)


@dataclass(frozen=True)
class Split:
    """A split effective at the start of `day`: earlier prices / ratio when adjusted."""

    day: date
    ratio: float


ERRORS: dict[int, str] = {
    400: "Could not parse the request.",
    404: "The requested resource was not found.",
    429: (
        "You've exceeded the maximum requests per minute, please wait or upgrade your subscription to continue."
        " https://polygon.io/pricing"
    ),
    500: "Internal server error.",
    502: "Bad gateway.",
    503: "Service temporarily unavailable.",
    504: "Gateway timeout.",
}


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    """Polygon's error shape: `{"status":"ERROR","request_id":..,"error":..}`."""
    return {"status": "ERROR", "request_id": secrets.token_hex(16), "error": message or ERRORS.get(status, "Error.")}


class FakePolygon(FakeVendor):
    """Polygon aggregates with scripted faults; `page_cap` forces paging below `limit`."""

    def __init__(
        self, api_key: str, *, page_cap: int = MAX_LIMIT, delayed: bool = False, max_lifetime: float = 600.0
    ) -> None:
        super().__init__(max_lifetime)
        self.api_key = api_key
        self.page_cap = page_cap
        self.delayed = delayed  # answer status "DELAYED", as for plans without real-time data
        self._bars: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._splits: dict[str, list[Split]] = {}
        self._empty_pages = 0
        self.route(
            r"/v2/aggs/ticker/(?P<ticker>[^/]+)/range/(?P<multiplier>[^/]+)/(?P<timespan>[^/]+)/(?P<start>[^/]+)/(?P<end>[^/]+)",
            self._aggs,
        )

    # -- scripting -----------------------------------------------------------------------

    def reset(self, *, page_cap: int = MAX_LIMIT, delayed: bool = False) -> None:
        """Forget bars, splits, faults and the request log, so that one server serves many tests."""
        with self._lock:
            self.requests.clear()
            self._faults.clear()
            self._bars.clear()
            self._splits.clear()
            self._empty_pages = 0
            self.page_cap, self.delayed = page_cap, delayed

    def add_bars(self, ticker: str, timespan: str, bars: list[dict[str, Any]]) -> None:
        """Unadjusted aggregates, served in the order given (duplicates included)."""
        self._bars.setdefault((ticker, timespan), []).extend(bars)

    def add_split(self, ticker: str, day: date, ratio: float) -> None:
        self._splits.setdefault(ticker, []).append(Split(day, ratio))

    def empty_page_next(self, times: int = 1) -> None:
        """The next aggregate pages carry no `results` but a `next_url` to the same offset."""
        with self._lock:
            self._empty_pages += times

    def fail_next(self, status: int, times: int = 1, retry_after: str | None = None, path_prefix: str = "") -> None:
        """As FakeVendor's, with Polygon's error body for that status."""
        with self._lock:
            self._faults += [
                Fault(status=status, retry_after=retry_after, body=json.dumps(error_body(status)), path_prefix=path_prefix)
                for _ in range(times)
            ]

    # -- serving -------------------------------------------------------------------------

    def _auth(self, request: Request) -> tuple[int, Any] | None:
        header = request.headers.get("authorization", "")
        given = request.query.get("apiKey") or (header[len("Bearer ") :] if header.startswith("Bearer ") else None)
        if not given:
            return 401, error_body(401, "API Key was not provided")
        if not secrets.compare_digest(given.encode(), self.api_key.encode()):
            return 401, error_body(401, "Unknown API Key")
        return None

    def _aggs(self, request: Request, ticker: str, multiplier: str, timespan: str, start: str, end: str) -> tuple[int, Any]:
        refused = self._auth(request)
        if refused is not None:
            return refused
        options = _cursor_options(request.query.get("cursor")) or {
            "adjusted": request.query.get("adjusted", "true"),
            "sort": request.query.get("sort", "asc"),
            "limit": request.query.get("limit", "5000"),
            "offset": 0,
        }
        bad = _bad_request(multiplier, timespan, start, end, options)
        if bad is not None:
            return 400, error_body(400, bad)
        lo, hi = _bound_ms(start, first=True), _bound_ms(end, first=False)
        bars = [b for b in self._bars.get((ticker, timespan), []) if lo <= b["t"] <= hi]
        if options["adjusted"] == "true":
            bars = [self._adjusted(ticker, b) for b in bars]
        if options["sort"] == "desc":
            bars = list(reversed(bars))
        offset = int(options["offset"])
        with self._lock:
            empty = self._empty_pages > 0
            self._empty_pages -= int(empty)
        size = 0 if empty else min(int(options["limit"]), self.page_cap)
        page = bars[offset : offset + size]
        body: dict[str, Any] = {
            "ticker": ticker,
            "queryCount": len(page),
            "resultsCount": len(page),
            "adjusted": options["adjusted"] == "true",
            "status": "DELAYED" if self.delayed else "OK",
            "request_id": secrets.token_hex(16),
        }
        if page:
            body["results"] = page  # Polygon leaves `results` out of an empty answer
        if offset + size < len(bars):
            # Like Polygon's: from/to rewritten as ms, everything else inside the cursor.
            cursor = _cursor({**options, "offset": offset + size})
            body["next_url"] = f"{self.url}/v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{lo}/{hi}?cursor={cursor}"
        return 200, body

    def _adjusted(self, ticker: str, bar: dict[str, Any]) -> dict[str, Any]:
        ratio = 1.0
        for split in self._splits.get(ticker, []):
            if bar["t"] < _ny_midnight_ms(split.day):
                ratio *= split.ratio
        if ratio == 1.0:
            return bar
        prices = {k: round(bar[k] / ratio, 4) for k in ("o", "h", "l", "c", "vw") if isinstance(bar.get(k), (int, float))}
        return {**bar, **prices, "v": bar["v"] * ratio}


def _cursor(options: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(options, sort_keys=True).encode()).decode().rstrip("=")


def _cursor_options(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    padded = cursor + "=" * (-len(cursor) % 4)
    return json.loads(base64.urlsafe_b64decode(padded))


def _bound_ms(text: str, *, first: bool) -> int:
    """`from`/`to` as an inclusive ms bound: digits are ms, a date is a whole New York day."""
    if text.isdigit():
        return int(text)
    day = date.fromisoformat(text)
    return _ny_midnight_ms(day) if first else _ny_midnight_ms(day + timedelta(days=1)) - 1


def _bad_request(multiplier: str, timespan: str, start: str, end: str, options: dict[str, Any]) -> str | None:
    """Polygon's 400 for parameters it cannot use, or None."""
    if not multiplier.isdigit() or int(multiplier) < 1:
        return f"multiplier {multiplier!r} must be a positive integer"
    if timespan not in TIMESPANS:
        return f"timespan {timespan!r} is not one of {', '.join(TIMESPANS)}"
    for name, value in (("from", start), ("to", end)):
        try:
            _bound_ms(value, first=True)
        except ValueError:
            return f"{name} {value!r} is neither YYYY-MM-DD nor a ms timestamp"
    if options["adjusted"] not in ("true", "false"):
        return "adjusted must be true or false"
    if options["sort"] not in ("asc", "desc"):
        return "sort must be asc or desc"
    if not str(options["limit"]).isdigit() or not 1 <= int(options["limit"]) <= MAX_LIMIT:
        return f"limit must be between 1 and {MAX_LIMIT}"
    return None


__all__ = ["FakePolygon", "Split", "agg", "day_agg", "error_body", "minute_agg", "ms"]
