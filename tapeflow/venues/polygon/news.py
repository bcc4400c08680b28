"""Polygon.io ticker news as raw news batches, over the shared `VendorHttp` policy.

Wire format (checked against polygon-io/client-python: `list_ticker_news` and its `TickerNews`
model): `GET /v2/reference/news` with query `ticker` (left out for all news), `published_utc.gte`
and `published_utc.lt` (`YYYY-MM-DDTHH:MM:SSZ`, the window widened to whole seconds),
`order=asc`, `sort=published_utc`, `limit` (at most 1000 a page). The key travels only in the
header `Authorization: Bearer <key>`. A page is `{"results":[item],"status":"OK","request_id",
"count","next_url"}`; `next_url` (a full URL without the key) is followed until absent, reduced to
path and query and sent to settings.polygon_url, as for aggregates, so the key never goes to
another host. An item is `{"id","publisher":{"name","homepage_url","logo_url","favicon_url"},
"title","author","published_utc","article_url","amp_url","image_url","tickers":[..],
"description","keywords":[..],"insights":[{"ticker","sentiment","sentiment_reasoning"}]}` with
`published_utc` like `2024-06-24T18:33:53Z`.

Rows: headline = title, summary = description, url = article_url, author = author, tickers =
tickers (upper-case), category = keywords joined. Several symbols are asked one after another,
so an item about two of them comes twice; check_news keeps identical copies as one item.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import polars as pl
from pydantic import SecretStr

from tapeflow.config import Settings
from tapeflow.news.frames import news_row
from tapeflow.news.rest import (
    Ask,
    Fields,
    PageRead,
    RestNewsSource,
    fetch_rows,
    in_window,
    iso_instant,
    joined,
    not_an_object,
    whole_seconds,
)
from tapeflow.sources.base import Window

NAME = "polygon"
KEY_SETTING = "TAPEFLOW_POLYGON_API_KEY"
PATH = "/v2/reference/news"
PAGE_LIMIT = 1000  # Polygon's maximum for reference endpoints
GOOD_STATUSES = ("OK", "DELAYED")


class PolygonNews(RestNewsSource):
    """NewsSource from Polygon's ticker news endpoint."""

    name = NAME
    key_setting = KEY_SETTING
    page_limit = PAGE_LIMIT
    key_header = ("Authorization", "Bearer {key}")

    @staticmethod
    def _account(settings: Settings) -> tuple[SecretStr | None, str]:
        return settings.polygon_api_key, settings.polygon_url

    def news(self, symbols: Sequence[str] | None, window: Window) -> pl.DataFrame:
        """Every item Polygon sends about `symbols` (None: all news), kept when published in `window`."""
        start, end = whole_seconds(window)
        query = {
            "published_utc.gte": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "published_utc.lt": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "order": "asc",
            "sort": "published_utc",
            "limit": str(self.page_size),
        }
        asks = [Ask(PATH, query)] if symbols is None else [Ask(PATH, {"ticker": s, **query}) for s in symbols]
        rows: list[dict[str, Any]] = []
        for ask in asks:
            rows += fetch_rows(self._http, ask, _read, _row, source=NAME, now=self._now, secret=self._key)
        return in_window(rows, window)


def _read(data: Any, ask: Ask) -> PageRead:
    if not isinstance(data, dict):
        return PageRead([], problem=f"malformed page from {NAME}: expected a JSON object, got {type(data).__name__}")
    status = data.get("status")
    if status not in GOOD_STATUSES:
        said = data.get("error") or data.get("message") or "no error text"
        return PageRead([], problem=f"{NAME} answered status {status!r}: {said}")
    results = data.get("results")
    if results is None:
        results = []  # Polygon leaves `results` out when there is nothing to send
    if not isinstance(results, list):
        return PageRead([], problem=f"malformed page from {NAME}: results is a {type(results).__name__}, not a list")
    next_url = data.get("next_url")
    if next_url is None:
        return PageRead(results)
    if not (isinstance(next_url, str) and urlsplit(next_url).path):
        problem = f"malformed page from {NAME}: next_url {next_url!r} is not a URL; paging stopped"
        return PageRead(results, problem=problem)
    parts = urlsplit(next_url)
    # Only path and query: the configured base URL answers, whatever host the link names.
    return PageRead(results, Ask(parts.path + (f"?{parts.query}" if parts.query else "")))


def _row(item: Any, fetched_at: datetime) -> dict[str, Any]:
    if not isinstance(item, dict):
        return not_an_object(NAME, item, fetched_at)
    fields = Fields(item)
    return news_row(
        NAME,
        id=fields.ident("id"),
        published_at=fields.instant("published_utc", iso_instant),
        fetched_at=fetched_at,
        headline=fields.text("title"),
        summary=fields.text("description"),
        url=fields.text("article_url"),
        tickers=fields.tickers("tickers"),
        category=joined(fields.names("keywords")),
        author=fields.text("author"),
        payload=item,
        problem=fields.problem(),
    )
