"""Alpaca market data through alpaca-py's `StockHistoricalDataClient` (the real SDK).

The SDK builds the requests, sends the keys, follows `next_page_token` and runs its own retry
loop. tapeflow adds, through the client's documented request hook `_one_request`: a timeout on
every request (alpaca-py sets none), the shared `HttpPolicy` waits between the SDK's retries
(Retry-After, else X-RateLimit-Reset, else backoff with jitter), timeouts and connection
failures retried like 429/5xx (all as for news, in `tapeflow.venues.alpaca.http`), and a
check of every page before the SDK merges it.

The client runs with `raw_data=True`, so it hands back Alpaca's own bar objects
({"t","o","h","l","c","v","n","vw"} per symbol); each becomes one raw row whose payload is
that object with "S" (Alpaca's symbol field name) added.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
from alpaca.common.exceptions import APIError
from alpaca.data.enums import Adjustment as AlpacaAdjustment
from alpaca.data.enums import DataFeed
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest, StockLatestBarRequest
from alpaca.data.timeframe import TimeFrame
from pydantic import SecretStr

from tapeflow.calendar.exchange import NEW_YORK, ExchangeCalendar, get_calendar, ny_day_bounds
from tapeflow.config import Settings
from tapeflow.model import Adjustment, Timeframe
from tapeflow.redact import redact_url
from tapeflow.schemas import BAR_SCHEMA
from tapeflow.sources.base import Window, daily_bounds, empty_raw_bars
from tapeflow.sources.base import latest_bars as latest_completed_bars
from tapeflow.sources.http import HttpPolicy, VendorAuthError, VendorError
from tapeflow.venues.alpaca.http import HttpPolicyMixin, MalformedPage, vendor_error

SOURCE = "alpaca"
KEY_SETTING = "TAPEFLOW_ALPACA_API_KEY"
SECRET_SETTING = "TAPEFLOW_ALPACA_SECRET_KEY"
FEED_SETTING = "TAPEFLOW_ALPACA_FEED"
CREDENTIALS = f"{KEY_SETTING} and {SECRET_SETTING}"
PAGE_TEXT_LIMIT = 20_000

FEEDS = {"sip": DataFeed.SIP, "iex": DataFeed.IEX}
TIMEFRAMES = {Timeframe.MINUTE: TimeFrame.Minute, Timeframe.DAY: TimeFrame.Day}
# Dividend-only adjusted prices have no tapeflow flag: "unknown" would let them sit next to
# raw or split prices unnoticed, so that adjustment is refused instead of mislabelled.
ADJUSTMENTS = {
    AlpacaAdjustment.RAW: Adjustment.RAW,
    AlpacaAdjustment.SPLIT: Adjustment.SPLIT,
    AlpacaAdjustment.ALL: Adjustment.ALL,
}
RAW_SCHEMA = {**BAR_SCHEMA, "payload": pl.String(), "problem": pl.String()}
VALUE_COLUMNS = ("open", "high", "low", "close", "volume", "vwap", "trade_count")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _present(secret: SecretStr | None) -> bool:
    return secret is not None and bool(secret.get_secret_value())


class _DataClient(HttpPolicyMixin, StockHistoricalDataClient):
    """alpaca-py's data client with tapeflow's HTTP policy and a check of every page."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.pages: list[dict[str, Any]] = []  # pages taken since the caller last cleared it

    def _take_page(self, path: str, data: Any) -> Any:
        self._check_page(path, data)
        self.pages.append(data)
        return data

    def _check_page(self, path: str, data: Any) -> None:
        """Only the structure the SDK and the adapter rely on gets through."""
        item = dict if path.endswith("/latest") else list
        problem = None
        if not isinstance(data, dict):
            problem = f"the page is {type(data).__name__}, not an object"
        elif not isinstance(data.get("bars"), dict):
            problem = 'the page has no "bars" object'
        elif not all(isinstance(v, item) for v in data["bars"].values()):
            problem = f'"bars" holds something other than {"objects" if item is dict else "lists"} per symbol'
        elif not isinstance(data.get("next_page_token"), str | None):
            problem = '"next_page_token" is neither text nor null'
        if problem:
            raise MalformedPage(path, self.text(), f"unexpected response from {SOURCE}: {problem}")


@dataclass(frozen=True)
class _Bar:
    """One vendor bar, parsed as far as it goes."""

    symbol: str
    start: datetime | None
    values: dict[str, float | int | None]
    payload: str
    problem: str | None


