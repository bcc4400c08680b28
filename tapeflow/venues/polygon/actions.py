"""Polygon.io splits and dividends as raw corporate-action batches, over the shared `VendorHttp` policy.

Wire format (Polygon's REST reference for `/v3/reference/splits` and `/v3/reference/dividends`,
and polygon-io/client-python's `list_splits`, `list_dividends`, `Split` and `Dividend`):

    GET /v3/reference/splits?ticker=&execution_date.gte=&execution_date.lte=&order=asc
                             &sort=execution_date&limit=1000
        -> {"results": [{"id", "ticker", "execution_date": "YYYY-MM-DD", "split_from", "split_to"}],
            "status": "OK", "request_id", "next_url"}
    GET /v3/reference/dividends?ticker=&ex_dividend_date.gte=&ex_dividend_date.lte=&order=asc
                                &sort=ex_dividend_date&limit=1000
        -> {"results": [{"id", "ticker", "cash_amount", "currency", "declaration_date",
                         "ex_dividend_date", "pay_date", "record_date", "dividend_type", "frequency"}],
            "status": "OK", "request_id", "next_url"}

One request per symbol (`ticker` left out when all symbols are asked for); the key travels
only in `Authorization: Bearer <key>`; `next_url` is followed, reduced to path and query and
sent to settings.polygon_url, as for aggregates. A split is a 2-for-1 when split_to=2 and
split_from=1: ratio = split_to / split_from, a split above 1, a reverse split otherwise.
dividend_type CD (regular), LT and ST (capital gains) are cash dividends, SC a special
distribution. An amount in another currency than USD is reported as a problem, not converted.

knowable_at: a dividend is knowable from the end of its declaration_date's New York day (the
next New York midnight: the date gives no hour, so the day's last instant is the safe one),
never later than the fetch; a split, which Polygon does not date its announcement, from the
fetch itself (`fetched_at`): known only from when tapeflow saw it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

import polars as pl

from tapeflow.config import Settings
from tapeflow.model import ActionKind
from tapeflow.redact import redact_url
from tapeflow.sources.action_rows import ActionFields, action_row, knowable_from, raw_actions
from tapeflow.sources.http import HttpPolicy, Page, VendorHttp, require_key
from tapeflow.sources.rows import PAYLOAD_CHARS

NAME = "polygon"
KEY_SETTING = "TAPEFLOW_POLYGON_API_KEY"
PAGE_LIMIT = 1000  # Polygon's maximum for reference endpoints
GOOD_STATUSES = ("OK", "DELAYED")
DIVIDEND_KINDS = {
    "CD": ActionKind.CASH_DIVIDEND,
    "LT": ActionKind.CASH_DIVIDEND,
    "ST": ActionKind.CASH_DIVIDEND,
    "SC": ActionKind.SPECIAL_DISTRIBUTION,
}
CURRENCY = "USD"

Row = dict[str, Any]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _split(item: dict[str, Any], fetched_at: datetime) -> Row:
    fields = ActionFields(item)
    ratio = fields.ratio("split_to", "split_from")
    # Without a ratio the item still is a split: check_actions names what is missing.
    kind = ActionKind.SPLIT if ratio is None or ratio > 1 else ActionKind.REVERSE_SPLIT
    return {"symbol": fields.text("ticker"), "kind": kind.value, "ex_date": fields.day("execution_date"),
            "ratio": ratio, "knowable_at": fetched_at, "problem": fields.problem()}


def _dividend(item: dict[str, Any], fetched_at: datetime) -> Row:
    fields = ActionFields(item)
    named = item.get("dividend_type")
    kind = DIVIDEND_KINDS.get(named) if isinstance(named, str) else None
    if kind is None:
        fields.note(f"dividend_type {named!r} is none of {', '.join(DIVIDEND_KINDS)}")
    currency = item.get("currency")
    if currency is not None and currency != CURRENCY:
        fields.note(f"cash_amount is in {currency!r}, not {CURRENCY}")
    row = {"symbol": fields.text("ticker"), "kind": kind.value if kind else None,
           "ex_date": fields.day("ex_dividend_date"), "amount": fields.number("cash_amount")}
    declared = fields.day("declaration_date", optional=True)
    return {**row, "knowable_at": knowable_from(declared, fetched_at), "problem": fields.problem()}


@dataclass(frozen=True)
class Endpoint:
    """One reference endpoint: its path, the date field it is filtered and sorted on, its item reader."""

    path: str
    date_field: str
    read: Callable[[dict[str, Any], datetime], Row]


ENDPOINTS = (
    Endpoint("/v3/reference/splits", "execution_date", _split),
    Endpoint("/v3/reference/dividends", "ex_dividend_date", _dividend),
)


class PolygonActions:
    """ActionSource over Polygon's splits and dividends, one symbol at a time."""

    name = NAME

    def __init__(
        self,
        settings: Settings,
        *,
        policy: HttpPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = _utc_now,
        page_size: int = PAGE_LIMIT,
    ) -> None:
        key = require_key(settings.polygon_api_key, vendor=NAME, setting=KEY_SETTING)
        if not 1 <= page_size <= PAGE_LIMIT:
            raise ValueError(f"page_size must be within 1..{PAGE_LIMIT}")
        self.page_size = page_size
        self._now = now
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
        return f"PolygonActions({redact_url(self._http.base_url)!r})"

    def close(self) -> None:
        self._http.close()

    def actions(self, symbols: Sequence[str] | None, first: date, last: date) -> pl.DataFrame:
        """Splits and dividends of `symbols` (None: all) whose ex-date lies in first..last."""
        if last < first:
            raise ValueError(f"last day {last} is before first day {first}")
        tickers: list[str | None] = [None] if symbols is None else list(dict.fromkeys(symbols))
        rows = [row for endpoint in ENDPOINTS for ticker in tickers for row in self._rows(endpoint, ticker, first, last)]
        return raw_actions(rows, first, last)

    def _rows(self, endpoint: Endpoint, ticker: str | None, first: date, last: date) -> list[Row]:
        """Every page of one endpoint for one ticker; paging stops at a page that cannot be read."""
        on = endpoint.date_field
        params: dict[str, str] | None = {
            **({"ticker": ticker} if ticker is not None else {}),
            f"{on}.gte": first.isoformat(),
            f"{on}.lte": last.isoformat(),
            "order": "asc",
            "sort": on,
            "limit": str(self.page_size),
        }
        rows: list[Row] = []
        seen: set[str] = set()
        target: str | None = endpoint.path
        while target is not None:
            seen.add(target)
            page = self._http.get(target, params)
            params = None  # next_url carries the query (its cursor encodes it)
            fetched_at = self._now()
            items, next_url, problem = _read(page)
            rows += [self._item_row(endpoint, item, fetched_at) for item in items]
            target = next_url
            if problem is None and target in seen:
                problem = f"malformed page from {NAME}: next_url repeats a page already read; paging stopped"
            if problem is not None:
                text = page.text[:PAYLOAD_CHARS]
                rows.append(action_row(NAME, fetched_at, text, f"{problem} ({endpoint.path})", symbol=ticker))
                target = None
        return rows

    def _item_row(self, endpoint: Endpoint, item: Any, fetched_at: datetime) -> Row:
        payload = json.dumps(item, sort_keys=True)
        if not isinstance(item, dict):
            return action_row(NAME, fetched_at, payload, f"{NAME} {endpoint.path} item is not a JSON object")
        return action_row(NAME, fetched_at, payload, **endpoint.read(item, fetched_at))


def _read(page: Page) -> tuple[list[Any], str | None, str | None]:
    """(items, next path and query, problem with the page itself); a page with a problem has no next."""
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
    if next_url is None:
        return results, None, None
    if not (isinstance(next_url, str) and urlsplit(next_url).path):
        return results, None, f"malformed page from {NAME}: next_url {next_url!r} is not a URL; paging stopped"
    parts = urlsplit(next_url)
    # Only path and query: the configured base URL answers, whatever host the link names.
    return results, parts.path + (f"?{parts.query}" if parts.query else ""), None


__all__ = ["PolygonActions"]
