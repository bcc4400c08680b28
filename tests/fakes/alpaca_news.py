"""Fakes of Alpaca's news: the REST endpoint (for alpaca-py's `NewsClient`) and the real-time
news websocket (for alpaca-py's `NewsDataStream`), on 127.0.0.1.

REST, as Alpaca's historical news reference documents it and alpaca-py 0.44 sends it:

    GET /v1beta1/news?symbols=A,B&start=&end=&limit=1..50 (default 10)&sort=desc|asc
                     &include_content=&exclude_contentless=&page_token=
        -> {"news": [{"id": int, "headline", "author", "source", "summary", "content", "url",
                      "images": [...], "symbols": [...], "created_at", "updated_at"}],
            "next_page_token": "<base64 of 'updated_at ns|id' of the page's last item>" | null}

Items are sorted by `updated_at` (then id), descending unless sort=asc; `start`/`end` are
inclusive bounds on `created_at` (the documentation does not say which stamp they bound).
`content` is "" unless include_content=true (alpaca-py's News model requires the field).
A page continues strictly after its token's (updated_at, id), so two items with the same
pair on a page boundary would be skipped, as a real keyset cursor would. Credentials,
scripted errors and the rate-limit headers are `AlpacaDataFake`'s (the same data host).

Stream, as Alpaca's streaming documentation and alpaca-py's `DataStream` speak it: msgpack
frames when the client sends `Content-Type: application/msgpack` (alpaca-py always does),
JSON text frames otherwise; every server frame is a list of messages.

    S: [{"T":"success","msg":"connected"}]
    C: {"action":"auth","key","secret"}  -> [{"T":"success","msg":"authenticated"}]
                                           or [{"T":"error","code":402,"msg":"auth failed"}], then close
    C: {"action":"subscribe"|"unsubscribe","news":[...]} -> [{"T":"subscription","news":[...]}]
       (before auth: [{"T":"error","code":401,"msg":"not authenticated"}])
    S: [{"T":"n","id","headline","summary","author","created_at","updated_at","url","content",
         "symbols","source"}]     timestamps as msgpack timestamps (JSON: RFC-3339 text)

No auth within `auth_timeout_s` -> [{"T":"error","code":404,"msg":"auth timeout"}], then close.
The stream server stops on context exit and, failing that, after `max_lifetime` seconds.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgpack

from tests.fakes.alpaca_data import AlpacaDataFake, _bound, _instant, _Invalid
from tests.fakes.vendor_http import Request, echo_message

PATH = "/v1beta1/news"
MAX_LIMIT = 50
MALFORMED_NEWS_PAGE = '{"news": [{"id": 1, "headline": "Cut off'

# websockets logs frames at DEBUG, the client's auth frame included: kept quiet.
_SERVER_LOG = logging.getLogger("tests.fakes.alpaca_news.websocket")
_SERVER_LOG.setLevel(logging.WARNING)


def news_item(
    id: int,
    headline: str,
    created_at: datetime,
    *,
    symbols: list[str] | None = None,
    updated_at: datetime | None = None,
    summary: str = "",
    author: str = "Benzinga Newsdesk",
    source: str = "benzinga",
    url: str | None = None,
    content: str = "",
) -> dict[str, Any]:
    """An Alpaca news item with datetime stamps (each fake encodes them as its wire does)."""
    return {
        "id": id, "headline": headline, "author": author, "source": source, "summary": summary,
        "content": content, "url": url if url is not None else f"https://www.benzinga.com/news/{id}",
        "images": [], "symbols": symbols if symbols is not None else [],
        "created_at": created_at, "updated_at": updated_at or created_at,
    }


def _rfc3339(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def _as_json(item: Any) -> Any:
    return {k: _rfc3339(v) for k, v in item.items()} if isinstance(item, dict) else item


# -- REST ------------------------------------------------------------------------------------


class AlpacaNewsFake(AlpacaDataFake):
    """Alpaca's data host with the news endpoint; `page_cap` caps the page size."""

    def __init__(
        self, api_key: str = "test-key-id", secret_key: str = "test-secret-key", *,
        page_cap: int = MAX_LIMIT, max_lifetime: float = 600.0,
    ) -> None:
        super().__init__(api_key, secret_key, page_cap=page_cap, max_lifetime=max_lifetime)
        self._news: list[Any] = []
        self._repeat_tokens = 0
        self.route(PATH, self._get_news)

    def reset(self, *, page_cap: int | None = None, sip_allowed: bool = True) -> None:
        super().reset(page_cap=page_cap, sip_allowed=sip_allowed)
        with self._data_lock:
            self._news.clear()
        with self._lock:
            self._repeat_tokens = 0

    def add_news(self, *items: Any) -> None:
        """Store items (datetimes are served as RFC-3339 text; anything else as given)."""
        with self._data_lock:
            self._news.extend(_as_json(item) for item in items)

    def repeat_token_next(self, times: int = 1) -> None:
        """The next pages asked for with a token send that token back (a cursor that never moves)."""
        with self._lock:
            self._repeat_tokens += times

    def _get_news(self, request: Request) -> tuple[int, Any]:
        refused = self._authorize(request)
        if refused:
            return refused
        q = request.query
        try:
            symbols = {s for s in q.get("symbols", "").upper().split(",") if s}
            start, end = _bound(q, "start"), _bound(q, "end")
            limit = _news_limit(q)
            order = q.get("sort", "desc").lower()
            if order not in ("asc", "desc"):
                raise _Invalid(f"invalid sort: {q['sort']}")
            after = _cursor(q.get("page_token"))
        except _Invalid as exc:
            return 422, {"message": str(exc)}
        with_content = q.get("include_content", "false").lower() == "true"
        with self._data_lock:
            items = [
                item for item in self._news
                if (not symbols or symbols & set(_symbols_of(item))) and _created_within(item, start, end)
                and not (q.get("exclude_contentless", "false").lower() == "true" and not _field(item, "content"))
            ]
        items.sort(key=_order_key, reverse=order == "desc")
        if after is not None:
            items = [i for i in items if (_order_key(i) < after if order == "desc" else _order_key(i) > after)]
        chunk = items[: max(1, min(limit, self.page_cap))]
        more = len(items) > len(chunk)
        with self._lock:
            repeat = self._repeat_tokens > 0 and bool(q.get("page_token"))
            self._repeat_tokens -= repeat
        if repeat:
            token: str | None = q["page_token"]
        else:
            token = _token(_order_key(chunk[-1])) if more and chunk else None
        served = [item if with_content or not isinstance(item, dict) else {**item, "content": ""} for item in chunk]
        return 200, {"news": served, "next_page_token": token}


