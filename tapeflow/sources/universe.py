"""Point-in-time universes: a universe's record (what it is, how biased) and its membership.

A symbol is a member at instant t when one of its intervals holds t's New York day
(from_date <= day <= to_date, to_date null: still a member) and that interval was knowable
by t: the rule `warehouse.universes.MEMBER_ON` states in SQL. The scanner lists, and a
backtest enters, only what the universe held at the moment of the decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

import duckdb
import polars as pl

from tapeflow.calendar.exchange import NEW_YORK, ny_day
from tapeflow.model import check_aware
from tapeflow.schemas import UTC_TS
from warehouse.universes import membership, universe_names, universe_record

MEMBER_COLUMNS: dict[str, pl.DataType] = {
    "symbol": pl.String(), "from_date": pl.Date(), "to_date": pl.Date(), "knowable_at": UTC_TS,
}


class Survivorship(StrEnum):
    """Whether a universe's members are the ones each day really had (`universes.survivorship`)."""

    POINT_IN_TIME = "point_in_time"
    SURVIVORSHIP_BIASED = "survivorship_biased"

    def meaning(self) -> str:
        if self is Survivorship.POINT_IN_TIME:
            return "members as each day had them, each from when it was knowable"
        return ("members as a later list names them: symbols that left before that list are missing, "
                "so results are flattered")


class UnknownUniverse(LookupError):
    """A universe name the warehouse has no record of; the message names the known ones."""


@dataclass(frozen=True)
class Universe:
    """One universe's record: its name, what it is, its survivorship and where it came from."""

    name: str
    description: str
    survivorship: Survivorship
    source: str

    def sentence(self) -> str:
        return f"{self.name}: {self.description}"


@dataclass(frozen=True)
class Membership:
    """A universe with its membership intervals (MEMBER_COLUMNS, one row an interval)."""

    universe: Universe
    members: pl.DataFrame

    def member_mask(self, symbols: pl.Series, at: pl.Series) -> pl.Series:
        """For each (symbol, decision instant) pair, whether the symbol was a member then."""
        asked = pl.DataFrame({"symbol": symbols.cast(pl.String), "at": at.dt.convert_time_zone("UTC")}).with_row_index("_row")
        asked = asked.with_columns(pl.col("at").dt.convert_time_zone(str(NEW_YORK)).dt.date().alias("_day"))
        held = asked.join(self.members, on="symbol", how="inner").filter(
            (pl.col("from_date") <= pl.col("_day"))
            & (pl.col("to_date").is_null() | (pl.col("_day") <= pl.col("to_date")))
            & (pl.col("knowable_at") <= pl.col("at"))
        )["_row"].unique()
        return asked["_row"].is_in(held.implode()).alias("member")

    def members_at(self, at: datetime) -> frozenset[str]:
        """The symbols that were members at instant `at`, as known then."""
        at = check_aware("at", at)
        day = ny_day(at)
        held = self.members.filter(
            (pl.col("from_date") <= day) & (pl.col("to_date").is_null() | (pl.col("to_date") >= day))
            & (pl.col("knowable_at") <= at)
        )
        return frozenset(held["symbol"].to_list())


def load_universe(con: duckdb.DuckDBPyConnection, name: str) -> Universe:
    """The recorded universe `name`, or UnknownUniverse naming the ones there are."""
    row = universe_record(con, name)
    if row is None:
        known = universe_names(con)
        raise UnknownUniverse(
            f"no universe {name!r} in the warehouse; known: {', '.join(known) if known else 'none'}"
            " (the bundled one loads with `tapeflow universe load`)")
    return Universe(str(row["universe"]), str(row["description"]), Survivorship(str(row["survivorship"])),
                    str(row["source"]))


def load_membership(con: duckdb.DuckDBPyConnection, name: str, first: date | None = None,
                    last: date | None = None) -> Membership:
    """The universe `name` with its intervals overlapping New York days first..last (None: all)."""
    universe = load_universe(con, name)
    members = membership(con, name, first, last)
    return Membership(universe, members.select(pl.col(c).cast(t) for c, t in MEMBER_COLUMNS.items()))
