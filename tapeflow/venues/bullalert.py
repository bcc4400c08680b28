"""BullAlert: a scored pre-market / market / after-hours watchlist, live or replayed as of a
past instant, over the shared VendorHttp policy.

Wire format (what this adapter sends and expects; the test fake speaks the same):

    GET {bullalert_url}/v1/watchlist          header  x-ba-api-key: <key>
        session = pre_market | market | after_hours | all | current
        limit   = 1..100
        as_of   = UTC ISO-8601 with a Z (historical replay; left out for the live list)
    200 {"data": {"watchlist": [{"rank": 1, "ticker": "NVDA", "score": 87.5}, ...]},
         "meta": {"session": "pre_market", "as_of": "2026-03-05T13:45:00Z", "count": 2, "cache_ttl_s": 60}}
    401 {"error": "invalid api key"}          422 {"error": "..."} for a bad session / limit / as_of

The server caches a list for about 60 s (`meta.cache_ttl_s`): polling faster than once a
minute returns the same snapshot again and only spends quota.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from tapeflow.config import Settings
from tapeflow.model import check_aware, parse_instant
from tapeflow.redact import redact_url
from tapeflow.schemas import SESSIONS, WATCHLIST_SCHEMA, empty_raw_watchlist
from tapeflow.sources.http import HttpPolicy, Page, VendorHttp, require_key
from tapeflow.sources.rows import PAYLOAD_CHARS

SOURCE = "bullalert"
KEY_SETTING = "TAPEFLOW_BULLALERT_API_KEY"
KEY_HEADER = "x-ba-api-key"
PATH = "/v1/watchlist"
REQUEST_SESSIONS = (*SESSIONS, "all", "current")
MAX_LIMIT = 100
INT64_MAX = 2**63 - 1

RAW_SCHEMA: dict[str, pl.DataType] = {**WATCHLIST_SCHEMA, "payload": pl.String(), "problem": pl.String()}


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _iso_z(instant: datetime) -> str:
    """UTC ISO-8601 with a Z, as BullAlert's `as_of` parameter wants it."""
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _rank(value: Any) -> int | None:
    """The vendor's rank if it is a JSON integer that fits Int64; else null for check_watchlist."""
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > INT64_MAX:
        return None
    return value


