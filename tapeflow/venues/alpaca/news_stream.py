"""Alpaca's real-time news websocket through alpaca-py's `NewsDataStream` (the real SDK).

Wire format (alpaca-py asks for msgpack with `Content-Type: application/msgpack` and every
frame, both ways, is msgpack; each server frame is a list of messages):

    S: [{"T": "success", "msg": "connected"}]
    C: {"action": "auth", "key": K, "secret": S}
    S: [{"T": "success", "msg": "authenticated"}]     or [{"T": "error", "code": 402, "msg": "auth failed"}]
    C: {"action": "subscribe", "news": ["AAPL", "TSLA"]}          ("*": all news)
    S: [{"T": "subscription", "news": ["AAPL", "TSLA"]}]
    S: [{"T": "n", "id": 24918784, "headline", "summary", "author", "created_at", "updated_at",
         "url", "content", "symbols": ["CRSR"], "source": "benzinga"}, ...]

`created_at` / `updated_at` are msgpack timestamps (alpaca-py calls `.to_datetime()` on them);
RFC-3339 text, as in Alpaca's JSON protocol, is read as well. Other errors: 406 connection
limit exceeded (one connection per key), 409 insufficient subscription, 405 symbol limit
exceeded. An article the vendor edits comes again with its id and a later `updated_at`.

alpaca-py runs the socket, authenticates, subscribes and reconnects with backoff. tapeflow
adds: raw messages, each news message handed over whole as one row (alpaca-py's own routing
calls a handler once per subscribed symbol an item names, and drops items that name none); a
check of every frame, so one that is not a msgpack list of objects becomes a problem row
instead of an error inside alpaca-py's loop; credentials refused -> VendorAuthError naming the
settings (alpaca-py would retry them forever); a bound on failed connections in a row; and a
stop from the caller's thread at once (alpaca-py's `stop` is noticed only within 5 s).
Batches are handed to the caller's `on_batch` in the caller's thread, so it may log and write.
"""

from __future__ import annotations

import base64
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgpack
import polars as pl
from alpaca.data.live.news import NewsDataStream

from tapeflow.config import Settings
from tapeflow.news.frames import news_row, raw_news
from tapeflow.redact import redact_text, redact_url
from tapeflow.sources.http import VendorAuthError, VendorError, require_key
from tapeflow.venues.alpaca.bars import KEY_SETTING, PAGE_TEXT_LIMIT, SECRET_SETTING
from tapeflow.venues.alpaca.news import CREDENTIALS, SOURCE, item_row, plain
from tapeflow.venues.alpaca.websocket import PromptStop, guard_stream_logs, websocket_params

log = logging.getLogger(__name__)

# websockets logs every frame at DEBUG, the authentication frame with the keys included: the
# connection logs to a logger of its own that never passes DEBUG on.
_WS_LOG = logging.getLogger(f"{__name__}.websocket")
_WS_LOG.setLevel(logging.INFO)

# What alpaca-py's auth step raises (the server's `msg`, or its own words) when the keys or
# the plan are refused; anything else there (406 connection limit, 404 auth timeout) is a
# failed connection attempt, worth another try.
REFUSALS = ("auth failed", "not authenticated", "failed to authenticate", "insufficient subscription")
EMPTY_FRAME = msgpack.packb([])
TICK_S = 0.05  # how often the caller's thread looks at the clock, the stop event and the stream


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class StreamReport:
    """How a bounded run went: rows handed over, in how many batches, and why it ended."""

    rows: int
    batches: int
    connections: int
    subscribed: tuple[str, ...]
    stopped_by: str  # "time" | "stop event"