def _news_limit(q: dict[str, str]) -> int:
    try:
        limit = int(q.get("limit", "10"))
    except ValueError:
        raise _Invalid(f"invalid limit: {q['limit']}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise _Invalid(f"invalid limit: {limit}")
    return limit


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else None


def _symbols_of(item: Any) -> list[str]:
    symbols = _field(item, "symbols")
    return [s for s in symbols if isinstance(s, str)] if isinstance(symbols, list) else []


def _created_within(item: Any, start: datetime | None, end: datetime | None) -> bool:
    created = _instant(str(_field(item, "created_at")))
    if created is None:
        return True  # an item the test made undatable on purpose is always served
    return (start is None or start <= created) and (end is None or created <= end)


def _order_key(item: Any) -> tuple[int, int]:
    updated = _instant(str(_field(item, "updated_at")))
    ident = _field(item, "id")
    nanos = int(updated.timestamp()) * 1_000_000_000 + updated.microsecond * 1000 if updated else 0
    return nanos, ident if isinstance(ident, int) and not isinstance(ident, bool) else 0


def _token(key: tuple[int, int]) -> str:
    return base64.b64encode(f"{key[0]}|{key[1]}".encode()).decode()


def _cursor(token: str | None) -> tuple[int, int] | None:
    if not token:
        return None
    try:
        nanos, _, ident = base64.b64decode(token, validate=True).decode().partition("|")
        return int(nanos), int(ident)
    except ValueError:
        raise _Invalid("invalid page token") from None


# -- stream ----------------------------------------------------------------------------------


@dataclass
class _Session:
    ws: Any
    msgpack: bool
    authenticated: bool = False
    auth: Any = None  # the client's auth message, as received
    news: set[str] = field(default_factory=set)


class AlpacaNewsStreamFake:
    """Alpaca's news websocket on 127.0.0.1; `push` sends news to subscribed clients."""

    def __init__(
        self, api_key: str = "test-key-id", secret_key: str = "test-secret-key", *,
        auth_timeout_s: float = 10.0, max_lifetime: float = 600.0,
    ) -> None:
        self.api_key, self.secret_key = api_key, secret_key
        self.auth_timeout_s, self.max_lifetime = auth_timeout_s, max_lifetime
        self.received: list[dict[str, Any]] = []  # every client message, decoded
        self.connections = 0
        self.encodings: list[str] = []  # "msgpack" | "json", per connection
        self._auth_errors: list[tuple[int, str]] = []
        self._echoes: list[str] = []  # "status" | "malformed": how the next sessions quote their auth back
        self.echoed = 0  # messages that quoted a client's auth back
        self._sessions: list[_Session] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None
        self._port = 0

    # -- life ----------------------------------------------------------------------------

    def __enter__(self) -> AlpacaNewsStreamFake:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("the news stream fake did not start")
        self._timer = threading.Timer(self.max_lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:
                pass  # closed meanwhile
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(3)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._port}{PATH}"

    def reset(self) -> None:
        """Forget the log and scripted errors (sessions still open are left alone)."""
        with self._lock:
            self.received.clear()
            self.encodings.clear()
            self.connections = 0
            self._auth_errors.clear()
            self._echoes.clear()

    # -- controls ------------------------------------------------------------------------

    def refuse_auth_next(self, code: int = 406, msg: str = "connection limit exceeded", times: int = 1) -> None:
        """The next auth attempts get this error (whatever the keys), then the socket closes."""
        with self._lock:
            self._auth_errors += [(code, msg)] * times

    def echo_next(self, kind: str, times: int = 1) -> None:
        """The next `times` sessions get their auth message quoted back once they subscribe: as
        an error message ("status") or as a frame that is not msgpack ("malformed")."""
        if kind not in ("status", "malformed"):
            raise ValueError(f"the stream echoes as 'status' or 'malformed', not {kind!r}")
        with self._lock:
            self._echoes += [kind] * times

    def wait_subscribed(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Wait until `count` open sessions have subscribed to something."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while sum(1 for s in self._sessions if s.news) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def wait_closed(self, timeout: float = 5.0) -> bool:
        """Wait until no session is open."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._sessions:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def push(self, *items: dict[str, Any]) -> int:
        """Send the items as one frame of "n" messages to each session subscribed to any of
        their symbols (or "*"); returns how many sessions got it."""
        messages = [{"T": "n", **item} for item in items]
        return self._run(self._broadcast(messages))

    def push_frame(self, frame: bytes | str) -> int:
        """Send raw bytes (a binary frame) or text to every authenticated session."""
        return self._run(self._broadcast_raw(frame))

    def drop_sessions(self) -> int:
        """Close every open session from the server's side (code 1011), as a restart would."""
        return self._run(self._drop())

    def _run(self, coro: Any) -> int:
        assert self._loop is not None, "fake not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(5)

    # -- serving -------------------------------------------------------------------------

    async def _broadcast(self, messages: list[dict[str, Any]]) -> int:
        sent = 0
        for session in list(self._sessions):
            wanted = [m for m in messages if "*" in session.news or session.news & set(_symbols_of(m))]
            if session.authenticated and wanted:
                await self._send(session, wanted)
                sent += 1
        return sent

    async def _drop(self) -> int:
        sessions = list(self._sessions)
        for session in sessions:
            await session.ws.close(1011, "server restarting")
        return len(sessions)

    async def _broadcast_raw(self, frame: bytes | str) -> int:
        sent = 0
        for session in list(self._sessions):
            if session.authenticated:
                await session.ws.send(frame)
                sent += 1
        return sent

    async def _send(self, session: _Session, messages: list[dict[str, Any]]) -> None:
        if session.msgpack:
            await session.ws.send(msgpack.packb(messages, datetime=True))
        else:
            await session.ws.send(json.dumps([_as_json(m) for m in messages]))

    async def _session(self, ws: Any) -> None:
        encoding = ws.request.headers.get("Content-Type", "")
        session = _Session(ws, msgpack=encoding == "application/msgpack")
        with self._changed:
            self.connections += 1
            self.encodings.append("msgpack" if session.msgpack else "json")
            self._sessions.append(session)
            self._changed.notify_all()
        try:
            await self._send(session, [{"T": "success", "msg": "connected"}])
            while True:
                timeout = None if session.authenticated else self.auth_timeout_s
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout)
                except TimeoutError:
                    await self._send(session, [{"T": "error", "code": 404, "msg": "auth timeout"}])
                    return
                if not await self._handle(session, raw):
                    return
        except Exception:
            pass
        finally:
            with self._changed:
                self._sessions.remove(session)
                self._changed.notify_all()
            await ws.close()

    async def _handle(self, session: _Session, raw: bytes | str) -> bool:
        """Answer one client message; False ends the session."""
        try:
            message = msgpack.unpackb(raw) if isinstance(raw, bytes) else json.loads(raw)
            action = message.get("action")
        except Exception:
            await self._send(session, [{"T": "error", "code": 400, "msg": "invalid syntax"}])
            return True
        with self._lock:
            self.received.append(message)
            scripted = self._auth_errors.pop(0) if action == "auth" and self._auth_errors else None
        if action == "auth":
            session.auth = message
            if scripted is not None:
                await self._send(session, [{"T": "error", "code": scripted[0], "msg": scripted[1]}])
                return False
            if (message.get("key"), message.get("secret")) != (self.api_key, self.secret_key):
                await self._send(session, [{"T": "error", "code": 402, "msg": "auth failed"}])
                return False
            session.authenticated = True
            await self._send(session, [{"T": "success", "msg": "authenticated"}])
        elif action in ("subscribe", "unsubscribe"):
            if not session.authenticated:
                await self._send(session, [{"T": "error", "code": 401, "msg": "not authenticated"}])
                return True
            symbols = {s for s in message.get("news", []) if isinstance(s, str)}
            with self._changed:
                session.news = session.news | symbols if action == "subscribe" else session.news - symbols
                self._changed.notify_all()
            await self._send(session, [{"T": "subscription", "news": sorted(session.news)}])
            with self._lock:
                echo = self._echoes.pop(0) if self._echoes else None
                self.echoed += echo is not None
            if echo == "status":
                await self._send(session, [{"T": "error", "code": 400, "msg": echo_message(session.auth)}])
            elif echo == "malformed":
                await session.ws.send(echo_message(session.auth))  # a text frame: not msgpack
        else:
            await self._send(session, [{"T": "error", "code": 400, "msg": "invalid syntax"}])
        return True

    async def _main(self) -> None:
        from websockets.asyncio.server import serve

        self._stop = asyncio.Event()

        def only_news(connection: Any, request: Any) -> Any:
            if request.path != PATH:
                return connection.respond(404, "not found\n")
            return None

        async with serve(self._session, "127.0.0.1", 0, process_request=only_news, logger=_SERVER_LOG) as server:
            self._port = server.sockets[0].getsockname()[1]
            self._loop = asyncio.get_running_loop()
            self._ready.set()
            await self._stop.wait()
            for session in list(self._sessions):
                session.ws.transport.abort()


__all__ = ["AlpacaNewsFake", "AlpacaNewsStreamFake", "MALFORMED_NEWS_PAGE", "news_item"]
