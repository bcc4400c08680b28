"""Marketaux finance news as raw news batches, over the shared `VendorHttp` policy.

Wire format (checked against marketaux.com/documentation and clients that type its answer):
`GET /v1/news/all` with query `api_token` (the documented place for the key), `symbols`
(comma list; left out for all news), `filter_entities=true` (entities limited to those
symbols), `language=en`, `published_after` and `published_before` (`YYYY-MM-DDTHH:MM:SS`, UTC;
the documentation does not say whether they are inclusive, so the request reaches a second past
each side and the exact window is cut client-side), `limit` and `page` (1-based). The answer is
`{"meta":{"found","returned","limit","page"},"data":[item]}`, an item `{"uuid","title",
"description","keywords","snippet","url","image_url","language","published_at","source",
"relevance_score","entities":[{"symbol","name","exchange","exchange_long","country","type",
"industry","match_score","sentiment_score","highlights"}],"similar":[..]}` with `published_at`
like `2024-01-02T14:30:00.000000Z`. Paging: the next page until `returned < meta.limit` or
`page * meta.limit >= found`; `meta.limit` is what the plan granted, which may be less than
asked, so the answer's limit decides, not the request's.

The key rides in the query string: VendorHttp keeps URLs out of its errors and the request line
out of urllib3's logs, and nothing stored here carries the key.

Rows: headline = title, summary = description, url = url, tickers = entities' symbols
(upper-case); Marketaux items carry no author or category (`source` is the publisher's domain,
kept in payload).
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
    ONE_SECOND,
    Ask,
    Fields,
    PageRead,
    RestNewsSource,
    fetch_rows,
    in_window,
    iso_instant,
    not_an_object,
    stamp,
    whole_seconds,
)
from tapeflow.sources.base import Window
from tapeflow.sources.rows import json_int

NAME = "marketaux"
KEY_SETTING = "TAPEFLOW_MARKETAUX_API_KEY"
PATH = "/v1/news/all"
PAGE_LIMIT = 100  # asked for; the plan may grant fewer (the answer's meta.limit says)


class MarketauxNews(RestNewsSource):
    """NewsSource from Marketaux's news endpoint."""

    name = NAME
    key_setting = KEY_SETTING
    page_limit = PAGE_LIMIT
    key_param = "api_token"

    @staticmethod
    def _account(settings: Settings) -> tuple[SecretStr | None, str]:
        return settings.marketaux_api_key, settings.marketaux_url

    def news(self, symbols: Sequence[str] | None, window: Window) -> pl.DataFrame:
        """Every item Marketaux sends about `symbols` (None: all news), kept when published in `window`."""
        if symbols is not None and not symbols:
            return in_window([], window)
        start, end = whole_seconds(window)
        query = {
            "filter_entities": "true",
            "language": "en",
            "published_after": stamp(start - ONE_SECOND),
            "published_before": stamp(end),
            "limit": str(self.page_size),
            "page": "1",
        }
        if symbols is not None:
            query = {"symbols": ",".join(symbols), **query}
        rows = fetch_rows(self._http, Ask(PATH, query), _read, _row, source=NAME, now=self._now, secret=self._key)
        return in_window(rows, window)


def _read(data: Any, ask: Ask) -> PageRead:
    if not isinstance(data, dict):
        return PageRead([], problem=f"malformed page from {NAME}: expected a JSON object, got {type(data).__name__}")
    items = data.get("data")
    if not isinstance(items, list):
        error = data.get("error")
        said = f": {error.get('code')}: {error.get('message')}" if isinstance(error, dict) else ""
        return PageRead([], problem=f"malformed page from {NAME}: data is not a list{said}")
    meta = data.get("meta")
    counts = meta if isinstance(meta, dict) else {}
    found, returned, limit = (json_int(counts.get(k)) for k in ("found", "returned", "limit"))
    if found is None or returned is None or limit is None or limit < 1:
        problem = f"malformed page from {NAME}: meta {meta!r} cannot say whether more pages follow; paging stopped"
        return PageRead(items, problem=problem)
    query = dict(ask.query or {})
    page = int(query["page"])
    if returned < limit or page * limit >= found:
        return PageRead(items)
    return PageRead(items, Ask(ask.path, {**query, "page": str(page + 1)}))


def _row(item: Any, fetched_at: datetime) -> dict[str, Any]:
    if not isinstance(item, dict):
        return not_an_object(NAME, item, fetched_at)
    fields = Fields(item)
    return news_row(
        NAME,
        id=fields.ident("uuid"),
        published_at=fields.instant("published_at", iso_instant),
        fetched_at=fetched_at,
        headline=fields.text("title"),
        summary=fields.text("description"),
        url=fields.text("url"),
        tickers=fields.tickers("entities", "symbol"),
        payload=item,
        problem=fields.problem(),
    )
