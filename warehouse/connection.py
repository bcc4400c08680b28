"""Short-lived DuckDB connections that respect the file's one-process lock.

DuckDB lets one process hold a database file, and refuses every other process, readers
included, while it does. So tapeflow opens the file for one unit of work and closes it,
and a caller that finds it locked retries with backoff for a bounded time, then gives up
with a message that says so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from warehouse.bars_view import define_bars_all
from warehouse.migrate import apply_migrations


class WarehouseBusy(RuntimeError):
    """Another process held the warehouse file for longer than the lock timeout."""


class WarehouseMissing(FileNotFoundError):
    """A read was asked of a warehouse that has not been created yet."""


def _is_lock_error(exc: duckdb.Error) -> bool:
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


class Warehouse:
    """The warehouse file; `write()` and `read()` hand out one connection for one unit of work."""

    def __init__(
        self,
        path: Path | str,
        *,
        lock_timeout_s: float = 30.0,
        on_busy: Callable[[str], None] | None = None,
        archive: Path | str | None = None,
    ) -> None:
        self.path = Path(path)
        # The Parquet bar archive `bars_all` reads; by default beside the file, as in the settings.
        self.archive = Path(archive) if archive is not None else self.path.parent / "archive"
        self.lock_timeout_s = lock_timeout_s
        self.on_busy = on_busy
        self._held: duckdb.DuckDBPyConnection | None = None
        self._migrated = False  # once per process and file: later opens skip the check
        self._depth = 0  # open transactions on the held connection

    def __repr__(self) -> str:
        return f"Warehouse({str(self.path)!r})"

    def waiting_at_most(self, seconds: float) -> Warehouse:
        """This file with a shorter lock timeout, for a write that must not wait (itself, when
        this process holds the file)."""
        if self._held is not None or self.lock_timeout_s <= seconds:
            return self
        return Warehouse(self.path, lock_timeout_s=seconds, on_busy=self.on_busy, archive=self.archive)

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A migrated read-write connection inside one transaction, committed on success."""
        if self._held is not None:
            yield from self._transaction(self._held)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = self._open(read_only=False)
        try:
            self._migrate(con)
            define_bars_all(con, self.archive)
            yield from self._transaction(con)
        finally:
            con.close()

    @contextmanager
    def held(self, *, threads: int | None = None) -> Iterator[None]:
        """Keep one write connection open for a burst of units of work (a trading cycle):
        each `write()` and `read()` inside is its own transaction on it. Other processes wait
        for the burst, so keep it short. `threads` caps DuckDB's threads meanwhile: a burst of
        small statements runs about 10% faster on one."""
        if self._held is not None:
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = self._open(read_only=False)
        try:
            if threads is not None:  # the file's settings in this process, until its last connection closes
                con.execute(f"SET threads = {int(threads)}")
            self._migrate(con)
            define_bars_all(con, self.archive)
            self._held = con
            yield
        finally:
            self._held = None
            con.close()

    def _migrate(self, con: duckdb.DuckDBPyConnection) -> None:
        if not self._migrated:
            apply_migrations(con)
            self._migrated = True

    def _transaction(self, con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._depth:  # a write inside a write joins the outer transaction
            yield con
            return
        self._depth += 1
        con.begin()
        try:
            yield con
        except BaseException:
            con.rollback()
            raise
        else:
            con.commit()
        finally:
            self._depth -= 1

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection; the warehouse must already exist."""
        if self._held is not None:  # this process holds the file: read through its connection
            yield self._held
            return
        if not self.path.exists():
            raise WarehouseMissing(
                f"no warehouse at {self.path}: run `tapeflow demo` or an ingest flow to create it"
            )
        con = self._open(read_only=True)
        try:
            yield con
        finally:
            con.close()

    def _open(self, *, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.05
        warned = False
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only, config=_config(read_only))
            except duckdb.Error as exc:
                if not _is_lock_error(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise WarehouseBusy(
                        f"warehouse busy: gave up after {self.lock_timeout_s:g} s waiting for "
                        f"{self.path} ({_holder(exc)})"
                    ) from None
                if not warned and self.on_busy is not None:
                    self.on_busy(
                        f"warehouse busy ({_holder(exc)}), retrying for up to {self.lock_timeout_s:g} s"
                    )
                    warned = True
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 1.0)
                continue
            try:
                with _CONFIGURING:
                    self._configure(con, read_only)
            except BaseException:
                con.close()
                raise
            return con

    def _configure(self, con: duckdb.DuckDBPyConnection, read_only: bool) -> None:
        """UTC, and for a reader the confinement. Connections to one file in one process share its
        settings: once a reader has locked them, a later reader finds them set and only adds its view."""
        if read_only and _locked(con):
            define_bars_all(con, self.archive)
            return
        # Results come back in UTC whatever the machine's zone, as they are stored.
        con.execute("SET TimeZone = 'UTC'")
        if read_only:
            _confine_reader(con, self.archive)


def _config(read_only: bool) -> dict[str, str | bool | int | float | list[str]]:
    """No extension is fetched or loaded behind our back (a reader is confined once connected)."""
    config: dict[str, str | bool | int | float | list[str]] = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    return config


_CONFIGURING = threading.Lock()
"""Held while a connection is configured, so that two threads never both find the shared settings unlocked."""


def _locked(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute("SELECT current_setting('lock_configuration')").fetchone()
    return bool(row and row[0])


def _confine_reader(con: duckdb.DuckDBPyConnection, archive: Path) -> None:
    """Readers run users' SQL: no reading or writing files or URLs but the bar archive's, and,
    with the settings locked, no way to turn that back on. DuckDB takes the allowed folder only
    while external access is still on, so it is switched off after connecting."""
    con.execute("SET allowed_directories = ?", [[f"{archive}/"]])
    con.execute("SET enable_external_access = false")
    define_bars_all(con, archive)
    con.execute("SET lock_configuration = true")


def _holder(exc: duckdb.Error) -> str:
    """The part of DuckDB's lock message that names the holding process."""
    text = str(exc)
    marker = "Conflicting lock is held in "
    if marker in text:
        held = text.split(marker, 1)[1].split(". See also", 1)[0]
        return f"locked by {held}"
    return "locked by another process"
