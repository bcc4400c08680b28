"""A replayed trading day as the Prefect UI shows it while it runs: its progress, its book
refreshed through the day, the final reconciliation `tapeflow sessions` agrees with, and the
fill events an Automation can trigger on (read back from the harness's own event store)."""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import date, datetime
from uuid import UUID

import polars as pl
import pytest

from flows.ingest import ingest_bars
from flows.session_view import BOOK_KEY, FILL_EVENT, PROGRESS_KEY, REPORT_KEY, PrefectSessionView
from flows.trade import trade_session
from tapeflow.calendar.exchange import NEW_YORK
from tapeflow.config import load_settings
from tapeflow.live.observer import Guard, SessionView
from tapeflow.live.recorded import list_sessions
from tapeflow.model import Timeframe
from warehouse import Warehouse, open_warehouse

pytestmark = pytest.mark.slow

DAY = date(2011, 3, 3)  # as test_trade.py: 2011-03-01, the first bundled day, makes no trade
EVENTS_WAIT_S = 60  # the harness's event persister writes in batches, every few seconds


def _artifacts(client, key: str, flow_run_id: UUID) -> list:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import ArtifactSort

    return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                 flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                                 sort=ArtifactSort.CREATED_DESC)


def _fill_events(client, session_id: str, run_id, expected: int) -> list:
    """The fill events of this run of the session once the server has stored `expected` of them
    (or what it has when the wait ends); another test's replay of the same day shares the server."""
    from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter, EventResourceFilter
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all()  # what this process still holds goes to the server now
    wanted = EventFilter(event=EventNameFilter(name=[FILL_EVENT]),
                         resource=EventResourceFilter(id=[f"tapeflow.session.{session_id}"]),
                         related=EventRelatedFilter(id=[f"prefect.flow-run.{run_id}"]))
    deadline = time.monotonic() + EVENTS_WAIT_S
    while True:
        events = client.read_events(filter=wanted, limit=50).events
        if len(events) >= expected or time.monotonic() > deadline:
            return sorted(events, key=lambda e: e.payload["ts"])
        time.sleep(0.5)


@pytest.mark.usefixtures("prefect_harness")
def test_a_replayed_day_shows_progress_book_report_and_fills_in_prefect(tapeflow_home):
    from prefect import get_client

    ingest_bars(source="replay", symbols=["SPY"], timeframe=Timeframe.MINUTE, start=date(2011, 3, 1), end=date(2011, 3, 4))
    state = trade_session(strategy="opening_range", replay_day=DAY, stop_loss_pct=0.005, return_state=True)
    result = state.result()
    assert result["status"] == "finished" and result["fills"] >= 2
    sid, run_id = result["session_id"], state.state_details.flow_run_id
    replay = Warehouse(result["warehouse"])
    with replay.read() as con:
        fills = con.execute("SELECT ts, symbol, side, qty, price FROM fills ORDER BY ts, fill_id").fetchall()
    [listed] = list_sessions(load_settings(), open_warehouse(load_settings()), 50).sessions.filter(
        pl.col("session_id") == sid).iter_rows(named=True)

    with get_client(sync_client=True) as client:
        [progress] = _artifacts(client, PROGRESS_KEY, run_id)
        assert progress.data == 100

        # The book: versions of one key, through the day; each one's positions are the fills before it.
        books = _artifacts(client, BOOK_KEY, run_id)
        assert len(books) >= 5
        for book in books:
            at = datetime.strptime(re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d) New York", book.description)[1],
                                   "%Y-%m-%d %H:%M").replace(tzinfo=NEW_YORK)
            rows = json.loads(book.data)
            held: dict[str, float] = {}
            for ts, symbol, side, qty, _ in fills:
                if ts < at:
                    held[symbol] = held.get(symbol, 0.0) + (qty if side == "buy" else -qty)
            assert {r["symbol"]: r["qty"] for r in rows if r["item"] == "position"} == {
                s: q for s, q in held.items() if q}, book.description
        assert any(r["item"] == "position" for b in books for r in json.loads(b.data))  # the day did hold SPY
        closing = {r["item"]: r["pnl"] for r in json.loads(books[0].data)}
        assert "at the close" in books[0].description
        assert closing["realized P&L"] == pytest.approx(listed["realized_pnl"], abs=0.005)
        assert closing["equity"] == pytest.approx(result["equity_end"], abs=0.005)

        # The day's reconciliation says what `tapeflow sessions` says about it.
        [report] = _artifacts(client, REPORT_KEY, run_id)
        table = dict(re.findall(r"^\| (\w+) \| (.+) \|$", report.data, re.M))
        assert float(table["realized_pnl"].replace(",", "")) == pytest.approx(listed["realized_pnl"], abs=0.005)
        assert int(table["fills"]) == listed["fills"] == len(fills)
        assert int(table["orders_sent"]) == listed["orders"]
        assert table["status"] == listed["status"] and table["reconciled"] == str(listed["reconciled"])

        # A fill event per fill, about the session, with what was traded.
        events = _fill_events(client, sid, run_id, len(fills))
        assert [(e.payload["symbol"], e.payload["side"], e.payload["qty"], e.payload["price"]) for e in events] == [
            (symbol, side, qty, price) for _, symbol, side, qty, price in fills]
        assert {e.resource.id for e in events} == {f"tapeflow.session.{sid}"}


def test_a_prefect_api_that_fails_never_stops_the_session(caplog, monkeypatch):
    """No server behind PREFECT_API_URL: every call fails, one warning per kind, nothing raised."""
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    view = PrefectSessionView()
    moment = datetime(2011, 3, 1, 10, 0, tzinfo=NEW_YORK)
    book = SessionView("s:1", moment, 1, 10, 100.0, 100.0, 0.0, 0.0, (), ())
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api", PREFECT_CLIENT_MAX_RETRIES: 0}), \
            caplog.at_level(logging.WARNING, logger="flows.session_view"):
        view.on_start("s:1", DAY, 10)
        for _ in range(3):
            view.on_cycle(book)
        view.on_guard(Guard.KILL_SWITCH, True, "operator")
    lines = [r.getMessage() for r in caplog.records if r.name == "flows.session_view"]
    warned = [line for line in lines if "could not be sent" in line]
    assert len(warned) == len(set(warned)) >= 2 and all("trading goes on" in w for w in warned)
    assert "kill-switch engaged: operator" in lines  # with no flow run, the day's lines go to the module's log
