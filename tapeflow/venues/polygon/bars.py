"""Polygon.io aggregates as raw bar batches, over the shared `VendorHttp` policy.

Wire format: `GET /v2/aggs/ticker/{ticker}/range/1/{minute|day}/{from}/{to}` with query
`adjusted=true|false` (settings.polygon_adjusted), `sort=asc`, `limit=50000`; `from`/`to` are
the New York dates covering the window (both inclusive). The key travels only in the header
`Authorization: Bearer <key>`, never in a URL. A page is `{"ticker","queryCount","resultsCount",
"adjusted","results":[{"v","vw","o","c","h","l","t","n"}],"status":"OK"|"DELAYED","request_id",
"next_url"}`; `results` may be absent when empty; `next_url` (a full URL without the key) is
followed until absent. Only its path and query are kept: they are sent to the configured base
URL, so the key never goes to a host other than settings.polygon_url (and a proxy keeps working).

Instants: `t` is the bar start in ms since the epoch. Minute bars: [t, t + 1 min). Day bars:
`t` is midnight America/New_York of the session date, so the session is the New York date of
`t` and the bar spans its regular session (`daily_bounds`). Prices are "split" adjusted when the
page says `"adjusted": true` (what was asked for when the page does not say), else "raw".
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import polars as pl

from tapeflow.calendar.exchange import ny_day
from tapeflow.config import Settings
from tapeflow.model import Adjustment, Timeframe
from tapeflow.redact import redact_url
from tapeflow.sources.base import Window, empty_raw_bars
from tapeflow.sources.http import HttpPolicy, Page, VendorHttp, require_key
from tapeflow.sources.rows import (
    DAY,
    broken_row,
    empty_row,
    epoch_start,
    json_float,
    json_int,
    raw_frame,
)

NAME = "polygon"
KEY_SETTING = "TAPEFLOW_POLYGON_API_KEY"
PAGE_LIMIT = 50_000  # Polygon's maximum base aggregates per request
TIMESPANS = {Timeframe.MINUTE: "minute", Timeframe.DAY: "day"}
GOOD_STATUSES = ("OK", "DELAYED")
ONE_MINUTE = timedelta(minutes=1)


class PolygonSource:
    """MarketData from Polygon's aggregates endpoint, one symbol at a time."""

    name = NAME

    def __init__(
        self, settings: Settings, *, policy: HttpPolicy | None = None, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        key = require_key(settings.polygon_api_key, vendor=NAME, setting=KEY_SETTING)
        self.adjusted = settings.polygon_adjusted
        self._http = VendorHttp(
            NAME,
            settings.polygon_url,
            key_setting=KEY_SETTING,
            headers={"Authorization": f"Bearer {key}"},
            secrets=[key],
            policy=policy or HttpPolicy.from_settings(settings),
            sleep=sleep,
        )

    def __repr__(self) -> str:
        return f"PolygonSource({redact_url(self._http.base_url)!r}, adjusted={self.adjusted})"

    def close(self) -> None:
        self._http.close()

    def bars(self, symbols: Sequence[str] | None, timeframe: Timeframe, window: Window) -> pl.DataFrame:
        """Every aggregate Polygon sends for `symbols`, kept when its start lies in `window`."""
        if symbols is None:
            raise ValueError(f"{NAME} needs explicit symbols")
        timeframe = Timeframe(timeframe)
        frames = [raw_frame(self._symbol_rows(s, timeframe, window), timeframe) for s in symbols]
        if not frames:
            return empty_raw_bars()
        # Rows the adapter could not date stay in, so that they reach the quarantine.
        in_window = pl.col("ts").is_between(window.start, window.end, closed="left") | pl.col("ts").is_null()
        return pl.concat(frames).filter(in_window)

    def _symbol_rows(self, symbol: str, timeframe: Timeframe, window: Window) -> list[dict[str, Any]]:
        """All pages for one symbol, as row dicts; paging stops at a broken page."""
        first, last = _ny_dates(window)
        path = f"v2/aggs/ticker/{quote(symbol, safe='')}/range/1/{TIMESPANS[timeframe]}/{first}/{last}"
        params: dict[str, str] | None = {
            "adjusted": "true" if self.adjusted else "false",
            "sort": "asc",
            "limit": str(PAGE_LIMIT),
        }
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        target: str | None = path
        while target is not None:
            seen.add(target)
            page = self._http.get(target, params)
            params = None  # next_url already carries the query (its cursor encodes it)
            page_rows, next_url, problem = _page(page, symbol, timeframe, self.adjusted)
            rows += page_rows
            target = _rebased(next_url) if next_url is not None else None
            if problem is None and target in seen:
                problem = f"malformed page from {NAME}: next_url repeats a page already read; paging stopped"
            if problem is not None:
                rows.append(broken_row(NAME, symbol, timeframe, page.text, problem))
                target = None
        return rows


def _ny_dates(window: Window) -> tuple[date, date]:
    """The New York dates of the window's first and last instants (`end` is exclusive)."""
    last = window.end - timedelta(microseconds=1)
    return ny_day(window.start), ny_day(last)


def _rebased(next_url: str) -> str:
    """`next_url` reduced to path and query, to be sent to the configured base URL."""
    parts = urlsplit(next_url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _page(
    page: Page, symbol: str, timeframe: Timeframe, asked_adjusted: bool
) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """(bar rows, next_url, problem with the page itself); a page with a problem has no next_url."""
    if page.problem is not None:
        return [], None, page.problem
    data = page.data
    if not isinstance(data, dict):
        return [], None, f"malformed page from {NAME}: expected a JSON object, got {type(data).__name__}"
    status = data.get("status")
    if status not in GOOD_STATUSES:
        said = data.get("error") or data.get("message") or "no error text"
        return [], None, f"{NAME} answered status {status!r}: {said}"
    results = data.get("results")
    if results is None:
        results = []  # Polygon leaves `results` out when there is nothing to send
    if not isinstance(results, list):
        return [], None, f"malformed page from {NAME}: results is a {type(results).__name__}, not a list"
    next_url = data.get("next_url")
    if next_url is not None and not (isinstance(next_url, str) and urlsplit(next_url).path):
        problem = f"malformed page from {NAME}: next_url {next_url!r} is not a URL; paging stopped"
        return [], None, problem
    adjusted = data.get("adjusted")
    adjusted = adjusted if isinstance(adjusted, bool) else asked_adjusted
    adjustment = Adjustment.SPLIT if adjusted else Adjustment.RAW
    return [_bar(item, symbol, timeframe, adjustment) for item in results], next_url, None


def _bar(item: Any, symbol: str, timeframe: Timeframe, adjustment: Adjustment) -> dict[str, Any]:
    """One aggregate as a raw row: unparseable fields are null, never guessed."""
    if not isinstance(item, dict):
        row = broken_row(NAME, symbol, timeframe, json.dumps(item, sort_keys=True), f"{NAME} bar is not a JSON object")
        row["adjustment"] = adjustment.value
        return row
    start, problem = _start(item.get("t"))
    problems = [problem, *_optional_problems(item)]
    row = empty_row(NAME, symbol, timeframe)
    row.update(
        open=json_float(item.get("o")),
        high=json_float(item.get("h")),
        low=json_float(item.get("l")),
        close=json_float(item.get("c")),
        volume=json_float(item.get("v")),
        vwap=json_float(item.get("vw")),
        trade_count=json_int(item.get("n")),
        adjustment=adjustment.value,
        payload=json.dumps(item if "symbol" in item else {**item, "symbol": symbol}, sort_keys=True),
        problem="; ".join(p for p in problems if p) or None,
    )
    if start is not None and timeframe is Timeframe.DAY:
        row[DAY] = ny_day(start)
    elif start is not None:
        row.update(ts=start, end_ts=start + ONE_MINUTE)
    return row


def _optional_problems(item: dict[str, Any]) -> list[str]:
    """vw and n may be absent, but one that was sent and cannot be used must not vanish quietly."""
    problems = []
    if item.get("vw") is not None and json_float(item["vw"]) is None:
        problems.append(f"vw (vwap) is not a number: {item['vw']!r}")
    if item.get("n") is not None and json_int(item["n"]) is None:
        problems.append(f"n (trade count) is not a whole number: {item['n']!r}")
    return problems


def _start(value: Any) -> tuple[datetime | None, str | None]:
    return epoch_start(value, timedelta(milliseconds=1), "t (bar start, ms since the epoch)")
