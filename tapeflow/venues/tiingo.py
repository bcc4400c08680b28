"""Tiingo news as raw news batches, over the shared `VendorHttp` policy.

Wire format (checked against api.tiingo.com/documentation/news and hydrosquall/tiingo-python,
`get_news` and its recorded answers): `GET /tiingo/news` with query `tickers` (comma list, lower
case as in Tiingo's examples; left out for all news), `startDate`/`endDate` (`YYYY-MM-DD`),
`sortBy=publishedDate`, `limit` (at most 1000) and `offset`; the key only in the header
`Authorization: Token <key>`. The answer is a JSON list of items `{"id","title","url",
"description","publishedDate","crawlDate","source","tickers":[..],"tags":[..]}`, `publishedDate`
like `2016-01-11T23:13:00Z` (UTC), tickers in lower case. Paging: `offset` grows by `limit`
until a page returns fewer than `limit` items.

Tiingo filters by date and does not say in which zone, so a day is added on each side and the
exact window is cut client-side: items published outside it are not rows.

Rows: headline = title, summary = description, url = url, published_at = publishedDate, tickers
= tickers upper-cased, category = tags joined; Tiingo names no author (`source` is the
publisher's domain, kept in payload).
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
    iso_instant,
    joined,
    not_an_object,
)
from tapeflow.sources.base import Window

NAME = "tiingo"
KEY_SETTING = "TAPEFLOW_TIINGO_API_KEY"
PATH = "/tiingo/news"
PAGE_LIMIT = 1000  # Tiingo's maximum limit


class TiingoNews(RestNewsSource):
    """NewsSource from Tiingo's news endpoint."""

    name = NAME
    key_setting = KEY_SETTING
    page_limit = PAGE_LIMIT
    key_header = ("Authorization", "Token {key}")

    @staticmethod
    def _account(settings: Settings) -> tuple[SecretStr | None, str]:
        return settings.tiingo_api_key, settings.tiingo_url

    def news(self, symbols: Sequence[str] | None, window: Window) -> pl.DataFrame:
        """Every item Tiingo sends about `symbols` (None: all news), kept when published in `window`."""
        if symbols is not None and not symbols:
            return in_window([], window)
        first, last = covering_dates(window)
        query = {
            "startDate": first.isoformat(),
            "endDate": last.isoformat(),
            "sortBy": "publishedDate",
            "limit": str(self.page_size),
            "offset": "0",
        }
        if symbols is not None:
            query = {"tickers": ",".join(s.lower() for s in symbols), **query}
        rows = fetch_rows(self._http, Ask(PATH, query), self._read, _row, source=NAME, now=self._now, secret=self._key)
        return in_window(rows, window)

    def _read(self, data: Any, ask: Ask) -> PageRead:
        if not isinstance(data, list):
            said = f": {data['detail']}" if isinstance(data, dict) and isinstance(data.get("detail"), str) else ""
            problem = f"malformed page from {NAME}: expected a JSON list, got {type(data).__name__}{said}"
            return PageRead([], problem=problem)
        if len(data) < self.page_size:
            return PageRead(data)
        query = dict(ask.query or {})
        query["offset"] = str(int(query["offset"]) + self.page_size)
        return PageRead(data, Ask(ask.path, query))


def _row(item: Any, fetched_at: datetime) -> dict[str, Any]:
    if not isinstance(item, dict):
        return not_an_object(NAME, item, fetched_at)
    fields = Fields(item)
    return news_row(
        NAME,
        id=fields.ident("id"),
        published_at=fields.instant("publishedDate", iso_instant),
        fetched_at=fetched_at,
        headline=fields.text("title"),
        summary=fields.text("description"),
        url=fields.text("url"),
        tickers=fields.tickers("tickers"),
        category=joined(fields.names("tags")),
        payload=item,
        problem=fields.problem(),
    )