class AlpacaNewsStream:
    """Alpaca's news websocket for a bounded time, as raw news batches (see `run`)."""

    name = SOURCE

    def __init__(
        self,
        settings: Settings,
        *,
        now: Callable[[], datetime] = _utc_now,
        flush_s: float = 2.0,
        max_batch: int = 200,
        connect_attempts: int = 5,
        backoff_s: float = 1.0,
    ) -> None:
        self._key = require_key(settings.alpaca_api_key, vendor=SOURCE, setting=KEY_SETTING)
        self._secret = require_key(settings.alpaca_secret_key, vendor=SOURCE, setting=SECRET_SETTING)
        guard_stream_logs(self._key, self._secret)
        if connect_attempts < 1 or max_batch < 1:
            raise ValueError("connect_attempts and max_batch must be at least 1")
        self.url = settings.alpaca_news_stream_url
        self._now = now
        self.flush_s, self.max_batch = flush_s, max_batch
        self.connect_attempts, self.backoff_s = connect_attempts, backoff_s

    def __repr__(self) -> str:
        return f"AlpacaNewsStream(url={redact_url(self.url)!r})"

    def run(
        self,
        symbols: Sequence[str] | None,
        on_batch: Callable[[pl.DataFrame], None],
        *,
        seconds: float,
        stop: threading.Event | None = None,
    ) -> StreamReport:
        """Listen for news about `symbols` (None: all) for `seconds` or until `stop` is set,
        handing raw batches (RAW_NEWS_SCHEMA, fetched_at = receipt) to `on_batch` every
        `flush_s` or `max_batch` rows. Refused credentials raise VendorAuthError; too many
        failed connections in a row, VendorError. Rows received before a failure are handed
        over first; an error from `on_batch` ends the stream and is raised as is."""
        if seconds <= 0:
            raise ValueError("seconds must be positive")
        wanted = list(dict.fromkeys(symbols)) if symbols is not None else ["*"]
        if not wanted:
            raise ValueError("no symbols to stream; pass None for all news")
        inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        stream = _NewsStream(
            self._key, self._secret, self.url, deliver=inbox.put, now=self._now,
            scrub=lambda text: redact_text(text, [self._key, self._secret]),
            connect_attempts=self.connect_attempts, backoff_s=self.backoff_s,
        )
        stream.subscribe_news(stream.on_news, *wanted)
        thread = threading.Thread(target=stream.run, name="alpaca-news-stream", daemon=True)
        batches = _Batches(on_batch, self.max_batch)
        deadline = time.monotonic() + seconds
        thread.start()
        try:
            stopped_by = self._listen(stream, thread, inbox, batches, deadline, stop)
        finally:
            stream.halt()
            thread.join(5.0)
        batches.take(_drain(inbox))
        batches.flush()
        return StreamReport(batches.rows, batches.count, stream.connections, stream.subscribed, stopped_by)

    def _listen(
        self,
        stream: _NewsStream,
        thread: threading.Thread,
        inbox: queue.Queue[dict[str, Any]],
        batches: _Batches,
        deadline: float,
        stop: threading.Event | None,
    ) -> str:
        """Hand batches over until the bound, the stop event or a failure."""
        while True:
            left = deadline - time.monotonic()
            if stream.failure is not None or not thread.is_alive():
                batches.take(_drain(inbox))
                batches.flush()
                raise stream.failure or VendorError(f"{SOURCE} news stream ended by itself", vendor=SOURCE)
            if left <= 0:
                return "time"
            if stop is not None and stop.is_set():
                return "stop event"
            try:
                batches.take([inbox.get(timeout=min(TICK_S, left))])
            except queue.Empty:
                pass
            batches.take(_drain(inbox, self.max_batch))
            batches.flush(full_only=batches.age() < self.flush_s)


class _Batches:
    """Rows waiting for `on_batch`, and what was handed over."""

    def __init__(self, on_batch: Callable[[pl.DataFrame], None], size: int) -> None:
        self._on_batch, self._size = on_batch, size
        self.pending: list[dict[str, Any]] = []
        self.rows = self.count = 0
        self._since = time.monotonic()

    def take(self, rows: list[dict[str, Any]]) -> None:
        if rows and not self.pending:
            self._since = time.monotonic()
        self.pending += rows

    def age(self) -> float:
        return time.monotonic() - self._since

    def flush(self, *, full_only: bool = False) -> None:
        """Hand pending rows over in batches of at most `size` (with `full_only`, only full ones)."""
        while len(self.pending) >= (self._size if full_only else 1):
            rows = self.pending[: self._size]
            self._on_batch(raw_news(rows))  # rows leave `pending` only once handed over
            self.pending = self.pending[self._size :]
            self.rows += len(rows)
            self.count += 1
        if not self.pending:
            self._since = time.monotonic()


