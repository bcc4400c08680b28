"""A fake BullAlert watchlist API on 127.0.0.1, speaking the wire format documented in
`tapeflow.venues.bullalert`.

Snapshots are stored per (session, as_of minute). A request with `as_of` gets the latest
snapshot at or before that minute; a live request (no `as_of`) gets the latest one. The
sessions "current" and "all" look across every session and the answer's `meta.session`
says which one was served. Faults come from FakeVendor (fail_next, delay_next,
malformed_next); `duplicate_ticker` and `set_score` corrupt a stored snapshot on demand.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from tests.fakes.vendor_http import FakeVendor, Request

SESSIONS = ("pre_market", "market", "after_hours")
ANY_SESSION = ("current", "all")
CACHE_TTL_S = 60

Entry = dict[str, Any]


def minute(instant: datetime) -> datetime:
    """The UTC minute an instant falls in: the fake's snapshot clock."""
    return instant.astimezone(UTC).replace(second=0, microsecond=0)


def iso_z(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


class FakeBullAlert(FakeVendor):
    """BullAlert's GET /v1/watchlist, with stored snapshots and scriptable faults."""

    def __init__(self, api_key: str, max_lifetime: float = 600.0) -> None:
        super().__init__(max_lifetime=max_lifetime)
        self.api_key = api_key
        self._snapshots: dict[tuple[str, datetime], list[Entry]] = {}
        self.route(r"/v1/watchlist", self._watchlist)

    def __enter__(self) -> FakeBullAlert:
        super().__enter__()
        return self

    # -- scripting -----------------------------------------------------------------------

    def add_snapshot(self, session: str, as_of: datetime, tickers: Sequence[tuple[str, float]]) -> list[Entry]:
        """Store (ticker, score) pairs as the list for `session` at `as_of`'s minute, ranked in order."""
        assert session in SESSIONS, session
        entries = [{"rank": n, "ticker": t, "score": s} for n, (t, s) in enumerate(tickers, start=1)]
        with self._lock:
            self._snapshots[(session, minute(as_of))] = entries
        return entries

    def duplicate_ticker(self, session: str, as_of: datetime, ticker: str, *, score: float | None = None) -> None:
        """List `ticker` a second time at the end: a copy, or with another `score` (a conflict)."""
        with self._lock:
            entries = self._snapshots[(session, minute(as_of))]
            entry = dict(next(e for e in entries if e["ticker"] == ticker))
            if score is not None:
                entry["score"] = score
            entries.append(entry)

    def set_score(self, session: str, as_of: datetime, ticker: str, score: Any) -> None:
        """Overwrite one entry's score, e.g. with an out-of-range 130.0."""
        with self._lock:
            for entry in self._snapshots[(session, minute(as_of))]:
                if entry["ticker"] == ticker:
                    entry["score"] = score

    # -- serving -------------------------------------------------------------------------

    def _watchlist(self, request: Request) -> tuple[int, Any]:
        if request.headers.get("x-ba-api-key") != self.api_key:
            return 401, {"error": "invalid api key"}
        session = request.query.get("session", "current")
        if session not in (*SESSIONS, *ANY_SESSION):
            return 422, {"error": f"invalid session {session!r}: use {', '.join((*SESSIONS, *ANY_SESSION))}"}
        limit = request.query.get("limit", "100")
        if not limit.isdigit() or not 1 <= int(limit) <= 100:
            return 422, {"error": f"invalid limit {limit!r}: use 1..100"}
        as_of = None
        if "as_of" in request.query:
            as_of = self._parse_as_of(request.query["as_of"])
            if as_of is None:
                return 422, {"error": f"invalid as_of {request.query['as_of']!r}: use UTC ISO-8601 ending in Z"}
        found = self._find(session, as_of)
        if found is None:
            entries, meta_session, listed = [], session if session in SESSIONS else None, None
        else:
            (meta_session, listed), entries = found
        shown = [dict(e) for e in entries[: int(limit)]]
        meta = {
            "session": meta_session,
            "as_of": iso_z(listed) if listed is not None else None,
            "count": len(shown),
            "cache_ttl_s": CACHE_TTL_S,
        }
        return 200, {"data": {"watchlist": shown}, "meta": meta}

    @staticmethod
    def _parse_as_of(text: str) -> datetime | None:
        if not text.endswith("Z"):
            return None
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            return None

    def _find(self, session: str, as_of: datetime | None) -> tuple[tuple[str, datetime], list[Entry]] | None:
        """The latest stored snapshot of `session` (any, for current/all) at or before `as_of`."""
        with self._lock:
            keys = [
                key for key in self._snapshots
                if (session in ANY_SESSION or key[0] == session) and (as_of is None or key[1] <= minute(as_of))
            ]
            if not keys:
                return None
            key = max(keys, key=lambda k: (k[1], SESSIONS.index(k[0])))
            return key, self._snapshots[key]


__all__ = ["FakeBullAlert", "iso_z", "minute"]
