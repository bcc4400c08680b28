"""A trading day as it runs, in the Prefect UI: a progress bar, the book as a table that is
refreshed through the day, the day's reconciliation at the end, and events that Automations
can trigger on (fills, the breaker, the kill switch, the day's lock).

Nothing here may stop trading: a failed call to Prefect's API is logged once (per kind of
call) and the session goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TypeVar, cast
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.events import emit_event
from prefect.exceptions import MissingContextError

from tapeflow.calendar.exchange import NEW_YORK
from tapeflow.live.day_view import book_rows, day_markdown, progress_words
from tapeflow.live.observer import Guard, SessionView
from tapeflow.live.report import SessionReport
from tapeflow.model import Fill

PROGRESS_KEY = "trade-session-progress"
BOOK_KEY = "trade-session-book"  # one artifact, a new version each time the book is published
REPORT_KEY = "trade-session"
BOOK_EVERY = timedelta(minutes=15)  # of session time: the book is refreshed at least this often
# A replay runs several cycles a second: progress is sent at most this often (a live cycle,
# a minute long, sends every one), so the API gets a handful of calls a second, not hundreds.
PROGRESS_EVERY_S = 1.0

FILL_EVENT = "tapeflow.fill"
GUARD_EVENTS = {
    (Guard.BREAKER, True): "tapeflow.breaker.tripped",
    (Guard.KILL_SWITCH, True): "tapeflow.kill-switch.engaged",
    (Guard.KILL_SWITCH, False): "tapeflow.kill-switch.released",
    (Guard.DAY_LOCK, True): "tapeflow.day-lock.engaged",
    (Guard.DAY_LOCK, False): "tapeflow.day-lock.released",
}

log = logging.getLogger(__name__)
T = TypeVar("T")


def session_resource(session_id: str) -> dict[str, str]:
    """The resource a session's events are about (what an Automation matches on)."""
    return {"prefect.resource.id": f"tapeflow.session.{session_id}", "prefect.resource.name": session_id}


class PrefectSessionView:
    """A session observer that shows the day in the Prefect UI; `where` names the file the
    session's rows are in (set once the session is launched)."""

    def __init__(self, where: Path | None = None) -> None:
        self.where = where
        self.published: set[str] = set()  # sessions whose final report went out
        self._session_id = ""
        self._progress: UUID | None = None
        self._progress_sent = float("-inf")  # monotonic time of the last progress update
        self._booked: tuple | None = None  # the book last published, without prices
        self._booked_at: datetime | None = None  # session time it was published at
        self._failed: set[str] = set()
        self._log = _run_logger()

    # -- the observer's calls ---------------------------------------------------------------------

    def on_start(self, session_id: str, day: date, cycles: int) -> None:
        self._session_id, self._booked, self._booked_at = session_id, None, None
        self._progress = self._safely("progress", lambda: cast(UUID, create_progress_artifact(  # sync: a UUID
            0.0, key=PROGRESS_KEY, description=f"{session_id}: starting, {cycles} cycles to the close")))

    def on_cycle(self, view: SessionView) -> None:
        if time.monotonic() - self._progress_sent >= PROGRESS_EVERY_S:
            self._send_progress(view.percent, progress_words(view))
        due = self._booked_at is None or view.time - self._booked_at >= BOOK_EVERY
        if due or view.book() != self._booked:
            self._publish_book(view, final=False)

    def on_fill(self, fill: Fill) -> None:
        self._log.info("fill: %s %g %s at %.4f, order %s", fill.side.value, fill.qty, fill.symbol, fill.price,
                       fill.client_order_id)
        # occurred is left to now: a replayed fill's own time is years back, and Automations
        # and the event feed look at recent events; the fill's time is in the payload.
        payload = {"symbol": fill.symbol, "side": fill.side.value, "qty": fill.qty, "price": fill.price,
                   "commission": fill.commission, "ts": fill.ts.isoformat(), "client_order_id": fill.client_order_id,
                   "fill_id": fill.fill_id, "broker": fill.broker}
        self._safely("event", lambda: emit_event(FILL_EVENT, resource=session_resource(self._session_id),
                                                 payload=payload))

    def on_guard(self, guard: Guard, engaged: bool, reason: str) -> None:
        self._log.warning("%s %s: %s", guard.value, "engaged" if engaged else "released", reason)
        name = GUARD_EVENTS.get((guard, engaged))
        if name is None:  # the breaker only trips; its lock is let go as the day lock
            return
        self._safely("event", lambda: emit_event(name, resource=session_resource(self._session_id),
                                                 payload={"guard": guard.value, "engaged": engaged, "reason": reason}))

    def on_finish(self, report: SessionReport, view: SessionView) -> None:
        self._send_progress(100.0, f"{report.session_id}: {report.status}, {report.cycles} cycles")
        self._publish_book(view, final=True)
        self._safely("report", lambda: publish(report, self.where, view))
        self.published.add(report.session_id)

    # -- Prefect's API -------------------------------------------------------------------------------

    def _send_progress(self, percent: float, words: str) -> None:
        progress = self._progress
        if progress is None:
            return
        self._progress_sent = time.monotonic()
        self._safely("progress", lambda: update_progress_artifact(progress, percent, description=words))

    def _publish_book(self, view: SessionView, *, final: bool) -> None:
        self._booked, self._booked_at = view.book(), view.time
        when = f"{view.time.astimezone(NEW_YORK):%Y-%m-%d %H:%M} New York"
        words = f"{view.session_id}: {'at the close' if final else 'cycle'} {view.cycle} of {view.cycles}, {when}"
        self._safely("book", lambda: create_table_artifact(book_rows(view), key=BOOK_KEY, description=words))

    def _safely(self, what: str, call: Callable[[], T]) -> T | None:
        """Run one call to Prefect; a failure is logged once per kind (`what`) and trading goes on."""
        try:
            return call()
        except Exception as exc:
            if what not in self._failed:
                self._failed.add(what)
                log.warning("the trading session's %s could not be sent to Prefect (%s); trading goes on, "
                            "further failures of it are not logged", what, type(exc).__name__)
            return None


def _run_logger() -> logging.Logger | logging.LoggerAdapter:
    """The flow run's logger, so fills and guards show on the run's Logs tab; else this module's."""
    try:
        return get_run_logger()
    except MissingContextError:
        return log


def publish(report: SessionReport, where: Path | None, view: SessionView | None = None) -> None:
    """The day's reconciliation in a markdown artifact."""
    create_markdown_artifact(day_markdown(report, where, view), key=REPORT_KEY, description=report.session_id)
