"""How every tool reads: a read-only connection that gives up fast when a writer holds the
file, and rows turned into JSON-ready dicts; failures become one-line tool errors."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import duckdb
import polars as pl
from mcp.server.mcpserver.exceptions import ToolError

from warehouse import Warehouse, WarehouseBusy, WarehouseMissing
from warehouse.query import QueryStopped, WriteRefused, run_read_only

BUSY = "warehouse busy (a writer holds it); retry in a few seconds"
# An agent waits on every call: one short retry, then the busy answer, never a hang.
LOCK_WAIT_S = 1.0
SQL_TIME_LIMIT_S = 10.0


class Reader:
    """The warehouse as the tools see it: read-only, a short lock wait, typed tool errors."""

    def __init__(self, warehouse: Warehouse, *, sql_time_limit_s: float = SQL_TIME_LIMIT_S) -> None:
        self.warehouse = warehouse.waiting_at_most(LOCK_WAIT_S)
        self.sql_time_limit_s = sql_time_limit_s

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The warehouse's read-only connection; busy or missing warehouse -> a ToolError."""
        with _as_tool_errors(), self.warehouse.read() as con:
            yield con

    def rows(self, query: str, params: Mapping[str, object] | None = None) -> list[dict[str, Any]]:
        """The rows of one parameterised read, JSON-ready."""
        with self.connection() as con:
            frame = con.sql(query, params=dict(params or {})).pl()
        return json_rows(frame)

    def user_sql(self, query: str) -> pl.DataFrame:
        """An agent's SQL under `tapeflow sql`'s guards: reads only, stopped at the time limit."""
        with _as_tool_errors():
            return run_read_only(self.warehouse, query, time_limit_s=self.sql_time_limit_s)


@contextmanager
def _as_tool_errors() -> Iterator[None]:
    try:
        yield
    except WarehouseBusy:
        raise ToolError(BUSY) from None
    except (WarehouseMissing, WriteRefused, QueryStopped) as exc:
        raise ToolError(str(exc)) from None
    except (duckdb.Error, pl.exceptions.PolarsError, ValueError) as exc:  # polars refuses some column types
        raise ToolError(_one_line(str(exc))) from None


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


def json_value(value: object) -> object:
    """A cell as JSON: instants as ISO-8601 (UTC, as stored), dates as ISO, decimals as floats,
    nested lists and structs as such, anything else (intervals, blobs, UUIDs) as its text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return str(value)


def json_rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as JSON-ready dicts."""
    return [{k: json_value(v) for k, v in row.items()} for row in frame.iter_rows(named=True)]
