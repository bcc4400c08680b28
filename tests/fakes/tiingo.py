"""A fake Tiingo news endpoint on 127.0.0.1, speaking Tiingo's wire format.

Based on api.tiingo.com/documentation/news and hydrosquall/tiingo-python (`get_news` and its
recorded answer, tests/fixtures/news.yaml): `GET /tiingo/news` with `tickers` (comma list, any
case), `startDate`/`endDate` (`YYYY-MM-DD`, inclusive), `sortBy` (`publishedDate` or
`crawlDate`, newest first), `limit` (default 100, at most 1000) and `offset`; the key as
`Authorization: Token <key>` (or `token=`). The answer is a JSON list of items with tickers in
lower case, `publishedDate` like `2016-01-11T23:13:00Z` and `crawlDate` like
`2016-01-12T21:07:28.073309+00:00`. Assumptions, as the documentation does not settle them:
the dates are UTC dates of `publishedDate`, and a refused token gets HTTP 401 with
`{"detail": "Invalid token."}`.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from tests.fakes.news_vendor import UTC, FakeNewsVendor, instant
from tests.fakes.vendor_http import Request

MAX_LIMIT = 1000


def article(id: int, published: datetime, tickers: list[str], title: str | None = None, **extra: Any) -> dict:
    """One item as Tiingo sends it (tickers lower-cased, as Tiingo tags them)."""
    item = {
        "id": id,
        "title": title if title is not None else f"Article {id}",
        "url": f"https://www.cnbc.com/{id}.html",
        "description": f"Description of article {id}.",
        "publishedDate": published.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "crawlDate": (published + timedelta(minutes=3)).astimezone(UTC).isoformat(),
        "source": "cnbc.com",
        "tickers": [t.lower() for t in tickers],
        "tags": ["Earnings", "Technology"],
    }
    return {**item, **extra}


class FakeTiingo(FakeNewsVendor):
    """Tiingo's news endpoint."""

    def __init__(self, api_key: str, max_lifetime: float = 600.0) -> None:
        super().__init__(api_key, max_lifetime)
        self.route(r"/tiingo/news", self._news)

    def error_body(self, status: int) -> Any:
        return {"detail": {401: "Invalid token.", 429: "Request was throttled."}.get(status, "Server error.")}

    def _news(self, request: Request) -> tuple[int, Any]:
        header = request.headers.get("authorization", "")
        given = header[len("Token ") :] if header.startswith("Token ") else request.query.get("token")
        if not given:
            return 401, {"detail": "Authentication credentials were not provided."}
        if not self.key_is(given):
            return 401, self.error_body(401)
        query = request.query
        try:
            limit = min(int(query.get("limit", "100")), MAX_LIMIT)
            offset = int(query.get("offset", "0"))
            first = date.fromisoformat(query["startDate"]) if "startDate" in query else None
            last = date.fromisoformat(query["endDate"]) if "endDate" in query else None
        except ValueError as exc:
            return 400, {"detail": str(exc)}
        tickers = {t.lower() for t in query.get("tickers", "").split(",") if t}
        items = [i for i in self.items if _matches(i, tickers, first, last)]
        field = "crawlDate" if query.get("sortBy") == "crawlDate" else "publishedDate"
        items.sort(key=lambda i: _stamp(i, field), reverse=True)
        return 200, items[offset : offset + limit]


def _stamp(item: Any, field: str) -> datetime:
    when = instant(item.get(field)) if isinstance(item, dict) else None
    return when or datetime.min.replace(tzinfo=UTC)


def _matches(item: Any, tickers: set[str], first: date | None, last: date | None) -> bool:
    if not isinstance(item, dict):
        return True  # a test serving a broken item wants it served
    tagged = {t.lower() for t in item.get("tickers") or [] if isinstance(t, str)}
    if tickers and not tagged & tickers:
        return False
    when = instant(item.get("publishedDate"))
    if when is None:
        return True
    return (first is None or when.date() >= first) and (last is None or when.date() <= last)


__all__ = ["FakeTiingo", "article"]