class AlpacaSource:
    """MarketData from Alpaca's historical stock bars (feed from TAPEFLOW_ALPACA_FEED)."""

    name = SOURCE

    def __init__(
        self,
        settings: Settings,
        *,
        policy: HttpPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = _utc_now,
        adjustment: AlpacaAdjustment = AlpacaAdjustment.RAW,
        symbols_per_request: int = 100,
        calendar: ExchangeCalendar | None = None,
    ) -> None:
        key, secret = settings.alpaca_api_key, settings.alpaca_secret_key
        missing = [name for name, value in ((KEY_SETTING, key), (SECRET_SETTING, secret)) if not _present(value)]
        if missing or key is None or secret is None:
            raise VendorAuthError(f"{SOURCE} needs {' and '.join(missing)} to be set", vendor=SOURCE)
        feed = FEEDS.get(settings.alpaca_feed.lower())
        if feed is None:
            raise ValueError(f"{FEED_SETTING} must be one of {', '.join(FEEDS)}, not {settings.alpaca_feed!r}")
        adjustment = AlpacaAdjustment(adjustment)
        if adjustment not in ADJUSTMENTS:
            raise ValueError(f"{SOURCE} adjustment {adjustment.value!r} has no tapeflow flag; use raw, split or all")
        if symbols_per_request < 1:
            raise ValueError("symbols_per_request must be at least 1")
        self.feed, self.adjustment, self.flag = feed, adjustment, ADJUSTMENTS[adjustment]
        self.url = settings.alpaca_data_url
        self.policy = policy or HttpPolicy.from_settings(settings)
        self.symbols_per_request = symbols_per_request
        self.calendar = calendar or get_calendar()
        self._clock = clock
        self._secrets = (key, secret)  # SecretStr: masked in any repr of this object
        self._client = _DataClient(key.get_secret_value(), secret.get_secret_value(), self.url, self.policy, sleep, clock)

    def __repr__(self) -> str:
        return f"AlpacaSource(url={redact_url(self.url)!r}, feed={self.feed.value!r}, adjustment={self.flag.value!r})"

    def close(self) -> None:
        self._client._session.close()

    # -- MarketData ----------------------------------------------------------------------

    def bars(self, symbols: Sequence[str] | None, timeframe: Timeframe, window: Window) -> pl.DataFrame:
        """Bars whose start lies in `window`, one multi-symbol request (all pages) per batch."""
        if symbols is None:
            raise ValueError(f"{SOURCE} needs explicit symbols")
        timeframe = Timeframe(timeframe)
        wanted = list(dict.fromkeys(symbols))
        size = self.symbols_per_request
        frames = [self._batch(wanted[i : i + size], timeframe, window) for i in range(0, len(wanted), size)]
        raw = pl.concat(frames) if frames else empty_raw_bars()
        # Rows the vendor could not date stay in: they must reach the quarantine.
        return raw.filter(pl.col("ts").is_between(window.start, window.end, closed="left") | pl.col("ts").is_null())

    def latest_bars(self, symbols: Sequence[str], *, lookback: timedelta = timedelta(minutes=30)) -> pl.DataFrame:
        """Each symbol's latest completed minute bar, as a raw batch.

        Alpaca's latest bar can be the minute still forming (its values will still change);
        such a bar is not returned: the symbol's last bar that had ended by now is fetched
        from the historical bars instead (searched back `lookback`)."""
        wanted = list(dict.fromkeys(symbols))
        if not wanted:
            return empty_raw_bars()
        now = self._clock()
        request = StockLatestBarRequest(symbol_or_symbols=wanted, feed=self.feed)
        self._client.pages.clear()
        try:
            latest = self._call(lambda: self._client.get_stock_latest_bar(request))
        except MalformedPage as page:
            return self._malformed(wanted, Timeframe.MINUTE, page)
        frame = self._frame(latest.items(), Timeframe.MINUTE)
        forming = (pl.col("end_ts") > now).fill_null(False)
        still_forming = frame.filter(forming)["symbol"].to_list()
        done = frame.filter(~forming)
        if not still_forming:
            return done
        return pl.concat([done, latest_completed_bars(self, still_forming, Timeframe.MINUTE, now, lookback)])

    # -- requests ------------------------------------------------------------------------

    def _batch(self, symbols: list[str], timeframe: Timeframe, window: Window) -> pl.DataFrame:
        request = StockBarsRequest(
            symbol_or_symbols=symbols,
            timeframe=TIMEFRAMES[timeframe],
            start=self._request_start(timeframe, window),
            end=window.end,
            feed=self.feed,
            adjustment=self.adjustment,
        )
        self._client.pages.clear()
        try:
            by_symbol = self._call(lambda: self._client.get_stock_bars(request))
        except MalformedPage as page:
            # The SDK drops the pages it had merged; the client kept them, so nothing is lost.
            taken = [(s, bar) for data in self._client.pages for s, bars in data["bars"].items() for bar in bars]
            return pl.concat([self._frame(taken, timeframe), self._malformed(symbols, timeframe, page)])
        return self._frame(((s, bar) for s, bars in by_symbol.items() for bar in bars), timeframe)

    def _request_start(self, timeframe: Timeframe, window: Window) -> datetime:
        """Alpaca stamps a daily bar at midnight New York, before the session it covers."""
        if timeframe is Timeframe.MINUTE:
            return window.start
        return ny_day_bounds(window.start)[0]

    def _call(self, fetch: Callable[[], Any]) -> Any:
        """Run an SDK call; its APIError becomes VendorError / VendorAuthError, keys never shown."""
        try:
            return fetch()
        except APIError as exc:
            raise self._vendor_error(exc) from None

    def _vendor_error(self, exc: APIError) -> VendorError:
        check = CREDENTIALS
        if exc.status_code == 403:
            check += f" (a 403 can also mean the plan lacks the {self.feed.value} feed: {FEED_SETTING})"
        return vendor_error(exc, attempts=self.policy.attempts, check=check, scrub=self._scrub)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret.get_secret_value(), "**********")
        return text

    # -- rows ----------------------------------------------------------------------------

    def _frame(self, items: Iterable[tuple[str, Any]], timeframe: Timeframe) -> pl.DataFrame:
        bars = [_parse(symbol, bar, self._scrub) for symbol, bar in items]
        if not bars:
            return empty_raw_bars()
        starts = pl.Series("ts", [b.start for b in bars], dtype=pl.Datetime("us", "UTC"))
        problems = pl.Series("problem", [b.problem for b in bars], dtype=pl.String)
        if timeframe is Timeframe.MINUTE:
            ts, end_ts = starts, starts + timedelta(minutes=1)
        else:
            # The bar's New York date names its session; the stamp's time of day does not matter.
            days = starts.dt.convert_time_zone(NEW_YORK.key).dt.date()
            bounds = daily_bounds(days, self.calendar)
            ts, end_ts = bounds["ts"], bounds["end_ts"]
            problems = pl.Series("problem", [p or q for p, q in zip(problems, bounds["problem"])], dtype=pl.String)
        columns = {
            "symbol": [b.symbol for b in bars],
            "timeframe": [timeframe.value] * len(bars),
            "ts": ts,
            "end_ts": end_ts,
            **{name: [b.values[name] for b in bars] for name in VALUE_COLUMNS},
            "adjustment": [self.flag.value] * len(bars),
            "source": [SOURCE] * len(bars),
            "payload": [b.payload for b in bars],
            "problem": problems,
        }
        return pl.DataFrame(columns, schema=RAW_SCHEMA)

    def _malformed(self, symbols: list[str], timeframe: Timeframe, page: MalformedPage) -> pl.DataFrame:
        """One row for a page nobody could read: its text, and why."""
        named = ",".join(symbols[:10]) + (f" and {len(symbols) - 10} more" if len(symbols) > 10 else "")
        row = {
            **dict.fromkeys(RAW_SCHEMA),
            "symbol": symbols[0] if len(symbols) == 1 else None,
            "timeframe": timeframe.value,
            "adjustment": self.flag.value,
            "source": SOURCE,
            "payload": self._scrub(page.text[:PAGE_TEXT_LIMIT]),
            "problem": self._scrub(
                f"{page.detail} ({page.path}, symbols {named}, after {len(self._client.pages)} good pages)"
            ),
        }
        return pl.DataFrame([row], schema=RAW_SCHEMA)


