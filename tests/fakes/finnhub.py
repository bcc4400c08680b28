"""A fake Finnhub candle endpoint on 127.0.0.1, speaking Finnhub's wire format.

`GET /stock/candle?symbol=&resolution=&from=&to=` (unix seconds, both inclusive) answers
parallel arrays `{"c","h","l","o","s":"ok","t","v"}` or `{"s":"no_data"}`. Credentials as
Finnhub checks them: `token=` in the query or the `X-Finnhub-Token` header; none -> 401
"Please use an API key.", a wrong one -> 401 "Invalid API key", a resolution the plan lacks ->
403 "You don't have access to this resource.". There is no paging.
"""

from __future__ import annotations

import json
import secrets
from datetime import date, datetime, time, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from tests.fakes.vendor_http import FakeVendor, Fault, Request

NEW_YORK = ZoneInfo("America/New_York")
RESOLUTIONS = ("1", "5", "15", "30", "60", "D", "W", "M")
ARRAYS = ("c", "h", "l", "o", "t", "v")

ERRORS: dict[int, str] = {
    401: "Invalid API key",
    403: "You don't have access to this resource.",
    429: "API limit reached. Please try again later. Remaining Limit: 0",
}


def candle(t: int, o: float, h: float, l: float, c: float, v: float) -> dict[str, Any]:  # noqa: E741
    """One candle, stored row-wise; served as the index of each array."""
    return {"t": t, "o": o, "h": h, "l": l, "c": c, "v": v}


def minute_candle(start: datetime, price: float, v: float = 1000.0) -> dict[str, Any]:
    """A minute candle starting at `start`, around `price`."""
    return candle(int(start.timestamp()), price, price + 0.5, price - 0.5, price + 0.25, v)


def day_candle(
    day: date, price: float, v: float = 1_000_000.0, *, stamp: time = time(0), zone: tzinfo = NEW_YORK
) -> dict[str, Any]:
    """A daily candle for `day`, stamped at `stamp` in `zone` (midnight New York, as documented)."""
    return candle(int(datetime.combine(day, stamp, zone).timestamp()), price, price + 2, price - 2, price + 1, v)


class FakeFinnhub(FakeVendor):
    """Finnhub candles with scripted faults; `denied` resolutions answer 403."""

    def __init__(self, api_key: str, *, denied: tuple[str, ...] = (), max_lifetime: float = 600.0) -> None:
        super().__init__(max_lifetime)
        self.api_key = api_key
        self.denied = denied
        self._candles: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._ragged = 0
        self.route(r"/stock/candle", self._candle)

    # -- scripting -----------------------------------------------------------------------

    def reset(self, *, denied: tuple[str, ...] = ()) -> None:
        """Forget candles, faults and the request log, so that one server serves many tests."""
        with self._lock:
            self.requests.clear()
            self._faults.clear()
            self._candles.clear()
            self._ragged = 0
            self.denied = denied

    def add_candles(self, symbol: str, resolution: str, candles: list[dict[str, Any]]) -> None:
        """Candles served in the order given (duplicates included)."""
        self._candles.setdefault((symbol, resolution), []).extend(candles)

    def ragged_next(self, times: int = 1) -> None:
        """The next non-empty answers lose the last element of `v` (arrays of unequal length)."""
        with self._lock:
            self._ragged += times

    def fail_next(self, status: int, times: int = 1, retry_after: str | None = None, path_prefix: str = "") -> None:
        """As FakeVendor's, with Finnhub's error body for that status."""
        body = json.dumps({"error": ERRORS.get(status, f"HTTP {status}")})
        with self._lock:
            self._faults += [
                Fault(status=status, retry_after=retry_after, body=body, path_prefix=path_prefix) for _ in range(times)
            ]

    def requested_ranges(self) -> list[tuple[int, int]]:
        """(from, to) of every candle request, in order."""
        return [(int(r.query["from"]), int(r.query["to"])) for r in self.hits("/stock/candle")]

    # -- serving -------------------------------------------------------------------------

    def _auth(self, request: Request) -> tuple[int, Any] | None:
        given = request.query.get("token") or request.headers.get("x-finnhub-token")
        if not given:
            return 401, {"error": "Please use an API key."}
        if not secrets.compare_digest(given.encode(), self.api_key.encode()):
            return 401, {"error": ERRORS[401]}
        return None

    def _candle(self, request: Request) -> tuple[int, Any]:
        refused = self._auth(request)
        if refused is not None:
            return refused
        query = request.query
        missing = [name for name in ("symbol", "resolution", "from", "to") if not query.get(name)]
        if missing:
            return 422, {"error": f"Missing parameter(s): {', '.join(missing)}"}
        if query["resolution"] not in RESOLUTIONS:
            return 422, {"error": "Wrong resolution"}
        if query["resolution"] in self.denied:
            return 403, {"error": ERRORS[403]}
        try:
            lo, hi = int(query["from"]), int(query["to"])
        except ValueError:
            return 422, {"error": "from and to must be unix timestamps"}
        rows = [c for c in self._candles.get((query["symbol"], query["resolution"]), []) if lo <= c["t"] <= hi]
        if not rows:
            return 200, {"s": "no_data"}
        body: dict[str, Any] = {name: [row[name] for row in rows] for name in ARRAYS}
        body["s"] = "ok"
        with self._lock:
            ragged = self._ragged > 0
            self._ragged -= int(ragged)
        if ragged:
            body["v"] = body["v"][:-1]
        return 200, body


__all__ = ["FakeFinnhub", "candle", "day_candle", "minute_candle"]
