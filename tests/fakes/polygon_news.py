"""A fake Polygon.io ticker news endpoint on 127.0.0.1, speaking Polygon's wire format.

Based on polygon-io/client-python (`list_ticker_news` and the `TickerNews`, `Publisher` and
`Insight` models) and Polygon's REST reference: `GET /v2/reference/news` with `ticker`,
`published_utc` and its `.gte`/`.gt`/`.lte`/`.lt` forms (a date or an RFC 3339 instant),
`order` (asc|desc, default desc), `sort=published_utc`, `limit` (1..1000, default 10). A page is
`{"results","status":"OK","request_id","count","next_url"}`. Credentials as Polygon checks them
(`apiKey=` or `Authorization: Bearer`); later pages through `next_url`, a full URL without the
key whose opaque `cursor` carries the first request's options and the offset.
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import datetime
from typing import Any

from tests.fakes.news_vendor import UTC, FakeNewsVendor, instant
from tests.fakes.polygon import error_body
from tests.fakes.vendor_http import Request

MAX_LIMIT = 1000
BOUNDS = ("gte", "gt", "lte", "lt")


def article(
    id: str, published: datetime, tickers: list[str], title: str | None = None, **extra: Any
) -> dict[str, Any]:
    """One news item as Polygon sends it."""
    item = {
        "id": id,
        "publisher": {
            "name": "The Motley Fool",
            "homepage_url": "https://www.fool.com/",
            "logo_url": "https://s3.polygon.io/public/assets/news/logos/themotleyfool.svg",
            "favicon_url": "https://s3.polygon.io/public/assets/news/favicons/themotleyfool.ico",
        },
        "title": title if title is not None else f"Headline {id}",
        "author": "A. Writer",
        "published_utc": published.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "article_url": f"https://www.fool.com/investing/{id}/",
        "tickers": tickers,
        "amp_url": f"https://www.fool.com/amp/investing/{id}/",
        "image_url": f"https://g.foolcdn.com/{id}.jpg",
        "description": f"What happened to {', '.join(tickers) or 'the market'}.",
        "keywords": ["Technology", "Earnings"],
        "insights": [
            {"ticker": t, "sentiment": "positive", "sentiment_reasoning": "Results beat estimates."} for t in tickers
        ],
    }
    return {**item, **extra}


class FakePolygonNews(FakeNewsVendor):
    """Polygon ticker news; `next_host` makes next_url name another host, as a proxy setup would see."""

    def __init__(self, api_key: str, max_lifetime: float = 600.0) -> None:
        super().__init__(api_key, max_lifetime)
        self.next_host: str | None = None
        self.repeat_cursor = False
        self.route(r"/v2/reference/news", self._news)

    def reset_options(self) -> None:
        self.next_host = None
        self.repeat_cursor = False  # next_url always points at the first page after the first

    def error_body(self, status: int) -> Any:
        return error_body(status)

    def _auth(self, request: Request) -> tuple[int, Any] | None:
        header = request.headers.get("authorization", "")
        given = request.query.get("apiKey") or (header[len("Bearer ") :] if header.startswith("Bearer ") else None)
        if not given:
            return 401, error_body(401, "API Key was not provided")
        if not self.key_is(given):
            return 401, error_body(401, "Unknown API Key")
        return None

    def _news(self, request: Request) -> tuple[int, Any]:
        refused = self._auth(request)
        if refused is not None:
            return refused
        options = _cursor_options(request.query.get("cursor")) or {
            **{k: v for k, v in request.query.items() if k == "ticker" or k.startswith("published_utc")},
            "order": request.query.get("order", "desc"),
            "sort": request.query.get("sort", "published_utc"),
            "limit": request.query.get("limit", "10"),
            "offset": 0,
        }
        bad = _bad_request(options)
        if bad is not None:
            return 400, error_body(400, bad)
        items = [i for i in self.items if _matches(i, options)]
        items.sort(key=_published_key, reverse=options["order"] == "desc")
        offset, size = int(options["offset"]), int(options["limit"])
        page = items[offset : offset + size]
        body: dict[str, Any] = {
            "results": page,
            "status": "OK",
            "request_id": secrets.token_hex(16),
            "count": len(page),
        }
        if offset + size < len(items):
            following = size if not self.repeat_cursor or offset == 0 else 0
            cursor = _cursor({**options, "offset": offset + following})
            body["next_url"] = f"{self.next_host or self.url}/v2/reference/news?cursor={cursor}"
        return 200, body


def _published_key(item: Any) -> datetime:
    when = instant(item.get("published_utc")) if isinstance(item, dict) else None
    return when or datetime.min.replace(tzinfo=UTC)


def _bound(text: str) -> datetime | None:
    when = instant(text)
    if when is None and len(text) == 10:
        when = instant(f"{text}T00:00:00+00:00")
    return when


def _matches(item: Any, options: dict[str, Any]) -> bool:
    if not isinstance(item, dict):
        return True  # a test serving a broken item wants it served
    ticker = options.get("ticker")
    if ticker is not None and ticker not in (item.get("tickers") or []):
        return False
    when = instant(item.get("published_utc"))
    if when is None:
        return True
    for name in BOUNDS:
        text = options.get(f"published_utc.{name}")
        bound = _bound(text) if text is not None else None
        if bound is None:
            continue
        if (name == "gte" and when < bound) or (name == "gt" and when <= bound):
            return False
        if (name == "lte" and when > bound) or (name == "lt" and when >= bound):
            return False
    exact = options.get("published_utc")
    return exact is None or when.date().isoformat() == exact[:10]


def _bad_request(options: dict[str, Any]) -> str | None:
    for name in ("published_utc", *(f"published_utc.{b}" for b in BOUNDS)):
        if name in options and _bound(options[name]) is None:
            return f"{name} {options[name]!r} is neither a date nor an RFC 3339 time"
    if options["order"] not in ("asc", "desc"):
        return "order must be asc or desc"
    if options["sort"] != "published_utc":
        return f"sort {options['sort']!r} is not supported"
    if not str(options["limit"]).isdigit() or not 1 <= int(options["limit"]) <= MAX_LIMIT:
        return f"limit must be between 1 and {MAX_LIMIT}"
    return None


def _cursor(options: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(options, sort_keys=True).encode()).decode().rstrip("=")


def _cursor_options(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


__all__ = ["FakePolygonNews", "article"]
