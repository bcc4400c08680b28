"""BullAlert's watchlist through its MCP server: the `list_watchlist` tool over streamable HTTP
with the official MCP SDK's client, stored exactly as the REST adapter stores it.

Wire format (what this adapter sends and expects; the test fake speaks the same):

    POST {bullalert_mcp_url}                   header  x-ba-api-key: <key>  (every HTTP request)
        tools/call list_watchlist {"session": ..., "limit": 1..100, "as_of": "...Z" (replay only)}
    result: one text block holding the REST endpoint's body, {"data": {"watchlist": [...]}, "meta": {...}}
    a tool error (isError) carries the vendor's message; HTTP 401 refuses the key

The answer's text is hashed and parsed as the REST body is (`BullAlertSource`), so both sources
give the same raw rows, checks, `as_of` and `fetched_at`; only `source` differs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx2
import polars as pl
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent

from tapeflow.config import Settings
from tapeflow.model import check_aware
from tapeflow.redact import redact_text, redact_url
from tapeflow.sources.http import HttpPolicy, Page, VendorAuthError, VendorError, require_key
from tapeflow.venues.bullalert import KEY_HEADER, KEY_SETTING, MAX_LIMIT, REQUEST_SESSIONS, BullAlertSource

SOURCE = "bullalert-mcp"
TOOL = "list_watchlist"
ERROR_CHARS = 300  # of a tool error quoted into a message: enough to read, not a page
MCP_TIMEOUT_CODE = -32001  # the SDK's code for a request that got no answer in time


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _iso_z(instant: datetime) -> str:
    """UTC ISO-8601 with a Z, as BullAlert's `as_of` argument wants it."""
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups: the SDK raises from task groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for; None when absent or not a number of seconds."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None  # the HTTP-date form is rare from APIs; fall back to backoff
    return seconds if seconds is not None and seconds >= 0 else None


class _Failure(Exception):
    """One failed attempt, described without the exception that caused it (it may quote a URL)."""

    def __init__(self, what: str, *, status: int | None = None, retry: bool = True,
                 retry_after: float | None = None) -> None:
        super().__init__(what)
        self.what, self.status, self.retry, self.retry_after = what, status, retry, retry_after