def _score(value: Any) -> float | None:
    """The vendor's score if it is a JSON number; else null for check_watchlist."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:  # an integer beyond any float
        return None


class BullAlertSource:
    """Watchlist snapshots from BullAlert as raw batches: a `tapeflow.sources.WatchlistSource`."""

    name = SOURCE

    def __init__(
        self,
        settings: Settings,
        *,
        policy: HttpPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        key = require_key(settings.bullalert_api_key, vendor=SOURCE, setting=KEY_SETTING)
        policy = policy or HttpPolicy.from_settings(settings)
        self._http = VendorHttp(
            SOURCE, settings.bullalert_url, key_setting=KEY_SETTING,
            headers={KEY_HEADER: key}, secrets=[key], policy=policy, sleep=sleep,
        )
        self._clock = clock

    def __repr__(self) -> str:
        return f"BullAlertSource({redact_url(self._http.base_url)!r})"

    def close(self) -> None:
        self._http.close()

    def snapshot(self, session: str = "current", as_of: datetime | None = None, limit: int = 100) -> pl.DataFrame:
        """The watchlist for `session`, live or as it stood at `as_of`, as a raw batch.

        Row times: `as_of` is the server's `meta.as_of` (when the list was true); without it,
        the requested `as_of`, and for a live request without it, `fetched_at`. `session` is
        `meta.session` (so "current" and "all" resolve to what the server says), else the
        requested session when it names one. `fetched_at` is when the response arrived.
        """
        if session not in REQUEST_SESSIONS:
            raise ValueError(f"{SOURCE} session must be one of {', '.join(REQUEST_SESSIONS)}, got {session!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"{SOURCE} limit must be an integer within 1..{MAX_LIMIT}, got {limit!r}")
        params: dict[str, str] = {"session": session, "limit": str(limit)}
        if as_of is not None:
            as_of = check_aware("as_of", as_of)
            params["as_of"] = _iso_z(as_of)
        page = self._http.get(PATH, params=params)
        return self._rows(page, session, as_of, fetched_at=self._clock())

    def history(
        self, session: str, start: datetime, end: datetime, every: timedelta, limit: int = 100
    ) -> pl.DataFrame:
        """Snapshots replayed as of start, start + every, ... up to end inclusive (see `snapshots`)."""
        start, end = check_aware("start", start), check_aware("end", end)
        if every <= timedelta(0):
            raise ValueError(f"every must be a positive interval, got {every}")
        if end < start:
            raise ValueError(f"end {end.isoformat()} is before start {start.isoformat()}")
        steps = []
        at = start
        while at <= end:
            steps.append((at, session))
            at += every
        return self.snapshots(steps, limit=limit)

    def snapshots(self, moments: Sequence[tuple[datetime, str]], limit: int = 100) -> pl.DataFrame:
        """The lists replayed as of each (as_of, session) in turn, concatenated.

        The server answers the latest list at or before `as_of`, so several moments can land on
        one list: a response whose body and as_of were seen before is skipped, unless it could
        not be read, so that every failed step reaches the quarantine.
        """
        frames: list[pl.DataFrame] = [empty_raw_watchlist()]
        seen: set[tuple[str, datetime | None]] = set()
        for at, session in moments:
            frame = self.snapshot(session, as_of=check_aware("as_of", at), limit=limit)
            listings = set(frame.select("payload_hash", "as_of").iter_rows())
            readable = frame["problem"].null_count() == frame.height
            if not (readable and listings and listings <= seen):
                frames.append(frame)
            seen |= listings
        return pl.concat(frames)

    # -- parsing -----------------------------------------------------------------------

    def _rows(self, page: Page, session: str, as_of: datetime | None, fetched_at: datetime) -> pl.DataFrame:
        """One raw row per watchlist entry, or one problem row for a body that cannot be read."""
        fetched_at = check_aware("fetched_at", fetched_at)
        digest = hashlib.sha256(page.text.encode()).hexdigest()
        requested = session if session in SESSIONS else None
        data = page.data if isinstance(page.data, dict) else {}
        body = data.get("data")
        entries = body.get("watchlist") if isinstance(body, dict) else None
        if page.problem is not None or not isinstance(entries, list):
            problem = page.problem or f"{SOURCE} response lacks data.watchlist (a list)"
            common = dict(session=requested, as_of=as_of, fetched_at=fetched_at, payload_hash=digest)
            return self._frame([{**common, "payload": page.text[:PAYLOAD_CHARS], "problem": problem}])
        meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
        common, problem = self._snapshot_fields(meta, requested, as_of, fetched_at)
        common["payload_hash"] = digest
        return self._frame([self._entry(entry, common, problem) for entry in entries])

    def _snapshot_fields(
        self, meta: Mapping[str, Any], session: str | None, as_of: datetime | None, fetched_at: datetime
    ) -> tuple[dict[str, Any], str | None]:
        """session / as_of / fetched_at shared by a response's rows, and a problem with meta."""
        problem = None
        if isinstance(meta.get("session"), str):
            session = meta["session"]
        listed = meta.get("as_of")
        if listed is None:
            listed_at = as_of or fetched_at
        else:
            listed_at, problem = parse_instant("meta.as_of", listed if isinstance(listed, str) else repr(listed))
        return dict(session=session, as_of=listed_at, fetched_at=fetched_at), problem

    def _entry(self, entry: Any, common: Mapping[str, Any], problem: str | None) -> dict[str, Any]:
        """One watchlist entry as a raw row; nothing is judged here but the entry's shape."""
        payload = json.dumps(entry, sort_keys=True)
        if not isinstance(entry, dict):
            reason = "; ".join(p for p in (problem, "watchlist entry is not a JSON object") if p)
            return {**common, "payload": payload, "problem": reason}
        ticker = entry.get("ticker")
        return {
            **common,
            "ticker": ticker if isinstance(ticker, str) else None,
            "rank": _rank(entry.get("rank")),
            "score": _score(entry.get("score")),
            "payload": payload,
            "problem": problem,
        }

    def _frame(self, rows: list[dict[str, Any]]) -> pl.DataFrame:
        """Rows in the raw watchlist shape, `source` filled in."""
        if not rows:
            return empty_raw_watchlist()
        filled = [{**dict.fromkeys(RAW_SCHEMA), **row, "source": SOURCE} for row in rows]
        return pl.DataFrame(filled, schema=RAW_SCHEMA)


__all__ = ["BullAlertSource", "KEY_SETTING"]
