"""A fake Marketaux news endpoint on 127.0.0.1, speaking Marketaux's wire format.

Based on marketaux.com/documentation and clients that type its answer: `GET /v1/news/all` with
the key as `api_token=` in the query, `symbols` (comma list), `filter_entities` (`true`: an
item's entities are cut to the symbols asked), `language`, `published_after` and
`published_before` (`YYYY-MM-DDTHH:MM:SS`, `YYYY-MM-DDTHH:MM` or `YYYY-MM-DD`, UTC), `limit`
(capped by the plan: `plan_limit`) and `page` (1-based). The answer is `{"meta":{"found",
"returned","limit","page"},"data":[..]}`, newest first, `published_at` like
`2024-01-02T14:30:00.000000Z`. Errors are `{"error":{"code","message"}}` (401
`invalid_api_token`, 429 `rate_limit_reached`, 400 `malformed_parameters`, 500 `server_error`).
Assumption, as the documentation does not settle it: both published bounds are exclusive.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.fakes.news_vendor import UTC, FakeNewsVendor, instant
from tests.fakes.vendor_http import Request

ERRORS = {
    400: ("malformed_parameters", "Validation of parameters failed."),
    401: ("invalid_api_token", "Invalid API token."),
    429: ("rate_limit_reached", "Too many requests within a 60 second period."),
}
BOUND_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d")


def article(uuid: str, published: datetime, symbols: list[str], title: str | None = None, **extra: Any) -> dict:
    """One item as Marketaux sends it."""
    item = {
        "uuid": uuid,
        "title": title if title is not None else f"Article {uuid}",
        "description": f"Description of {uuid}.",
        "keywords": "",
        "snippet": f"Snippet of {uuid}...",
        "url": f"https://www.example-news.com/{uuid}",
        "image_url": f"https://www.example-news.com/{uuid}.jpg",
        "language": "en",
        "published_at": published.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "source": "example-news.com",
        "relevance_score": None,
        "entities": [entity(s) for s in symbols],
        "similar": [],
    }
    return {**item, **extra}


def entity(symbol: str) -> dict[str, Any]:
    return {
        "symbol": symbol, "name": f"{symbol} Inc.", "exchange": None, "exchange_long": None, "country": "us",
        "type": "equity", "industry": "Technology", "match_score": 21.5, "sentiment_score": 0.42, "highlights": [],
    }


class FakeMarketaux(FakeNewsVendor):
    """Marketaux's news endpoint; `plan_limit` is the most items a page may hold on this plan."""

    def __init__(self, api_key: str, max_lifetime: float = 600.0) -> None:
        super().__init__(api_key, max_lifetime)
        self.plan_limit = 100
        self.route(r"/v1/news/all", self._news)

    def reset_options(self) -> None:
        self.plan_limit = 100

    def error_body(self, status: int) -> Any:
        code, message = ERRORS.get(status, ("server_error", "An internal error occurred."))
        return {"error": {"code": code, "message": message}}

    def _news(self, request: Request) -> tuple[int, Any]:
        query = request.query
        if not self.key_is(query.get("api_token")):
            return 401, self.error_body(401)
        try:
            limit = min(int(query.get("limit", "3")), self.plan_limit)
            page = int(query.get("page", "1"))
            after, before = _bound(query.get("published_after")), _bound(query.get("published_before"))
        except ValueError:
            return 400, self.error_body(400)
        if limit < 1 or page < 1:
            return 400, self.error_body(400)
        symbols = {s for s in query.get("symbols", "").split(",") if s}
        items = [i for i in self.items if _matches(i, symbols, after, before)]
        items.sort(key=_published, reverse=True)
        data = items[(page - 1) * limit : page * limit]
        if symbols and query.get("filter_entities") == "true":
            data = [_filtered(i, symbols) for i in data]
        meta = {"found": len(items), "returned": len(data), "limit": limit, "page": page}
        return 200, {"meta": meta, "data": data}


def _bound(text: str | None) -> datetime | None:
    if text is None:
        return None
    for fmt in BOUND_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(f"not a Marketaux time: {text!r}")


def _published(item: Any) -> datetime:
    when = instant(item.get("published_at")) if isinstance(item, dict) else None
    return when or datetime.min.replace(tzinfo=UTC)


def _matches(item: Any, symbols: set[str], after: datetime | None, before: datetime | None) -> bool:
    if not isinstance(item, dict):
        return True  # a test serving a broken item wants it served
    mentioned = {e.get("symbol") for e in item.get("entities") or [] if isinstance(e, dict)}
    if symbols and not mentioned & symbols:
        return False
    when = instant(item.get("published_at"))
    if when is None:
        return True
    return (after is None or when > after) and (before is None or when < before)


def _filtered(item: Any, symbols: set[str]) -> Any:
    if not isinstance(item, dict) or not isinstance(item.get("entities"), list):
        return item
    return {**item, "entities": [e for e in item["entities"] if isinstance(e, dict) and e.get("symbol") in symbols]}


__all__ = ["FakeMarketaux", "article", "entity"]
