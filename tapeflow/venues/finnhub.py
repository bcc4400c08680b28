"""Finnhub stock candles as raw bar batches, over the shared `VendorHttp` policy.

Wire format: `GET /stock/candle?symbol=&resolution=1|D&from=<unix s>&to=<unix s>` (both
inclusive), the key in the header `X-Finnhub-Token` (Finnhub also takes `token=` in the query;
the header keeps it out of URLs). The answer is parallel arrays `{"c":[..],"h":[..],"l":[..],
"o":[..],"s":"ok","t":[unix s, bar start],"v":[..]}`, or `{"s":"no_data"}` for an empty range
(not an error). Arrays of unequal length make the page malformed.

No paging: the window is requested in consecutive chunks, at most 30 days for minute bars and
365 days for daily bars, so no single answer grows past what Finnhub serves at once.

Assumptions, stated because Finnhub's documentation does not settle them:
- Adjustment: daily candles are split-adjusted, intraday candles are not: "split" for D,
  "raw" for 1.
- Day bar dates: `t` has been seen as midnight New York (the documented example), 09:30 New York
  (finnhubio/Finnhub-API#151) and midnight UTC. The session date is taken as the UTC calendar
  date of `t`: it is the New York date for the first two and the right date for the third
  (where the New York date would be the day before). The bar then spans its regular session
  (`daily_bounds`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

from tapeflow.calendar.exchange import ny_day
from tapeflow.config import Settings
from tapeflow.model import Adjustment, Timeframe
from tapeflow.redact import redact_url
from tapeflow.sources.base import Window, empty_raw_bars
from tapeflow.sources.http import HttpPolicy, Page, VendorHttp, require_key
from tapeflow.sources.rows import (
    DAY,
    EPOCH,
    broken_row,
    empty_row,
    epoch_start,
    json_float,
    raw_frame,
)

NAME = "finnhub"
KEY_SETTING = "TAPEFLOW_FINNHUB_API_KEY"
PATH = "stock/candle"
RESOLUTIONS = {Timeframe.MINUTE: "1", Timeframe.DAY: "D"}
ADJUSTMENTS = {Timeframe.MINUTE: Adjustment.RAW, Timeframe.DAY: Adjustment.SPLIT}
CHUNKS = {Timeframe.MINUTE: timedelta(days=30), Timeframe.DAY: timedelta(days=365)}
ARRAYS = ("c", "h", "l", "o", "t", "v")
ONE_MINUTE = timedelta(minutes=1)
ONE_DAY = timedelta(days=1)


class FinnhubSource:
    """MarketData from Finnhub's candle endpoint, one symbol and one chunk at a time."""

    name = NAME

    def __init__(
        self, settings: Settings, *, policy: HttpPolicy | None = None, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        key = require_key(settings.finnhub_api_key, vendor=NAME, setting=KEY_SETTING)
        self._http = VendorHttp(
            NAME,
            settings.finnhub_url,
            key_setting=KEY_SETTING,
            headers={"X-Finnhub-Token": key},
            secrets=[key],
            policy=policy or HttpPolicy.from_settings(settings),
            sleep=sleep,
        )

    def __repr__(self) -> str:
        return f"FinnhubSource({redact_url(self._http.base_url)!r})"

    def close(self) -> None:
        self._http.close()

    def bars(self, symbols: Sequence[str] | None, timeframe: Timeframe, window: Window) -> pl.DataFrame:
        """Every candle Finnhub sends for `symbols`, kept when its start lies in `window`."""
        if symbols is None:
            raise ValueError(f"{NAME} needs explicit symbols")
        timeframe = Timeframe(timeframe)
        frames = [
            raw_frame(self._candles(symbol, timeframe, start, end), timeframe)
            for symbol in symbols
            for start, end in _chunks(timeframe, window)
        ]
        if not frames:
            return empty_raw_bars()
        # Rows the adapter could not date stay in, so that they reach the quarantine.
        in_window = pl.col("ts").is_between(window.start, window.end, closed="left") | pl.col("ts").is_null()
        return pl.concat(frames).filter(in_window)

    def _candles(self, symbol: str, timeframe: Timeframe, start: int, end: int) -> list[dict[str, Any]]:
        """One request for [start, end) in unix seconds, as row dicts."""
        # Finnhub's `to` is inclusive: end - 1 keeps consecutive chunks from overlapping.
        params = {"symbol": symbol, "resolution": RESOLUTIONS[timeframe], "from": start, "to": end - 1}
        return _page(self._http.get(PATH, params), symbol, timeframe)


def _seconds(instant: datetime, up: bool = False) -> int:
    """Unix seconds of `instant`, rounded down (or up)."""
    exact = (instant - EPOCH) / timedelta(seconds=1)
    return math.ceil(exact) if up else math.floor(exact)


def _span(timeframe: Timeframe, window: Window) -> tuple[int, int]:
    """The unix-second range [start, end) to ask for so that every bar of `window` is in it."""
    if timeframe is Timeframe.MINUTE:
        return _seconds(window.start), _seconds(window.end, up=True)
    # Day bars are stamped anywhere from 00:00 UTC to the open of their date: ask for whole
    # UTC days of every New York date the window touches, then filter on the session open.
    first, last = ny_day(window.start), ny_day(window.end - timedelta(microseconds=1))
    return _seconds(_utc_midnight(first)), _seconds(_utc_midnight(last + ONE_DAY))


def _utc_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _chunks(timeframe: Timeframe, window: Window) -> Iterator[tuple[int, int]]:
    """Consecutive [start, end) unix-second ranges covering the window, each at most one chunk."""
    start, end = _span(timeframe, window)
    step = int(CHUNKS[timeframe].total_seconds())
    for lo in range(start, end, step):
        yield lo, min(lo + step, end)


def _page(page: Page, symbol: str, timeframe: Timeframe) -> list[dict[str, Any]]:
    """Candle rows from one answer; a malformed answer becomes one row saying why."""
    if page.problem is not None:
        return [broken_row(NAME, symbol, timeframe, page.text, page.problem)]
    data = page.data
    problem = _shape_problem(data)
    if problem is not None:
        return [broken_row(NAME, symbol, timeframe, page.text, f"malformed candles from {NAME}: {problem}")]
    if data["s"] == "no_data":
        return []
    return [_candle(data, i, symbol, timeframe) for i in range(len(data["t"]))]


def _shape_problem(data: Any) -> str | None:
    """Why `data` is not a candle answer, or None when it is one."""
    if not isinstance(data, dict):
        return f"expected a JSON object, got {type(data).__name__}"
    status = data.get("s")
    if status == "no_data":
        return None
    if status != "ok":
        said = data.get("error")
        return f"status s={status!r}" + (f" ({said})" if said else "")
    missing = [name for name in ARRAYS if not isinstance(data.get(name), list)]
    if missing:
        return f"arrays missing or not lists: {', '.join(missing)}"
    lengths = {name: len(data[name]) for name in ARRAYS}
    if len(set(lengths.values())) > 1:
        return "arrays of unequal length (" + ", ".join(f"{k}={n}" for k, n in lengths.items()) + ")"
    return None


def _candle(data: dict[str, Any], i: int, symbol: str, timeframe: Timeframe) -> dict[str, Any]:
    """Candle number `i` of the parallel arrays as a raw row; unparseable fields are null."""
    vendor = {name: data[name][i] for name in ARRAYS}
    start, problem = _start(vendor["t"])
    row = empty_row(NAME, symbol, timeframe)
    row.update(
        open=json_float(vendor["o"]),
        high=json_float(vendor["h"]),
        low=json_float(vendor["l"]),
        close=json_float(vendor["c"]),
        volume=json_float(vendor["v"]),
        adjustment=ADJUSTMENTS[timeframe].value,
        payload=json.dumps({**vendor, "symbol": symbol, "resolution": RESOLUTIONS[timeframe]}, sort_keys=True),
        problem=problem,
    )
    if start is not None and timeframe is Timeframe.DAY:
        row[DAY] = start.date()  # the UTC date: see the module docstring
    elif start is not None:
        row.update(ts=start, end_ts=start + ONE_MINUTE)
    return row


def _start(value: Any) -> tuple[datetime | None, str | None]:
    return epoch_start(value, timedelta(seconds=1), "t (bar start, unix seconds)")
