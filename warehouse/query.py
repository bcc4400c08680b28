"""Read-only SQL for users: SELECT and EXPLAIN pass, anything that could write is refused,
and the connection itself is read-only with file and network access switched off."""

from __future__ import annotations

import re

import duckdb
import polars as pl

from warehouse.connection import Warehouse

_READ_ONLY = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
# EXPLAIN ANALYZE runs the statement it explains.
_EXPLAIN_ANALYZE = re.compile(r"^\s*EXPLAIN\s+ANALY[SZ]E\b", re.IGNORECASE)


class WriteRefused(ValueError):
    """The query holds a statement that is not a read."""


def read_only_statements(sql: str) -> list[duckdb.Statement]:
    """Parse `sql`; raise WriteRefused unless every statement is a SELECT or EXPLAIN."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.ParserException as exc:
        raise ValueError(str(exc)) from None
    if not statements:
        raise ValueError("no SQL statement given")
    for statement in statements:
        if statement.type not in _READ_ONLY or _EXPLAIN_ANALYZE.match(statement.query):
            raise WriteRefused(
                f"refused a {statement.type.name} statement: `tapeflow sql` only reads the warehouse "
                "(SELECT, WITH ... SELECT, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN)"
            )
    return statements


def run_read_only(warehouse: Warehouse, sql: str) -> pl.DataFrame:
    """Run read-only SQL on a read-only connection; the last statement's rows come back."""
    statements = read_only_statements(sql)
    with warehouse.read() as con:
        for statement in statements[:-1]:
            con.execute(statement).fetchall()
        return con.sql(statements[-1].query).pl()
