"""Raw corporate-action rows for the vendor adapters: one item's fields read with the problems
noted, and the batch frame `check_actions` judges.

An announced action is knowable from the END of its announcement's New York day (the next
New York midnight): a vendor's date says nothing of the hour, so the day's last instant is
the only one never too early. It is never later than when tapeflow fetched it, nor than its
ex-date's New York midnight: by then the market itself trades on it, so any feed a trader
ran carried it (without this, a history backfilled today would know no split before today).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import polars as pl

from tapeflow.calendar.exchange import ny_day_bounds
from tapeflow.schemas import ACTION_SCHEMA
from tapeflow.sources.rows import json_float

RAW_ACTION_SCHEMA: dict[str, pl.DataType] = {
    **{name: dtype for name, dtype in ACTION_SCHEMA.items() if name != "payload_hash"},
    "problem": pl.String(),
}
"""What an ActionSource hands over: ACTION_SCHEMA without payload_hash, plus `problem`."""

_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SHOWN = 60  # characters of a bad value quoted in a problem


def knowable_from(declared: date | None, fetched_at: datetime) -> datetime:
    """The end of the New York day `declared` (None: unknown, so `fetched_at`), never after `fetched_at`."""
    if declared is None:
        return fetched_at
    return min(ny_day_bounds(declared)[1], fetched_at)


class ActionFields:
    """Reads one vendor item's fields, collecting what could not be read."""

    def __init__(self, item: dict[str, Any]) -> None:
        self.item = item
        self.problems: list[str] = []

    def note(self, problem: str) -> None:
        self.problems.append(problem)

    def text(self, key: str) -> str | None:
        """A text field that must be there (a symbol)."""
        value = self.item.get(key)
        if isinstance(value, str) and value:
            return value
        self.note(f"{key} is missing" if value in (None, "") else f"{key} is not text: {_short(value)}")
        return None

    def number(self, key: str) -> float | None:
        """A JSON number that must be there; text such as "0.25" is a problem, not parsed."""
        value = self.item.get(key)
        number = json_float(value)
        if number is None:
            self.note(f"{key} is missing" if value is None else f"{key} is not a number: {_short(value)}")
        return number

    def day(self, key: str, *, optional: bool = False) -> date | None:
        """A YYYY-MM-DD date; an optional one may be absent or null."""
        value = self.item.get(key)
        if value is None:
            if not optional:
                self.note(f"{key} is missing")
            return None
        try:
            if isinstance(value, str) and _ISO_DAY.match(value):
                return date.fromisoformat(value)
        except ValueError:
            pass
        self.note(f"{key} is not a YYYY-MM-DD date: {_short(value)}")
        return None

    def ratio(self, new: str, old: str) -> float | None:
        """`new` / `old`: new shares per old share, when both are positive numbers."""
        top, bottom = self.number(new), self.number(old)
        if top is None or bottom is None:
            return None
        if top <= 0 or bottom <= 0:
            self.note(f"{new} and {old} must be positive: {_short(top)} / {_short(bottom)}")
            return None
        return top / bottom

    def problem(self) -> str | None:
        return "; ".join(self.problems) or None


def action_row(source: str, fetched_at: datetime, payload: str, problem: str | None, **fields: Any) -> dict[str, Any]:
    """One raw row; fields not given are null, and knowable_at defaults to `fetched_at`, both
    capped at the ex-date's New York midnight."""
    row: dict[str, Any] = dict.fromkeys(RAW_ACTION_SCHEMA)
    row.update(source=source, fetched_at=fetched_at, knowable_at=fetched_at, payload=payload, problem=problem)
    row.update(fields)
    if isinstance(row["ex_date"], date) and isinstance(row["knowable_at"], datetime):
        row["knowable_at"] = min(row["knowable_at"], ny_day_bounds(row["ex_date"])[0])
    return row


def raw_actions(rows: Iterable[dict[str, Any]], first: date, last: date) -> pl.DataFrame:
    """Rows as a raw batch, kept when their ex_date lies in first..last or could not be read
    (those must reach the quarantine)."""
    frame = pl.DataFrame(list(rows), schema=RAW_ACTION_SCHEMA)
    return frame.filter(pl.col("ex_date").is_between(first, last) | pl.col("ex_date").is_null())


def _short(value: Any) -> str:
    return repr(value)[:SHOWN]


__all__ = ["RAW_ACTION_SCHEMA", "ActionFields", "action_row", "knowable_from", "raw_actions"]