FIELDS = {"open": "o", "high": "h", "low": "l", "close": "c", "volume": "v", "vwap": "vw"}


def _parse(symbol: str, bar: Any, scrub: Callable[[str], str]) -> _Bar:
    """A vendor bar object as typed values; what does not parse is None (check_bars says why)."""
    if not isinstance(bar, dict):
        payload = json.dumps({"S": symbol, "bar": bar}, sort_keys=True)
        return _Bar(symbol, None, dict.fromkeys([*FIELDS, "trade_count"]), scrub(payload), "the bar is not a JSON object")
    start, problem = _start(bar.get("t"))
    values: dict[str, float | int | None] = {name: _number(bar.get(key)) for name, key in FIELDS.items()}
    count = bar.get("n")
    counted = isinstance(count, int) and not isinstance(count, bool) and abs(count) < 2**63
    values["trade_count"] = count if counted else None
    payload = json.dumps({"S": symbol, **bar}, sort_keys=True)
    return _Bar(symbol, start, values, scrub(payload), problem)


def _start(t: Any) -> tuple[datetime | None, str | None]:
    """Bar start from Alpaca's RFC-3339 `t`, in UTC."""
    if t is None:
        return None, "the bar has no t (start time)"
    try:
        value = datetime.fromisoformat(t) if isinstance(t, str) else None
    except ValueError:
        value = None
    if value is None:
        return None, f"t is not an RFC-3339 instant ({str(t)[:60]!r})"
    if value.tzinfo is None:
        return None, f"t has no time zone ({t[:60]!r})"
    return value.astimezone(UTC), None


def _number(value: Any) -> float | None:
    # JSON numbers only: a string or a bool here is a vendor fault for check_bars to name.
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


__all__ = ["AlpacaSource", "MalformedPage"]
