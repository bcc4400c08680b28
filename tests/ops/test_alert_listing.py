"""`tapeflow alerts` on an 80-column terminal: every line fits, keys and ids are whole, and a
delivered alert shows the repeats its window suppressed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from tapeflow.cli.console import out
from tapeflow.cli.main import app
from tapeflow.ops.alert_book import AlertBook
from tapeflow.ops.alerts import Alert, LogChannel

T0 = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)
KEY = "flow_failed:ingest-bars/minute-during-session:error:VendorAuthError"
RUN_ID = "0b7f3c2e-9d41-4f5a-8e2b-1c6d7a9e4f30"


def failing_ingest(at: datetime) -> Alert:
    return Alert(component="flow:ingest-bars", severity="critical", at=at,
                 title="ingest-bars/minute-during-session failed: error (scheduled run, VendorAuthError)",
                 message=f"polygon refused the key (HTTP 401): check TAPEFLOW_POLYGON_API_KEY; flow run {RUN_ID}")


def test_alerts_fit_80_columns_with_ids_whole_and_repeats_shown(warehouse, monkeypatch) -> None:
    book = AlertBook(warehouse, LogChannel(), timedelta(minutes=30))
    for minutes in (0, 3, 7):
        book.raise_alert(failing_ingest(T0 + timedelta(minutes=minutes)), KEY)
    book.summarise_closed(T0 + timedelta(minutes=31))
    monkeypatch.setattr(out, "width", 80)
    runner = CliRunner()

    listed = runner.invoke(app, ["alerts"])
    assert listed.exit_code == 0, listed.output
    lines = [line.rstrip() for line in listed.output.splitlines()]
    assert max(len(line) for line in lines) <= 80
    assert f"  {KEY}" in lines and f"  repeats:{KEY}" in lines  # each key on a line of its own, whole
    assert any(RUN_ID in line for line in lines)
    assert "2024-03-04 15:00:00  critical  flow_failed  +2 repeats" in lines
    assert "2 alerts (UTC)" in lines  # the suppressed repeats are counted, not listed

    everything = runner.invoke(app, ["alerts", "--suppressed", "--format", "json"])
    rows = json.loads(everything.output)
    assert [(r["alert_key"], r["delivered"].split(":")[0], r["repeats"]) for r in rows] == [
        (f"repeats:{KEY}", "log", 0), (KEY, "suppressed", 0), (KEY, "suppressed", 0), (KEY, "log", 2)]
    assert rows[-1]["last_repeat_at"] == "2024-03-04T15:07:00+00:00"
    assert rows[-1]["summarised_at"] == "2024-03-04T15:31:00+00:00"
