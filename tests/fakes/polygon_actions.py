"""A fake of Polygon.io's splits and dividends endpoints on 127.0.0.1, speaking Polygon's wire format.

From Polygon's REST reference and polygon-io/client-python (`list_splits`, `list_dividends`,
`Split`, `Dividend`): `GET /v3/reference/splits` filtered on `ticker` and `execution_date`,
`GET /v3/reference/dividends` on `ticker` and `ex_dividend_date`, each date exact or with
`.gte`/`.gt`/`.lte`/`.lt`; `order` (asc|desc), `sort` (the date field or `ticker`), `limit`
(1..1000, default 10). A page is `{"results","status":"OK","request_id","next_url"}`; `next_url`
is a full URL without the key whose opaque `cursor` carries the first request's options and the
offset. Credentials as Polygon checks them: `apiKey=` or `Authorization: Bearer`; none -> 401
"API Key was not provided", a wrong one -> 401 "Unknown API Key". Items are served as the test
stored them, so a malformed item reaches the client as it is.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from typing import Any

from tests.fakes.polygon import error_body
from tests.fakes.vendor_http import FakeVendor, Fault, Request

MAX_LIMIT = 1000
BOUNDS = ("gte", "gt", "lte", "lt")
DATE_FIELDS = {"/v3/reference/splits": "execution_date", "/v3/reference/dividends": "ex_dividend_date"}


def split(ticker: str, execution_date: str, split_from: float, split_to: float, **extra: Any) -> dict[str, Any]:
    """A split as Polygon sends it (split_to new shares for split_from old)."""
    item = {"id": f"E{secrets.token_hex(8)}", "ticker": ticker, "execution_date": execution_date,
            "split_from": split_from, "split_to": split_to}
    return {**item, **extra}


def dividend(ticker: str, ex_dividend_date: str, cash_amount: float, **extra: Any) -> dict[str, Any]:
    """A regular quarterly dividend as Polygon sends it; `extra` overrides any field."""
    item = {
        "id": f"E{secrets.token_hex(8)}", "ticker": ticker, "cash_amount": cash_amount, "currency": "USD",
        "declaration_date": "2026-02-26", "dividend_type": "CD", "ex_dividend_date": ex_dividend_date,
        "frequency": 4, "pay_date": "2026-03-26", "record_date": ex_dividend_date,
    }
    return {**item, **extra}


class FakePolygonActions(FakeVendor):
    """Polygon's splits and dividends; tests fill `splits` and `dividends` and script faults."""

    def __init__(self, api_key: str, max_lifetime: float = 600.0) -> None:
        super().__init__(max_lifetime)
        self.api_key = api_key
        self.splits: list[Any] = []
        self.dividends: list[Any] = []
        self.next_host: str | None = None  # next_url names another host, as behind a proxy
        self.repeat_cursor = False  # next_url always points at the second page
        self._data_lock = threading.Lock()
        self.route(r"/v3/reference/splits", self._serve_items)
        self.route(r"/v3/reference/dividends", self._serve_items)

    def reset(self) -> None:
        """Forget items, faults, options and the request log, so that one server serves many tests."""
        with self._lock:
            self.requests.clear()
            self._faults.clear()
            self.echoed = 0
        with self._data_lock:
            self.splits.clear()
            self.dividends.clear()
        self.next_host, self.repeat_cursor = None, False

    def fail_next(self, status: int, times: int = 1, retry_after: str | None = None, path_prefix: str = "") -> None:
        """As FakeVendor's, with Polygon's error body for that status."""
        text = json.dumps(error_body(status))
        with self._lock:
            self._faults += [
                Fault(status=status, retry_after=retry_after, body=text, path_prefix=path_prefix) for _ in range(times)
            ]

    def _refused(self, request: Request) -> tuple[int, Any] | None:
        header = request.headers.get("authorization", "")
        given = request.query.get("apiKey") or (header[len("Bearer ") :] if header.startswith("Bearer ") else None)
        if not given:
            return 401, error_body(401, "API Key was not provided")
        if not secrets.compare_digest(given.encode(), self.api_key.encode()):
            return 401, error_body(401, "Unknown API Key")
        return None

    def _serve_items(self, request: Request) -> tuple[int, Any]:
        refused = self._refused(request)
        if refused is not None:
            return refused
        on = DATE_FIELDS[request.path]
        options = _cursor_options(request.query.get("cursor")) or {
            **{k: v for k, v in request.query.items() if k == "ticker" or k.split(".")[0] == on},
            "order": request.query.get("order", "desc"),
            "sort": request.query.get("sort", on),
            "limit": request.query.get("limit", "10"),
            "offset": 0,
        }
        bad = _bad_request(options, on)
        if bad is not None:
            return 400, error_body(400, bad)
        with self._data_lock:
            stored = list(self.splits if on == "execution_date" else self.dividends)
        items = [i for i in stored if _matches(i, options, on)]
        key = on if options["sort"] == on else "ticker"
        items.sort(key=lambda i: str(i.get(key)) if isinstance(i, dict) else "", reverse=options["order"] == "desc")
        offset, size = int(options["offset"]), int(options["limit"])
        body: dict[str, Any] = {"results": items[offset : offset + size], "status": "OK",
                                "request_id": secrets.token_hex(16)}
        if offset + size < len(items):
            following = size if not self.repeat_cursor or offset == 0 else 0
            cursor = _cursor({**options, "offset": offset + following})
            body["next_url"] = f"{self.next_host or self.url}{request.path}?cursor={cursor}"
        return 200, body


def _matches(item: Any, options: dict[str, Any], on: str) -> bool:
    if not isinstance(item, dict):
        return True  # a test serving a broken item wants it served
    if "ticker" in options and item.get("ticker") != options["ticker"]:
        return False
    day = item.get(on)
    if not isinstance(day, str) or len(day) != 10:
        return True  # undatable on purpose: always served
    exact = options.get(on)
    checks = {"gte": day >= options.get(f"{on}.gte", day), "gt": f"{on}.gt" not in options or day > options[f"{on}.gt"],
              "lte": day <= options.get(f"{on}.lte", day), "lt": f"{on}.lt" not in options or day < options[f"{on}.lt"]}
    return all(checks.values()) and (exact is None or exact == day)


def _bad_request(options: dict[str, Any], on: str) -> str | None:
    for name in (on, *(f"{on}.{b}" for b in BOUNDS)):
        value = options.get(name)
        if value is not None and not (len(value) == 10 and value[4] == "-" and value[7] == "-"):
            return f"{name} {value!r} is not a YYYY-MM-DD date"
    if options["order"] not in ("asc", "desc"):
        return "order must be asc or desc"
    if options["sort"] not in (on, "ticker"):
        return f"sort {options['sort']!r} is not supported"
    if not str(options["limit"]).isdigit() or not 1 <= int(options["limit"]) <= MAX_LIMIT:
        return f"limit must be between 1 and {MAX_LIMIT}"
    return None


def _cursor(options: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(options, sort_keys=True).encode()).decode().rstrip("=")


def _cursor_options(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    return decoded


__all__ = ["FakePolygonActions", "dividend", "split"]
