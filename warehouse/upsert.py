"""Upserts of polars frames through Arrow, keyed on natural keys.

Re-sending rows the warehouse already has changes nothing: a row is rewritten only when
one of its values differs, and bookkeeping columns (such as `ingested_at`) alone never
count as a difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import polars as pl


@dataclass(frozen=True)
class UpsertCounts:
    inserted: int
    updated: int
    unchanged: int

    @property
    def stored(self) -> int:
        return self.inserted + self.updated


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def upsert(
    con: duckdb.DuckDBPyConnection,
    table: str,
    frame: pl.DataFrame,
    key: Sequence[str],
    *,
    bookkeeping: Sequence[str] = (),
    history: str | None = None,
) -> UpsertCounts:
    """Insert new keys, update keys whose values changed, leave identical rows alone.

    With `history`, each row about to be changed is first copied there with `superseded_at`."""
    if frame.is_empty():
        return UpsertCounts(0, 0, 0)
    duplicated = frame.select(key).is_duplicated()
    if duplicated.any():
        raise ValueError(f"{table}: {int(duplicated.sum())} rows share a key {tuple(key)} within one batch")
    columns = frame.columns
    missing = [k for k in key if k not in columns]
    if missing:
        raise ValueError(f"{table}: key columns {missing} are not in the frame")
    compared = [c for c in columns if c not in key and c not in bookkeeping]

    con.register("_incoming", frame.to_arrow())
    try:
        join = " AND ".join(f"t.{_quote(k)} = i.{_quote(k)}" for k in key)
        [(inserted,)] = con.execute(
            f"SELECT count(*) FROM _incoming i ANTI JOIN {_quote(table)} t ON {join}"
        ).fetchall()
        if history is not None and compared:
            differs = " OR ".join(f"t.{_quote(c)} IS DISTINCT FROM i.{_quote(c)}" for c in compared)
            con.execute(
                f"INSERT INTO {_quote(history)} SELECT t.*, now() FROM {_quote(table)} t "
                f"JOIN _incoming i ON {join} WHERE {differs}"
            )
        cols = ", ".join(_quote(c) for c in columns)
        sets = ", ".join(f"{_quote(c)} = excluded.{_quote(c)}" for c in columns if c not in key)
        changed = " OR ".join(f"{_quote(table)}.{_quote(c)} IS DISTINCT FROM excluded.{_quote(c)}" for c in compared)
        conflict = (
            f"DO UPDATE SET {sets} WHERE {changed}" if compared and sets else "DO NOTHING"
        )
        [(affected,)] = con.execute(
            f"INSERT INTO {_quote(table)} ({cols}) SELECT {cols} FROM _incoming "
            f"ON CONFLICT ({', '.join(_quote(k) for k in key)}) {conflict}"
        ).fetchall()
    finally:
        con.unregister("_incoming")
    updated = affected - inserted
    return UpsertCounts(inserted=inserted, updated=updated, unchanged=frame.height - affected)