class BullAlertMcpSource(BullAlertSource):
    """Watchlist snapshots from BullAlert's MCP `list_watchlist` tool: a `WatchlistSource`.

    Replay (`history`, `snapshots`) and parsing are BullAlertSource's; only the call differs."""

    name = SOURCE

    def __init__(
        self,
        settings: Settings,
        *,
        policy: HttpPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        # BullAlertSource.__init__ is not called on purpose: it opens a REST session this source never uses.
        self._key = require_key(settings.bullalert_api_key, vendor=SOURCE, setting=KEY_SETTING)
        self._url = settings.bullalert_mcp_url
        self._policy = policy or HttpPolicy.from_settings(settings)
        self._sleep = sleep
        self._clock = clock

    def __repr__(self) -> str:
        return f"BullAlertMcpSource({redact_url(self._url)!r})"

    def close(self) -> None:
        """Nothing to close: each call opens and closes its own MCP connection."""

    def snapshot(self, session: str = "current", as_of: datetime | None = None, limit: int = 100) -> pl.DataFrame:
        """The watchlist for `session`, live or as it stood at `as_of`, as a raw batch (row times
        as `BullAlertSource.snapshot` documents them)."""
        if session not in REQUEST_SESSIONS:
            raise ValueError(f"{SOURCE} session must be one of {', '.join(REQUEST_SESSIONS)}, got {session!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"{SOURCE} limit must be an integer within 1..{MAX_LIMIT}, got {limit!r}")
        arguments: dict[str, Any] = {"session": session, "limit": limit}
        if as_of is not None:
            as_of = check_aware("as_of", as_of)
            arguments["as_of"] = _iso_z(as_of)
        page = self._page(self._call(arguments))
        return self._rows(page, session, as_of, fetched_at=self._clock())

    # -- the call ----------------------------------------------------------------------

    def _call(self, arguments: dict[str, Any]) -> CallToolResult:
        """The tool's result, with the REST adapter's policy: a deadline per attempt, transient
        failures retried with backoff, refused credentials and tool errors not retried."""
        where = f"{SOURCE} {TOOL}"
        failure = _Failure("no attempt made")
        for attempt in range(1, self._policy.attempts + 1):
            try:
                result, status = anyio.run(self._attempt, arguments)
            except _Failure as exc:
                failure = exc
            else:
                if result.is_error:
                    # The status is the HTTP one that carried the error (200): a refusal, which
                    # is_transient (and so the task's retries) leaves alone, like a 4xx.
                    raise VendorError(f"{where}: the tool failed: {self._error_text(result)}", vendor=SOURCE,
                                      status=status)
                return result
            if failure.status in (401, 403):
                raise VendorAuthError(
                    f"{SOURCE} refused the credentials (HTTP {failure.status}): check {KEY_SETTING}",
                    vendor=SOURCE, status=failure.status,
                )
            if not failure.retry:
                raise VendorError(f"{where}: {failure.what}", vendor=SOURCE, status=failure.status)
            if attempt < self._policy.attempts:
                self._sleep(self._policy.delay(attempt, failure.retry_after))
        raise VendorError(
            f"{where}: gave up after {self._policy.attempts} attempts ({failure.what})", vendor=SOURCE,
            status=failure.status,
        )

    async def _attempt(self, arguments: dict[str, Any]) -> tuple[CallToolResult, int | None]:
        """One connection and one tool call within the policy's timeout, with the last HTTP status
        seen; failures as _Failure."""
        statuses: list[int] = []
        waits: list[float | None] = []  # a 429's Retry-After, honoured as the REST adapter does

        async def seen(response: httpx2.Response) -> None:
            statuses.append(response.status_code)
            waits.append(_retry_after(response.headers.get("Retry-After")))

        timeout = self._policy.timeout_s
        http = httpx2.AsyncClient(headers={KEY_HEADER: self._key}, timeout=httpx2.Timeout(timeout),
                                  event_hooks={"response": [seen]})
        caught: Exception
        try:
            with anyio.fail_after(timeout):
                async with http, Client(streamable_http_client(self._url, http_client=http),
                                        read_timeout_seconds=timeout) as client:
                    result = await client.call_tool(TOOL, arguments)
            return result, statuses[-1] if statuses else None
        except Exception as exc:  # the SDK raises groups of httpx2/MCP errors: sorted out below
            caught = exc
        # Raised outside the except block, so that no SDK exception (it may quote the URL or a
        # server's text) rides along as __context__.
        raise self._failure(caught, statuses, waits)

    def _failure(self, exc: BaseException, statuses: list[int], waits: list[float | None]) -> _Failure:
        """What went wrong in one attempt, and whether trying again could help."""
        # The last answer only: the client's version probe may meet a 4xx from an older server
        # and fall back to the handshake, which is no failure.
        if statuses and statuses[-1] >= 400:
            status, wait = statuses[-1], waits[-1]
            return _Failure(f"HTTP {status}", status=status, retry=status == 429 or status >= 500,
                            retry_after=wait if status == 429 else None)
        leaves = _leaves(exc)
        if any(isinstance(leaf, (TimeoutError, httpx2.TimeoutException)) for leaf in leaves) or any(
            isinstance(leaf, MCPError) and leaf.error.code == MCP_TIMEOUT_CODE for leaf in leaves
        ):
            return _Failure(f"timed out after {self._policy.timeout_s:g} s")
        if any(isinstance(leaf, (httpx2.TransportError, ConnectionError)) for leaf in leaves):
            return _Failure("connection failed")
        # The server answered, but not with a result: trying again would fail the same way. The
        # status seen is kept so that the task's retry condition agrees.
        last = statuses[-1] if statuses else None
        codes = sorted({leaf.error.code for leaf in leaves if isinstance(leaf, MCPError)})
        if codes:
            return _Failure(f"MCP error {', '.join(map(str, codes))}", status=last, retry=False)
        return _Failure(f"request failed ({', '.join(sorted({type(leaf).__name__ for leaf in leaves}))})",
                        status=last, retry=False)

    # -- the answer --------------------------------------------------------------------

    def _text(self, result: CallToolResult) -> str | None:
        """The result's text blocks joined, keys masked; None when it has no text."""
        texts = [block.text for block in result.content if isinstance(block, TextContent)]
        return redact_text("".join(texts), [self._key]) if texts else None

    def _error_text(self, result: CallToolResult) -> str:
        """A tool error's message, keys masked, cut short, on one line."""
        text = " ".join((self._text(result) or "no message").split())
        return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 3] + "..."

    def _page(self, result: CallToolResult) -> Page:
        """The tool's answer as the REST body would be: parsed JSON, or the text and its problem."""
        text = self._text(result)
        if text is None:
            return Page(url=TOOL, data=None, text="", problem=f"{SOURCE} answer has no text content")
        try:
            return Page(url=TOOL, data=json.loads(text), text=text)
        except ValueError as exc:
            return Page(url=TOOL, data=None, text=text, problem=f"malformed JSON from {SOURCE}: {exc}")

    def _frame(self, rows: list[dict[str, Any]]) -> pl.DataFrame:
        """Rows in the raw watchlist shape, under this source's name."""
        return super()._frame(rows).with_columns(source=pl.lit(SOURCE, dtype=pl.String()))


__all__ = ["BullAlertMcpSource"]
