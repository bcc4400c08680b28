"""A fake Benzinga newsfeed (v2) on 127.0.0.1, speaking Benzinga's wire format.

Based on Benzinga's Newsfeed v2 reference (docs.benzinga.io/benzinga/newsfeed-v2.html and
docs.benzinga.com): `GET /api/v2/news` with the key as `token=` in the query, `tickers` (comma
list, at most 50), `date` or `dateFrom`/`dateTo` (`YYYY-MM-DD`, inclusive), `pageSize`
(default 15, at most 100), `page` (0-based, 0..100000), `displayOutput` (`headline`, the
default, drops teaser and body; `abstract` drops the body; `full`) and the `accept` header.
Stories come newest first (Benzinga's default sort is created, descending) as a JSON list,
`created`/`updated` in RFC 2822 with the New York offset. Assumptions, as the reference does not
settle them: dates are New York dates of `created`, and a refused token gets HTTP 401 with
`{"message": ...}`.
"""

from __future__ import annotations

from datetime import date, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from zoneinfo import ZoneInfo

from tests.fakes.news_vendor import FakeNewsVendor
from tests.fakes.vendor_http import Request

NEW_YORK = ZoneInfo("America/New_York")
MAX_PAGE_SIZE = 100
MAX_TICKERS = 50


def rfc2822(instant: datetime) -> str:
    """`Wed, 17 May 2023 14:20:15 -0400`: the instant in New York time with its offset."""
    return format_datetime(instant.astimezone(NEW_YORK))


def story(
    id: int, created: datetime, tickers: list[str], title: str | None = None,
    channels: tuple[str, ...] = ("News", "Earnings"), **extra: Any,
) -> dict[str, Any]:
    """One story as Benzinga sends it with displayOutput=full."""
    item = {
        "id": id,
        "author": "Benzinga Newsdesk",
        "created": rfc2822(created),
        "updated": rfc2822(created),
        "title": title if title is not None else f"Story {id}",
        "teaser": f"Teaser of story {id}.",
        "body": f"<p>Body of story {id}.</p>",
        "url": f"https://www.benzinga.com/news/{id}",
        "image": [],
        "channels": [{"name": c} for c in channels],
        "stocks": [{"name": t} for t in tickers],
        "tags": [{"name": "Briefs"}],
    }
    return {**item, **extra}


class FakeBenzinga(FakeNewsVendor):
    """Benzinga's newsfeed; `ignore_page` serves page 0 whatever was asked, as a broken proxy might."""

    def __init__(self, api_key: str, max_lifetime: float = 600.0) -> None:
        super().__init__(api_key, max_lifetime)
        self.ignore_page = False
        self.route(r"/api/v2/news", self._news)

    def reset_options(self) -> None:
        self.ignore_page = False

    def error_body(self, status: int) -> Any:
        return {"message": {401: "Unauthorized", 429: "Too Many Requests"}.get(status, f"Error {status}")}

    def _news(self, request: Request) -> tuple[int, Any]:
        if not self.key_is(request.query.get("token")):
            return 401, self.error_body(401)
        query = request.query
        try:
            size = int(query.get("pageSize", "15"))
            page = 0 if self.ignore_page else int(query.get("page", "0"))
            first, last = _day(query, "dateFrom"), _day(query, "dateTo")
        except ValueError as exc:
            return 400, {"message": f"bad parameter: {exc}"}
        if not 0 <= page <= 100_000 or size < 1:
            return 400, {"message": "page must be 0..100000 and pageSize positive"}
        size = min(size, MAX_PAGE_SIZE)
        tickers = {t for t in query.get("tickers", "").split(",") if t}
        if len(tickers) > MAX_TICKERS:
            return 400, {"message": f"at most {MAX_TICKERS} tickers"}
        items = [i for i in self.items if _matches(i, tickers, first, last)]
        items.sort(key=_created, reverse=True)
        shown = [_shown(i, query.get("displayOutput", "headline")) for i in items[page * size : (page + 1) * size]]
        return 200, shown


def _day(query: dict[str, str], name: str) -> date | None:
    text = query.get(name) or query.get("date")  # `date` is shorthand for both bounds
    return date.fromisoformat(text) if text else None


def _created(item: Any) -> datetime:
    try:
        return parsedate_to_datetime(item["created"]).astimezone(NEW_YORK)
    except (KeyError, TypeError, ValueError, AttributeError):
        return datetime.min.replace(tzinfo=NEW_YORK)


def _matches(item: Any, tickers: set[str], first: date | None, last: date | None) -> bool:
    if not isinstance(item, dict):
        return True  # a test serving a broken item wants it served
    stocks = {s.get("name") for s in item.get("stocks") or [] if isinstance(s, dict)}
    if tickers and not stocks & tickers:
        return False
    day = _created(item).date()
    if day == date.min:
        return True  # a broken stamp: served, for the adapter to report
    return (first is None or day >= first) and (last is None or day <= last)


def _shown(item: Any, output: str) -> Any:
    if not isinstance(item, dict):
        return item
    if output == "headline":
        return {**item, "teaser": "", "body": ""}
    if output == "abstract":
        return {**item, "body": ""}
    return item


__all__ = ["FakeBenzinga", "rfc2822", "story"]
