"""The REST news vendors the news contract suite runs against: each adapter, its fake on
127.0.0.1 (tests/fakes/) and what differs between them (the key and where it travels, the
settings it reads, the order items come in, and the pages and items each vendor can get wrong).

Each vendor's file under tests/venues/ keeps what only that vendor does; what every vendor
must do is asserted once, for all of them, in tests/news/test_contract.py.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tapeflow.config import Settings
from tapeflow.news.rest import RestNewsSource
from tapeflow.sources.base import Window
from tapeflow.sources.http import HttpPolicy
from tapeflow.venues.benzinga import BenzingaNews
from tapeflow.venues.marketaux import MarketauxNews
from tapeflow.venues.polygon.news import PolygonNews
from tapeflow.venues.tiingo import TiingoNews
from tests.fakes import benzinga, marketaux, polygon_news, tiingo
from tests.fakes.news_vendor import FakeNewsVendor
from tests.fakes.vendor_http import Request

UTC = UTC
FAST = HttpPolicy(timeout_s=2.0, attempts=3, backoff_s=0.01, jitter=0.0)
T0 = datetime(2026, 3, 9, 13, 30, tzinfo=UTC)  # 09:30 New York (EDT)
WINDOW = Window(T0, T0 + timedelta(hours=2))
NOW = datetime(2026, 3, 10, tzinfo=UTC)
# A server lives for the whole test session (see `NewsServers`); its own timer is only a backstop.
SERVER_LIFETIME_S = 3600.0


@dataclass(frozen=True)
class MalformedItems:
    """A page with one good item and broken ones, and how the adapter must read it: `columns`
    of the rows (id and problem, plus the vendor's field the page exercises), the ids that pass
    `check_news`, and the quarantine's reasons for the others."""

    page: Any
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    good: list[str]
    reasons: list[str]


@dataclass(frozen=True)
class NewsVenue:
    name: str
    adapter: type[RestNewsSource]
    fake: type[FakeNewsVendor]
    key: str
    key_env: str  # the setting errors must name
    key_field: str  # the Settings fields for the key and the base URL
    url_field: str
    key_query: str | None  # where the key travels: this query parameter, or else...
    key_scheme: str | None  # ...the Authorization header, as "<scheme> <key>"
    path: str
    symbols_param: str  # the query parameter that names the symbols
    newest_first: bool  # the order items of one page come back in
    item: Callable[[int, datetime, list[str]], dict[str, Any]]  # the i-th item of a test
    broken_json: str  # a truncated page
    wrong_shapes: dict[str, tuple[str, str]]  # label: (valid JSON that is no page, the problem it is)
    malformed_items: MalformedItems
    quoting_key: Callable[[str], str]  # a page (the vendor's error) that quotes the key it is given

    def source(
        self, fake: FakeNewsVendor, sleeps: list[float] | None = None, page_size: int | None = None,
        key: str | None = None, **settings: Any,
    ) -> RestNewsSource:
        """The adapter on `fake`, with the fast policy, a fixed clock and sleeps recorded in `sleeps`."""
        config = Settings(**{self.key_field: key or self.key, self.url_field: fake.url, **settings})
        sleep = sleeps.append if sleeps is not None else (lambda _: None)
        return self.adapter(config, policy=FAST, sleep=sleep, now=lambda: NOW, page_size=page_size)

    def items(self, count: int, tickers: tuple[str, ...] = ("AAPL",), start: datetime = T0) -> list[dict[str, Any]]:
        """`count` items about `tickers`, ten minutes apart from `start`."""
        return [self.item(i, start + timedelta(minutes=10 * i), list(tickers)) for i in range(count)]

    def sent_key(self, request: Request) -> str | None:
        """The key as it reached the vendor in `request`."""
        if self.key_query is not None:
            return request.query.get(self.key_query)
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        return key if scheme == self.key_scheme else None

    def without_key(self, request: Request) -> str:
        """Everything of the request's URL but the key's own query parameter."""
        return request.path + repr(sorted((k, v) for k, v in request.query.items() if k != self.key_query))


def _benzinga_items() -> MalformedItems:
    good = benzinga.story(1, T0, ["AAPL"])
    page = [
        good,
        {**good, "id": 2, "stocks": [{"name": 5}]},
        {**good, "id": 3, "channels": "News"},
        {**good, "id": 4.5},
        "a story",
    ]
    problems = [
        "stocks entry's name is not text: {'name': 5}",
        "channels is not a list: 'News'",
        "id is not an id: 4.5",
        "benzinga item is not a JSON object",
    ]
    rows = [("1", None), ("2", problems[0]), ("3", problems[1]), (None, problems[2]), (None, problems[3])]
    return MalformedItems(page, ("id", "problem"), rows, good=["1"], reasons=problems)


def _marketaux_items() -> MalformedItems:
    good = marketaux.article("good", T0, ["AAPL"])
    data = [
        good,
        {**good, "uuid": "offset", "published_at": "2026-03-09T15:00:00.000000+01:00"},
        {**good, "uuid": "no-zone", "published_at": "2026-03-09T14:00:00.000000"},
        {**good, "uuid": "bad-entity", "entities": [{"name": "Apple"}]},
        {**good, "uuid": None},
    ]
    page = {"meta": {"found": 5, "returned": 5, "limit": 100, "page": 1}, "data": data}
    no_zone = "published_at has no time zone: '2026-03-09T14:00:00.000000'"
    bad_entity = "entities entry's symbol is not text: {'name': 'Apple'}"
    rows = [
        ("good", T0, None),
        ("offset", datetime(2026, 3, 9, 14, tzinfo=UTC), None),  # +01:00 read as UTC
        ("no-zone", None, no_zone),
        ("bad-entity", T0, bad_entity),
        (None, T0, None),
    ]
    return MalformedItems(
        page, ("id", "published_at", "problem"), rows, good=["good", "offset"],
        reasons=[no_zone, bad_entity, "id is missing"],
    )


def _polygon_items() -> MalformedItems:
    good = polygon_news.article("good", T0, ["aapl"])
    page = {
        "status": "OK",
        "results": [
            good,
            {**good, "id": "no-stamp", "published_utc": None},
            {**good, "id": "naive", "published_utc": "2026-03-09T13:40:00"},
            {**good, "id": "bad-tickers", "tickers": "AAPL"},
            {**good, "id": "bad-title", "title": 5},
            7,
        ],
    }
    problems = [
        "published_utc is missing or not text: None",
        "published_utc has no time zone: '2026-03-09T13:40:00'",
        "tickers is not a list: 'AAPL'",
        "title is not text: 5",
        "polygon item is not a JSON object",
    ]
    rows = [
        ("good", ["AAPL"], None),  # tickers upper-cased
        ("no-stamp", ["AAPL"], problems[0]),
        ("naive", ["AAPL"], problems[1]),
        ("bad-tickers", None, problems[2]),
        ("bad-title", ["AAPL"], problems[3]),
        (None, None, problems[4]),
    ]
    return MalformedItems(page, ("id", "tickers", "problem"), rows, good=["good"], reasons=problems)


def _tiingo_items() -> MalformedItems:
    good = tiingo.article(1, T0, ["AAPL"])
    page = [
        good,
        {**good, "id": 2, "tickers": ["aapl", None]},
        {**good, "id": 3, "publishedDate": "yesterday"},
        {**good, "id": 4, "tags": None, "title": ""},
        {**good, "id": 5, "description": ["x"]},
    ]
    tags = "Earnings, Technology"
    problems = [
        "tickers entry is not text: None",
        "publishedDate is not an ISO 8601 time: 'yesterday'",
        "description is not text: ['x']",
    ]
    rows = [("1", tags, None), ("2", tags, problems[0]), ("3", tags, problems[1]), ("4", None, None), ("5", tags, problems[2])]
    reasons = [problems[0], problems[1], "headline must be non-empty", problems[2]]
    return MalformedItems(page, ("id", "category", "problem"), rows, good=["1"], reasons=reasons)


NEWS_VENUES: dict[str, NewsVenue] = {
    venue.name: venue
    for venue in [
        NewsVenue(
            name="benzinga",
            adapter=BenzingaNews,
            fake=benzinga.FakeBenzinga,
            key="SEKRET-benzinga-93d0f2",
            key_env="TAPEFLOW_BENZINGA_API_KEY",
            key_field="benzinga_api_key",
            url_field="benzinga_url",
            key_query="token",
            key_scheme=None,
            path="/api/v2/news",
            symbols_param="tickers",
            newest_first=True,
            item=lambda i, at, tickers: benzinga.story(100 + i, at, tickers),
            broken_json='[{"id": 1,',
            wrong_shapes={
                "a dict": ('{"message": "oops"}', "malformed page from benzinga: expected a JSON list, got dict"),
            },
            malformed_items=_benzinga_items(),
            quoting_key=lambda key: f'{{"error": "token {key} expired"',
        ),
        NewsVenue(
            name="marketaux",
            adapter=MarketauxNews,
            fake=marketaux.FakeMarketaux,
            key="SEKRET-marketaux-0e4b19",
            key_env="TAPEFLOW_MARKETAUX_API_KEY",
            key_field="marketaux_api_key",
            url_field="marketaux_url",
            key_query="api_token",
            key_scheme=None,
            path="/v1/news/all",
            symbols_param="symbols",
            newest_first=True,
            item=lambda i, at, tickers: marketaux.article(f"u{i}", at, tickers),
            broken_json='{"meta": {"found": 3',
            wrong_shapes={
                "a list": ("[]", "malformed page from marketaux: expected a JSON object, got list"),
                "an error": (
                    '{"error": {"code": "malformed_parameters", "message": "Bad symbols."}}',
                    "malformed page from marketaux: data is not a list: malformed_parameters: Bad symbols.",
                ),
            },
            malformed_items=_marketaux_items(),
            quoting_key=lambda key: f'{{"error": {{"code": "invalid_api_token", "message": "{key} is not valid"}}}}',
        ),
        NewsVenue(
            name="polygon",
            adapter=PolygonNews,
            fake=polygon_news.FakePolygonNews,
            key="SEKRET-polygon-news-5c1e77",
            key_env="TAPEFLOW_POLYGON_API_KEY",
            key_field="polygon_api_key",
            url_field="polygon_url",
            key_query=None,
            key_scheme="Bearer",
            path="/v2/reference/news",
            symbols_param="ticker",
            newest_first=False,
            item=lambda i, at, tickers: polygon_news.article(f"n{i}", at, tickers),
            broken_json='{"results": [ {"id": "x",',
            wrong_shapes={
                "a list": ("[]", "malformed page from polygon: expected a JSON object, got list"),
                "results a dict": (
                    '{"status": "OK", "results": {"id": "x"}}',
                    "malformed page from polygon: results is a dict, not a list",
                ),
                "status ERROR": ('{"status": "ERROR", "error": "boom"}', "polygon answered status 'ERROR': boom"),
                "next_url no URL": (
                    '{"status": "OK", "results": [], "next_url": 5}',
                    "malformed page from polygon: next_url 5 is not a URL; paging stopped",
                ),
            },
            malformed_items=_polygon_items(),
            quoting_key=lambda key: f'{{"status": "ERROR", "error": "key {key} is not entitled"',
        ),
        NewsVenue(
            name="tiingo",
            adapter=TiingoNews,
            fake=tiingo.FakeTiingo,
            key="SEKRET-tiingo-b62d0a",
            key_env="TAPEFLOW_TIINGO_API_KEY",
            key_field="tiingo_api_key",
            url_field="tiingo_url",
            key_query=None,
            key_scheme="Token",
            path="/tiingo/news",
            symbols_param="tickers",
            newest_first=True,
            item=lambda i, at, tickers: tiingo.article(100 + i, at, tickers),
            broken_json='[{"id": 1,',
            wrong_shapes={
                "a dict": (
                    '{"detail": "Not found."}', "malformed page from tiingo: expected a JSON list, got dict: Not found."
                ),
            },
            malformed_items=_tiingo_items(),
            quoting_key=lambda key: f'{{"detail": "Token {key} is over its limit"}}',
        ),
    ]
}


class NewsServers:
    """One fake server per vendor, started when a test first asks for it and stopped on exit;
    `fresh` hands it over reset, so that one server serves every test of the session."""

    def __init__(self) -> None:
        self._stack = ExitStack()
        self._running: dict[str, FakeNewsVendor] = {}

    def fresh(self, venue: NewsVenue) -> FakeNewsVendor:
        fake = self._running.get(venue.name)
        if fake is None:
            fake = self._stack.enter_context(venue.fake(venue.key, max_lifetime=SERVER_LIFETIME_S))
            self._running[venue.name] = fake
        fake.reset()
        return fake

    def __enter__(self) -> NewsServers:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

