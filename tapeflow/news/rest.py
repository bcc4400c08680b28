"""What the REST news adapters share: their construction (`RestNewsSource`), the paging loop
(a repeated cursor or a page served twice stops it with a problem row), vendor stamps read as
aware UTC, item fields read without guessing, the window cut, and the query key scrubbed from
what is stored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import polars as pl
from pydantic import SecretStr

from tapeflow.config import Settings
from tapeflow.news.frames import news_row, raw_news
from tapeflow.redact import redact_text, redact_url
from tapeflow.sources.base import Window
from tapeflow.sources.http import HttpPolicy, Page, VendorHttp, require_key

UTC = UTC
ONE_SECOND = timedelta(seconds=1)
ONE_DAY = timedelta(days=1)

Query = Mapping[str, str]


@dataclass(frozen=True)
class Ask:
    """One request: a path under the base URL (or a rebased vendor link) and its query."""

    path: str
    query: Query | None = None

    def key(self) -> str:
        return json.dumps([self.path, sorted((self.query or {}).items())])


@dataclass(frozen=True)
class PageRead:
    """A vendor page as read by its adapter: its items, what to ask next, or what was wrong."""

    items: list[Any]
    next: Ask | None = None
    problem: str | None = None  # set: one more row, with the page's text, says so and paging stops


def utc_now() -> datetime:
    return datetime.now(UTC)


class RestNewsSource:
    """A NewsSource over one vendor's REST API: its key, clock, page size and `VendorHttp`."""

    name: ClassVar[str]
    key_setting: ClassVar[str]  # named in errors about the key
    page_limit: ClassVar[int]  # the most items a page may be asked for
    # Where the key goes: a query parameter, or a header whose value is the template with {key}.
    key_param: ClassVar[str | None] = None
    key_header: ClassVar[tuple[str, str] | None] = None
    headers: ClassVar[Mapping[str, str]] = {}  # sent besides the key

    def __init__(
        self,
        settings: Settings,
        *,
        policy: HttpPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = utc_now,
        page_size: int | None = None,
    ) -> None:
        """`page_size` None asks for the vendor's maximum, and no more is ever asked."""
        secret, url = self._account(settings)
        self._key = require_key(secret, vendor=self.name, setting=self.key_setting)
        self._now = now
        self.page_size = max(1, min(self.page_limit if page_size is None else page_size, self.page_limit))
        headers = dict(self.headers)
        if self.key_header is not None:
            header, template = self.key_header
            headers[header] = template.format(key=self._key)
        self._http = VendorHttp(
            self.name,
            url,
            key_setting=self.key_setting,
            headers=headers,
            params={self.key_param: self._key} if self.key_param is not None else None,
            secrets=[self._key],
            policy=policy or HttpPolicy.from_settings(settings),
            sleep=sleep,
        )

    @staticmethod
    def _account(settings: Settings) -> tuple[SecretStr | None, str]:
        """The vendor's key and base URL from settings."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact_url(self._http.base_url)!r})"

    def close(self) -> None:
        self._http.close()


def fetch_rows(
    http: VendorHttp,
    first: Ask,
    read: Callable[[Any, Ask], PageRead],
    item_row: Callable[[Any, datetime], dict[str, Any]],
    *,
    source: str,
    now: Callable[[], datetime],
    secret: str,
) -> list[dict[str, Any]]:
    """Raw rows for every item on every page from `first` on; a page that cannot be read is one row."""
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    previous: str | None = None  # text of the last page that carried items
    ask: Ask | None = first
    while ask is not None:
        seen.add(ask.key())
        page = http.get(ask.path, ask.query)
        fetched_at = now()
        if page.problem is not None:
            result = PageRead([], None, page.problem)
        elif page.text == previous:
            # A vendor ignoring the page number would otherwise be asked forever.
            result = PageRead([], None, f"malformed page from {source}: the same page came back twice; paging stopped")
        else:
            result = read(page.data, ask)
        rows += [_scrubbed(item_row(item, fetched_at), secret) for item in result.items]
        problem, ask = result.problem, result.next
        if problem is None and ask is not None and ask.key() in seen:
            problem = f"malformed page from {source}: its next-page link repeats a page already read; paging stopped"
        if problem is not None:
            rows.append(broken_row(source, page, problem, fetched_at, secret))
            ask = None
        previous = page.text if result.items else None
    return rows


def broken_row(source: str, page: Page, problem: str, fetched_at: datetime, secret: str) -> dict[str, Any]:
    """The one row standing for a page that could not be (fully) read."""
    row = news_row(source, fetched_at=fetched_at, payload=redact_text(page.text, [secret]), problem=problem)
    return _scrubbed(row, secret)


def _scrubbed(row: dict[str, Any], secret: str) -> dict[str, Any]:
    # A vendor should never quote our key, but if one echoes it (problems quote vendor text), it is not stored.
    for column in ("payload", "problem"):
        if secret and row[column] and secret in row[column]:
            row[column] = redact_text(row[column], [secret])
    return row


def in_window(rows: list[dict[str, Any]], window: Window) -> pl.DataFrame:
    """Rows as a raw batch, cut to items published in the window; undated rows stay for the quarantine."""
    frame = raw_news(rows)
    kept = pl.col("published_at").is_between(window.start, window.end, closed="left") | pl.col("published_at").is_null()
    return frame.filter(kept)


# -- request bounds --------------------------------------------------------------------------


def whole_seconds(window: Window) -> tuple[datetime, datetime]:
    """The window widened to whole seconds, for vendors whose bounds have no fractions."""
    start = window.start.replace(microsecond=0)
    end = window.end if window.end.microsecond == 0 else window.end.replace(microsecond=0) + ONE_SECOND
    return start, end


def covering_dates(window: Window) -> tuple[date, date]:
    """The window's UTC dates and a spare day on each side, for vendors whose dates name no zone;
    the exact window is then cut client-side."""
    last = window.end - timedelta(microseconds=1)
    return window.start.date() - ONE_DAY, last.date() + ONE_DAY


def stamp(value: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS` in UTC."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


# -- item fields -----------------------------------------------------------------------------


def iso_instant(value: Any, label: str) -> tuple[datetime | None, str | None]:
    """An ISO 8601 stamp with a zone (`Z` or an offset) as aware UTC, or why there is none."""
    if not isinstance(value, str) or not value:
        return None, f"{label} is missing or not text: {value!r}"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None, f"{label} is not an ISO 8601 time: {value!r}"
    return _aware(parsed, value, label)


def rfc2822_instant(value: Any, label: str) -> tuple[datetime | None, str | None]:
    """An RFC 2822 stamp (`Wed, 17 May 2023 14:20:15 -0400`) as aware UTC, or why there is none."""
    if not isinstance(value, str) or not value:
        return None, f"{label} is missing or not text: {value!r}"
    try:
        parsed = parsedate_to_datetime(value)
    except (ValueError, TypeError):
        return None, f"{label} is not an RFC 2822 time: {value!r}"
    # parsedate_to_datetime leaves "-0000" (zone unknown, per RFC 2822) naive.
    return _aware(parsed, value, label)


def _aware(parsed: datetime, value: str, label: str) -> tuple[datetime | None, str | None]:
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return None, f"{label} has no time zone: {value!r}"
    return parsed.astimezone(UTC), None


class Fields:
    """Reads one vendor item's fields, collecting what could not be read."""

    def __init__(self, item: dict[str, Any]) -> None:
        self.item = item
        self.problems: list[str] = []

    def text(self, key: str) -> str | None:
        """A text field; absent or null is fine, anything else is a problem."""
        value = self.item.get(key)
        if value is None or isinstance(value, str):
            return value
        self.problems.append(f"{key} is not text: {_short(value)}")
        return None

    def ident(self, key: str) -> str | int | None:
        value = self.item.get(key)
        if value is None or (isinstance(value, (str, int)) and not isinstance(value, bool)):
            return value
        self.problems.append(f"{key} is not an id: {_short(value)}")
        return None

    def instant(self, key: str, parse: Callable[[Any, str], tuple[datetime | None, str | None]]) -> datetime | None:
        when, problem = parse(self.item.get(key), key)
        if problem is not None:
            self.problems.append(problem)
        return when

    def names(self, key: str, field: str | None = None) -> list[str] | None:
        """A list of strings, or of objects whose `field` is a string; absent is an empty list."""
        value = self.item.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problems.append(f"{key} is not a list: {_short(value)}")
            return None
        out: list[str] = []
        for entry in value:
            name = entry.get(field) if field is not None and isinstance(entry, dict) else entry
            if not isinstance(name, str):
                what = f"{key} entry" if field is None else f"{key} entry's {field}"
                self.problems.append(f"{what} is not text: {_short(entry)}")
                return None
            out.append(name)
        return out

    def tickers(self, key: str, field: str | None = None) -> list[str] | None:
        """Vendor ticker tags, upper-case."""
        names = self.names(key, field)
        return None if names is None else [n.upper() for n in names]

    def problem(self) -> str | None:
        return "; ".join(self.problems) or None


def joined(names: Iterable[str] | None) -> str | None:
    """Channels, tags or topics as one category text; none at all is null."""
    names = [n for n in (names or []) if n]
    return ", ".join(names) or None


def not_an_object(source: str, item: Any, fetched_at: datetime) -> dict[str, Any]:
    return news_row(source, fetched_at=fetched_at, payload=item, problem=f"{source} item is not a JSON object")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."

