"""Benzinga newsfeed (v2) as raw news batches, over the shared `VendorHttp` policy.

Wire format (checked against Benzinga's Newsfeed v2 reference, docs.benzinga.io/benzinga/
newsfeed-v2.html, and docs.benzinga.com): `GET /api/v2/news` with query `token` (the documented
place for the key), `tickers` (comma list, at most 50 as a summary of the docs states: longer
lists are asked in chunks; left out for all news), `dateFrom`/`dateTo` (`YYYY-MM-DD`, by
published date), `pageSize` (at most 100), `page` (0-based, 0..100000),
`displayOutput=abstract` (headline and teaser; `full` adds the article body, which no row
field uses and which could push a payload past its 20,000-character cap), header
`Accept: application/json`. The answer is a JSON list of items `{"id","author","created",
"updated","title","teaser","body","url","image":[..],"channels":[{"name"}],"stocks":[{"name"}],
"tags":[{"name"}]}`, `created` like `Wed, 17 May 2023 14:20:15 -0400` (RFC 2822, with an
offset). Paging: the next page until one returns fewer than `pageSize` items.

The dates do not say their zone, so a day is added on each side and the exact window is cut
client-side. The key rides in the query string: VendorHttp keeps URLs out of its errors and
the request line out of urllib3's logs, and nothing stored here carries the key.

Rows: headline = title, summary = teaser, url = url, author = author, published_at = created,
tickers = stocks' names (upper-case), category = channels' names joined (tags stay in payload).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import polars as pl
from pydantic import SecretStr

from tapeflow.config import Settings
from tapeflow.news.frames import news_row
from tapeflow.news.rest import (
    Ask,
    Fields,
    PageRead,
    RestNewsSource,
    covering_dates,
    fetch_rows,
    in_window,
    joined,
    not_an_object,
    rfc2822_instant,
)
from tapeflow.sources.base import Window

NAME = "benzinga"
KEY_SETTING = "TAPEFLOW_BENZINGA_API_KEY"
PATH = "/api/v2/news"
PAGE_LIMIT = 100  # Benzinga's maximum pageSize
TICKERS_PER_ASK = 50  # Benzinga's maximum tickers per request


class BenzingaNews(RestNewsSource):
    """NewsSource from Benzinga's newsfeed."""

    name = NAME
    key_setting = KEY_SETTING
    page_limit = PAGE_LIMIT
    key_param = "token"
    headers = {"Accept": "application/json"}

    @staticmethod
    def _account(settings: Settings) -> tuple[SecretStr | None, str]:
        return settings.benzinga_api_key, settings.benzinga_url

    def news(self, symbols: Sequence[str] | None, window: Window) -> pl.DataFrame:
        """Every item Benzinga sends about `symbols` (None: all news), kept when published in `window`."""
        first, last = covering_dates(window)
        query = {
            "dateFrom": first.isoformat(),
            "dateTo": last.isoformat(),
            "pageSize": str(self.page_size),
            "page": "0",
            "displayOutput": "abstract",
        }
        if symbols is None:
            asks = [Ask(PATH, query)]
        else:
            chunks = [symbols[i : i + TICKERS_PER_ASK] for i in range(0, len(symbols), TICKERS_PER_ASK)]
            asks = [Ask(PATH, {"tickers": ",".join(chunk), **query}) for chunk in chunks]
        rows: list[dict[str, Any]] = []
        for ask in asks:
            rows += fetch_rows(self._http, ask, self._read, _row, source=NAME, now=self._now, secret=self._key)
        return in_window(rows, window)

    def _read(self, data: Any, ask: Ask) -> PageRead:
        if not isinstance(data, list):
            return PageRead([], problem=f"malformed page from {NAME}: expected a JSON list, got {type(data).__name__}")
        if len(data) < self.page_size:
            return PageRead(data)
        query = dict(ask.query or {})
        query["page"] = str(int(query["page"]) + 1)
        return PageRead(data, Ask(ask.path, query))


def _row(item: Any, fetched_at: datetime) -> dict[str, Any]:
    if not isinstance(item, dict):
        return not_an_object(NAME, item, fetched_at)
    fields = Fields(item)
    return news_row(
        NAME,
        id=fields.ident("id"),
        published_at=fields.instant("created", rfc2822_instant),
        fetched_at=fetched_at,
        headline=fields.text("title"),
        summary=fields.text("teaser"),
        url=fields.text("url"),
        tickers=fields.tickers("stocks", "name"),
        category=joined(fields.names("channels", "name")),
        author=fields.text("author"),
        payload=item,
        problem=fields.problem(),
    )
