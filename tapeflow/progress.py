"""Progress of long work: the code doing it says how far it is, and whoever listens shows it
(the CLI draws it on a terminal; with no listener a report costs one list lookup)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """Where one piece of work stands: `done` of `total` units (None: unknown), a short detail,
    seconds since it started, and whether it has finished."""

    work: str
    done: int
    total: int | None
    detail: str
    elapsed_s: float
    finished: bool = False


Listener = Callable[[Step], None]
_listeners: list[Listener] = []
_lock = threading.Lock()


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Send every step reported inside this block, from any thread, to `listener`."""
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)


class Tracker:
    """One piece of work in progress; `advance` and `update` report it."""

    def __init__(self, work: str, total: int | None) -> None:
        self.work, self.total, self.done, self.detail = work, total, 0, ""
        self.started = time.monotonic()

    def advance(self, n: int = 1, detail: str | None = None) -> None:
        self.update(self.done + n, detail)

    def update(self, done: int, detail: str | None = None, total: int | None = None) -> None:
        self.done = done
        self.detail = self.detail if detail is None else detail
        self.total = self.total if total is None else total
        self._send(finished=False)

    def _send(self, finished: bool) -> None:
        if not _listeners:
            return
        step = Step(self.work, self.done, self.total, self.detail, time.monotonic() - self.started, finished)
        for listener in list(_listeners):
            listener(step)


@contextmanager
def tracked(work: str, total: int | None = None) -> Iterator[Tracker]:
    """Report `work` as started now and finished when the block ends (raised or not)."""
    tracker = Tracker(work, total)
    tracker._send(finished=False)
    try:
        yield tracker
    finally:
        tracker._send(finished=True)