def _drain(inbox: queue.Queue[dict[str, Any]], limit: int | None = None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while limit is None or len(rows) < limit:
        try:
            rows.append(inbox.get_nowait())
        except queue.Empty:
            break
    return rows


class _NewsStream(PromptStop, NewsDataStream):
    """NewsDataStream with raw rows, checked frames, refusals that end it, and `halt`."""

    def __init__(
        self,
        key: str,
        secret: str,
        url: str,
        *,
        deliver: Callable[[dict[str, Any]], None],
        now: Callable[[], datetime],
        scrub: Callable[[str], str],
        connect_attempts: int,
        backoff_s: float,
    ) -> None:
        super().__init__(key, secret, raw_data=True, websocket_params=websocket_params(_WS_LOG), url_override=url)
        self._reconnect_min_backoff = backoff_s
        self._deliver, self._clock, self._scrub = deliver, now, scrub
        self._attempts, self._failed_in_a_row = connect_attempts, 0
        self.connections = 0
        self.subscribed: tuple[str, ...] = ()
        self.failure: VendorError | None = None

    # -- connection ----------------------------------------------------------------------

    async def _start_ws(self) -> None:
        try:
            await self._connect()
            await self._auth()
        except ValueError as exc:
            reason = self._scrub(str(exc))
            if reason in REFUSALS:
                self._fail(VendorAuthError(
                    f"{SOURCE} news stream refused the credentials ({reason}): check {CREDENTIALS}", vendor=SOURCE
                ))
            else:
                self._attempt_failed(reason)
            raise
        except Exception as exc:
            self._attempt_failed(self._scrub(f"{type(exc).__name__}: {exc}"))
            raise
        self._failed_in_a_row = 0
        self.connections += 1
        self._ws = _CheckedSocket(self._ws, self._unreadable)
        log.info("%s news stream connected to %s", SOURCE, redact_url(self._endpoint))

    def _attempt_failed(self, reason: str) -> None:
        self._failed_in_a_row += 1
        if self._failed_in_a_row >= self._attempts:
            self._fail(VendorError(
                f"{SOURCE} news stream: no connection after {self._failed_in_a_row} attempts in a row ({reason[:300]})",
                vendor=SOURCE,
            ))

    def _fail(self, error: VendorError) -> None:
        """Remember why, and have alpaca-py's loop end instead of reconnecting."""
        if self.failure is None:
            self.failure = error
        self._should_run = False
        if self._stop_stream_event is not None:
            self._stop_stream_event.set()

    # -- messages ------------------------------------------------------------------------

    async def _dispatch(self, msg: dict) -> None:
        kind = msg.get("T")
        if kind == "n":
            await self.on_news(msg)
            return
        if kind == "subscription":
            news = msg.get("news")
            self.subscribed = tuple(s for s in news if isinstance(s, str)) if isinstance(news, list) else ()
        elif kind == "error":
            # After subscribing, an error (symbol limit, invalid action) means news will not come.
            self._fail(VendorError(
                self._scrub(f"{SOURCE} news stream error {msg.get('code')}: {msg.get('msg')}"), vendor=SOURCE
            ))
        await super()._dispatch(msg)

    async def on_news(self, msg: dict) -> None:
        self._deliver(item_row(msg, self._clock(), self._scrub))

    def _unreadable(self, frame: str | bytes, problem: str) -> None:
        self._deliver(news_row(
            SOURCE, fetched_at=self._clock(), payload=self._scrub(_frame_text(frame)[:PAGE_TEXT_LIMIT]),
            problem=self._scrub(f"unreadable frame from the {SOURCE} news stream: {problem}"),
        ))


class _CheckedSocket:
    """The connection as alpaca-py sees it, except that a frame alpaca-py could not handle
    (not a msgpack list of objects with a text "T") is reported and replaced by an empty list."""

    def __init__(self, ws: Any, report: Callable[[str | bytes, str], None]) -> None:
        self._ws, self._report = ws, report

    async def recv(self) -> str | bytes:
        frame = await self._ws.recv()
        problem = _frame_problem(frame)
        if problem is None:
            return frame
        self._report(frame, problem)
        return EMPTY_FRAME

    async def send(self, message: Any) -> None:
        await self._ws.send(message)

    async def close(self, *args: Any, **kwargs: Any) -> None:
        await self._ws.close(*args, **kwargs)


def _frame_problem(frame: str | bytes) -> str | None:
    if isinstance(frame, str):
        return "a text frame, not msgpack"
    try:
        messages = msgpack.unpackb(frame)
    except Exception as exc:
        detail = str(exc)[:200]
        return f"not msgpack ({type(exc).__name__}{': ' + detail if detail else ''})"
    if not isinstance(messages, list) or not all(isinstance(m, dict) and isinstance(m.get("T"), str) for m in messages):
        return 'not a list of messages with a text "T"'
    return None


def _frame_text(frame: str | bytes) -> str:
    """A frame as text for the quarantine: decoded msgpack as JSON where possible."""
    if isinstance(frame, str):
        return frame
    try:
        return json.dumps(plain(msgpack.unpackb(frame)), sort_keys=True, default=str)
    except Exception:
        return "base64:" + base64.b64encode(frame).decode()


__all__ = ["AlpacaNewsStream", "StreamReport"]
