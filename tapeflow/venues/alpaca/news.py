"""Alpaca news (Benzinga's newswire, resold) through alpaca-py's `NewsClient` (the real SDK).

Wire format:

    GET {alpaca_data_url}/v1beta1/news?symbols=AAPL,TSLA&start=<RFC-3339>&end=<RFC-3339>
                                      &sort=asc&limit=50[&page_token=<opaque>]
        headers APCA-API-KEY-ID / APCA-API-SECRET-KEY (alpaca-py sends them)
    -> {"news": [{"id": 24843171, "headline", "author", "source": "benzinga", "summary",
                  "content", "url" (may be null), "images": [{"size", "url"}],
                  "symbols": ["AAPL"], "created_at": "2021-12-31T11:08:42Z",
                  "updated_at": "2021-12-31T11:08:43Z"}, ...],
        "next_page_token": "<base64 of 'updated_at ns|id'>" | null}

`start` and `end` are inclusive; without `symbols` the vendor sends all news. At most 50
items per page; `next_page_token` is sent back as `page_token` until it is null. Errors:
401/403 (credentials), 422 (bad parameters), 429 (rate limit), 5xx.

The pages are fetched with the client's raw `get`, not `get_news`: `get_news` parses every
item into alpaca-py's `News` model, where one item that breaks the model (a missing field, an
odd type) fails the whole call, and it merges all pages, losing each page's arrival time and
looping forever on a repeated cursor. Fetched raw, each item becomes one raw row (`problem`
saying what could not be read), each page keeps its own `fetched_at`, and a repeated cursor
ends the paging with a problem row. The HTTP side is shared with the bars adapter
(`tapeflow.venues.alpaca.http`): alpaca-py's retry loop with tapeflow's `HttpPolicy` waits and
a timeout, its errors mapped to VendorError / VendorAuthError without keys.

Each item becomes `news_row(source="alpaca", id, published_at=created_at, headline, summary,
url, tickers=symbols, category=the item's "source" (e.g. benzinga), author, payload=item)`.
Items published outside [start, end) are dropped (the vendor's end is inclusive); items
without a readable `created_at` are kept so they reach the quarantine.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgpack
import polars as pl
from alpaca.common.exceptions import APIError
from alpaca.data.historical.news import NewsClient
from alpaca.data.requests import NewsRequest

from tapeflow.config import Settings
from tapeflow.news.frames import empty_raw_news, news_row, raw_news
from tapeflow.redact import redact_text, redact_url
from tapeflow.sources.base import Window
from tapeflow.sources.http import HttpPolicy, require_key
from tapeflow.venues.alpaca.bars import (
    CREDENTIALS,
    KEY_SETTING,
    PAGE_TEXT_LIMIT,
    SECRET_SETTING,
)
from tapeflow.venues.alpaca.http import HttpPolicyMixin, MalformedPage, vendor_error

SOURCE = "alpaca"
PATH = "/news"  # under the client's /v1beta1
PAGE_LIMIT = 50  # the vendor's maximum


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _NewsClient(HttpPolicyMixin, NewsClient):
    """alpaca-py's news client with tapeflow's HTTP policy (as the bars client has)."""


class AlpacaNews:
    """NewsSource over Alpaca's historical news (keys from TAPEFLOW_ALPACA_API_KEY / _SECRET_KEY)."""

    name = SOURCE

    def __init__(
        self,
        settings: Settings,
        *,
        policy: HttpPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        key = require_key(settings.alpaca_api_key, vendor=SOURCE, setting=KEY_SETTING)
        secret = require_key(settings.alpaca_secret_key, vendor=SOURCE, setting=SECRET_SETTING)
        self.url = settings.alpaca_data_url
        self.policy = policy or HttpPolicy.from_settings(settings)
        self._now = now
        self._secrets = [key, secret]
        self._client = _NewsClient(key, secret, self.url, self.policy, sleep, now)

    def __repr__(self) -> str:
        return f"AlpacaNews(url={redact_url(self.url)!r})"

    def close(self) -> None:
        self._client._session.close()

    def news(self, symbols: Sequence[str] | None, window: Window) -> pl.DataFrame:
        """Items about `symbols` (None: all) published in [window.start, window.end), all pages."""
        wanted = list(dict.fromkeys(symbols)) if symbols is not None else None
        if wanted == []:
            return empty_raw_news()
        query = NewsRequest(
            symbols=",".join(wanted) if wanted else None,
            start=window.start, end=window.end, sort="asc", limit=PAGE_LIMIT,
        ).to_request_fields()
        rows: list[dict[str, Any]] = []
        tokens: set[str] = set()
        pages = 0
        while True:
            try:
                data = self._call(lambda: self._client.get(PATH, dict(query)))
            except MalformedPage as page:
                rows.append(self._page_row(page.text, f"{page.detail} ({page.path}, after {pages} good pages)"))
                break
            fetched_at = self._now()
            problem = _page_problem(data)
            if problem is not None:
                problem = f"unexpected response from {SOURCE}: {problem} (after {pages} good pages)"
                rows.append(self._page_row(self._client.text(), problem))
                break
            pages += 1
            rows.extend(item_row(item, fetched_at, self._scrub) for item in data["news"])
            token = data.get("next_page_token")
            if token is None:
                break
            if token in tokens:
                seen = json.dumps({"next_page_token": token, "pages": pages})
                problem = f"{SOURCE} sent the same page token twice; paging stopped after {pages} pages"
                rows.append(self._page_row(seen, problem))
                break
            tokens.add(token)
            query["page_token"] = token
        raw = raw_news(rows)
        # Undatable rows stay: they must reach the quarantine.
        published = pl.col("published_at")
        return raw.filter(published.is_between(window.start, window.end, closed="left") | published.is_null())

    def _page_row(self, text: str, problem: str) -> dict[str, Any]:
        """One row for a page that could not be read: its text, and why."""
        payload, problem = self._scrub(text[:PAGE_TEXT_LIMIT]), self._scrub(problem)
        return news_row(SOURCE, fetched_at=self._now(), payload=payload, problem=problem)

    def _call(self, fetch: Callable[[], Any]) -> Any:
        """Run an SDK call; its APIError becomes VendorError / VendorAuthError, keys never shown."""
        try:
            return fetch()
        except APIError as exc:
            error = vendor_error(exc, attempts=self.policy.attempts, check=CREDENTIALS, scrub=self._scrub)
        raise error  # outside the except block: the SDK's exception does not ride along

    def _scrub(self, text: str) -> str:
        return redact_text(text, self._secrets)


def _page_problem(data: Any) -> str | None:
    """What is wrong with a page's structure, or None."""
    if not isinstance(data, dict):
        return f"the page is {type(data).__name__}, not an object"
    if not isinstance(data.get("news"), list):
        return 'the page has no "news" list'
    if not isinstance(data.get("next_page_token"), str | None):
        return '"next_page_token" is neither text nor null'
    return None


# -- items (shared with the stream, whose messages carry the same fields) ------------------------


def item_row(item: Any, fetched_at: datetime, scrub: Callable[[str], str]) -> dict[str, Any]:
    """One vendor news item as a raw row; what cannot be read is null and `problem` says why."""
    if not isinstance(item, dict):
        payload = scrub(json.dumps(plain(item), sort_keys=True, default=str))
        return news_row(SOURCE, fetched_at=fetched_at, payload=payload, problem="the item is not a JSON object")
    problems: list[str] = []
    item_id = item.get("id")
    if item_id is not None and (isinstance(item_id, bool) or not isinstance(item_id, int | str)):
        problems.append(f"id is not an integer ({str(item_id)[:60]!r})")
    published_at, problem = instant(item.get("created_at"), "created_at")
    problems += [problem] if problem else []
    tickers, problem = _tickers(item.get("symbols"))
    problems += [problem] if problem else []
    return news_row(
        SOURCE,
        id=item_id,
        published_at=published_at,
        fetched_at=fetched_at,
        headline=item.get("headline"),
        summary=item.get("summary"),
        url=item.get("url"),
        tickers=tickers,
        category=item.get("source"),
        author=item.get("author"),
        payload=scrub(json.dumps(plain(item), sort_keys=True, default=str)),
        problem=scrub("; ".join(problems)) if problems else None,
    )


def instant(value: Any, name: str) -> tuple[datetime | None, str | None]:
    """An aware UTC instant from RFC-3339 text (REST, JSON) or a msgpack timestamp (stream)."""
    if value is None:
        return None, f"the item has no {name}"
    if isinstance(value, msgpack.Timestamp):
        return value.to_datetime(), None
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        return None, f"{name} is not an RFC-3339 instant ({str(value)[:60]!r})"
    if parsed.tzinfo is None:
        return None, f"{name} has no time zone ({value[:60]!r})"
    return parsed.astimezone(UTC), None


def _tickers(symbols: Any) -> tuple[list[str] | None, str | None]:
    # No "symbols" at all is an untagged item (market-wide news), not a fault.
    if symbols is None:
        return [], None
    if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
        return None, f"symbols is not a list of text ({json.dumps(plain(symbols), default=str)[:60]})"
    return [s.upper() for s in symbols], None


def plain(value: Any) -> Any:
    """JSON-able copy: msgpack timestamps (stream) become RFC-3339 text."""
    if isinstance(value, msgpack.Timestamp):
        return value.to_datetime().isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


__all__ = ["AlpacaNews", "instant", "item_row", "plain"]
