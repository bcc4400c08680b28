"""Typed records the tools answer with: their JSON schemas are the tools' output schemas."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    """A frozen answer record."""

    model_config = ConfigDict(frozen=True)


class Rows(Record):
    """Rows of one read, each with its knowable-at time and source where the table has them."""

    rows: list[dict[str, Any]]
    count: int
    truncated: bool  # more rows matched than were returned (the cap)


class WatchlistSession(StrEnum):
    """BullAlert's session parameter: one session, or the latest list of any (current, all)."""

    CURRENT = "current"
    PRE_MARKET = "pre_market"
    MARKET = "market"
    AFTER_HOURS = "after_hours"
    ALL = "all"


class WatchlistEntry(Record):
    rank: int
    ticker: str
    score: float
    source: str
    as_of: datetime  # when the source says the list was true
    fetched_at: datetime  # when tapeflow first saw it


class WatchlistData(Record):
    watchlist: list[WatchlistEntry]


class WatchlistMeta(Record):
    session: str | None  # the session of the list answered ("current"/"all" resolve to one)
    as_of: datetime | None  # the list's as_of; None when no list was knowable
    count: int
    source: str | None
    requested_as_of: datetime


class WatchlistResponse(Record):
    """BullAlert's REST shape: {"data": {"watchlist": [...]}, "meta": {...}}."""

    data: WatchlistData
    meta: WatchlistMeta
