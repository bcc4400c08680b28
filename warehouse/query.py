"""Read-only SQL for users: SELECT and EXPLAIN pass, anything that could write is refused,
and the connection itself is read-only with file and network access switched off. A query
runs under a time limit and stops on Ctrl-C: while it runs, its reader keeps writers (a
session, the ingest flows) off the file."""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import polars as pl

from warehouse.connection import Warehouse

_READ_ONLY = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
# EXPLAIN ANALYZE runs the statement it explains.
_EXPLAIN_ANALYZE = re.compile(r"^\s*EXPLAIN\s+ANALY[SZ]E\b", re.IGNORECASE)


class WriteRefused(ValueError):
    """The query holds a statement that is not a read."""


class QueryStopped(RuntimeError):
    """The query ran past its time limit, or was interrupted (Ctrl-C); the file is free again."""


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


def run_read_only(warehouse: Warehouse, sql: str, *, time_limit_s: float | None = None) -> pl.DataFrame:
    """Run read-only SQL on a read-only connection; the last statement's rows come back.
    Past `time_limit_s`, or on Ctrl-C (SIGINT), the query is interrupted (QueryStopped)."""
    statements = read_only_statements(sql)
    with warehouse.read() as con:
        result: dict[str, object] = {}

        def run() -> None:
            try:
                for statement in statements[:-1]:
                    con.execute(statement).fetchall()
                result["rows"] = con.sql(statements[-1].query).pl()
            except BaseException as exc:  # handed to the waiting thread
                result["error"] = exc

        # DuckDB keeps a query's thread in C, where Ctrl-C never reaches Python: the query runs in
        # a worker, and this thread waits for it, the time limit or SIGINT, then interrupts it.
        worker = threading.Thread(target=run, name="tapeflow-sql", daemon=True)
        with _sigint() as interrupted:
            worker.start()
            deadline = None if time_limit_s is None else time.monotonic() + time_limit_s
            while worker.is_alive() and not interrupted.wait(0.05):
                if deadline is not None and time.monotonic() >= deadline:
                    break
        if worker.is_alive():
            con.interrupt()
            worker.join()
            why = "stopped by Ctrl-C" if interrupted.is_set() else (
                f"stopped after {time_limit_s:g} s, its time limit (TAPEFLOW_SQL_TIME_LIMIT_S or --time-limit)")
            raise QueryStopped(f"query {why}; nothing was changed")
        if "error" in result:
            raise result["error"]  # type: ignore[misc]
        return result["rows"]  # type: ignore[return-value]


@contextmanager
def _sigint() -> Iterator[threading.Event]:
    """An event SIGINT sets while the block runs (in the main thread; elsewhere, never set)."""
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return
    previous = signal.signal(signal.SIGINT, lambda *_: event.set())
    try:
        yield event
    finally:
        signal.signal(signal.SIGINT, previous)
