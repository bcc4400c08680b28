"""Alert formats (Slack, Discord) as the local webhook fake receives them, and the alert book:
deduplication by key within a window, repeats counted and summarised once the window closes,
every alert recorded with its fate, no secret kept; the flow failure hook's keys and severities."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from prefect import Flow, flow
from prefect.client.schemas.objects import FlowRun
from prefect.states import Crashed, Failed, State
from pydantic import ValidationError

from flows.hooks import alert_on_failure
from tapeflow.config import Settings
from tapeflow.ops.alert_book import AlertBook, book_from_settings
from tapeflow.ops.alerts import (
    Alert,
    LogChannel,
    WebhookChannel,
    channel_from_settings,
    format_payload,
)
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.warehouse_lock import lock_held
from warehouse import Warehouse

T0 = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)
SECRET = "s3cr3t-T0KEN-77"


def alert(at: datetime = T0, **overrides: object) -> Alert:
    fields: dict[str, object] = dict(component="trade_session:momo", severity="critical", title="momo: session not "
                                     "responding", message="last heartbeat 4 min 0 s ago", at=at)
    return Alert(**{**fields, **overrides})  # type: ignore[arg-type]


def rows(warehouse: Warehouse) -> list[tuple]:
    with warehouse.read() as con:
        return con.execute("SELECT alert_key, ts, kind, severity, title, message, delivered FROM alerts "
                           "ORDER BY ts, alert_key").fetchall()


# -- formats -----------------------------------------------------------------------------


def test_slack_body_as_received() -> None:
    with WebhookReceiver() as rx:
        WebhookChannel(rx.url, fmt="slack", backoff=0.01).send(alert(message="ping <!channel> & <@U123>"))
        [body] = [r.json for r in rx.wait_for(1)]
    assert body["text"] == "[critical] momo: session not responding: ping &lt;!channel&gt; &amp; &lt;@U123&gt;"
    header, section, context = body["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "momo: session not responding"}}
    assert section["text"] == {"type": "mrkdwn", "text": "ping &lt;!channel&gt; &amp; &lt;@U123&gt;"}
    assert context["elements"][0]["text"] == "*critical* · trade_session:momo · 2024-03-04T15:00:00+00:00"
    assert set(body) == {"text", "blocks"}


def test_discord_body_as_received_and_clipped() -> None:
    with WebhookReceiver() as rx:
        WebhookChannel(rx.url, fmt="discord", backoff=0.01).send(alert(severity="warning", message="x" * 5000))
        [body] = [r.json for r in rx.wait_for(1)]
    assert body["content"].startswith("[warning] momo: session not responding: xxx") and len(body["content"]) == 2000
    assert body["allowed_mentions"] == {"parse": []}
    [embed] = body["embeds"]
    assert embed["title"] == "momo: session not responding" and len(embed["description"]) == 4096
    assert embed["color"] == 0xF1C40F and embed["timestamp"] == "2024-03-04T15:00:00+00:00"
    assert {f["name"]: f["value"] for f in embed["fields"]} == {"severity": "warning", "component": "trade_session:momo"}


def test_format_is_a_setting(tapeflow_home, monkeypatch) -> None:
    monkeypatch.setenv("TAPEFLOW_ALERT_WEBHOOK_URL", "https://hooks.example.test/T0/B0/xyz")
    monkeypatch.setenv("TAPEFLOW_ALERT_FORMAT", "discord")
    channel = channel_from_settings(Settings())
    assert isinstance(channel, WebhookChannel) and channel.name == "webhook:discord"
    assert "xyz" not in repr(channel)
    monkeypatch.setenv("TAPEFLOW_ALERT_FORMAT", "teams")
    with pytest.raises(ValidationError, match="alert_format"):
        Settings()
    with pytest.raises(ValueError, match="alert format"):
        format_payload(alert(), "teams")
    with pytest.raises(ValueError, match="alert format"):
        WebhookChannel("https://example.com", fmt="teams")


# -- the book ----------------------------------------------------------------------------


def test_same_key_is_delivered_once_per_window_and_always_recorded(warehouse) -> None:
    key = "missing_heartbeat:trade_session:momo:2024-03-04"
    with WebhookReceiver() as rx:
        book = AlertBook(warehouse, WebhookChannel(rx.url, fmt="slack", backoff=0.01), timedelta(minutes=30))
        outcomes = [book.raise_alert(alert(T0 + timedelta(minutes=m)), key) for m in (0, 1, 29)]
        other = book.raise_alert(alert(T0 + timedelta(minutes=2), title="other"), "stale_data:bars:1m:alpaca:2024-03-04")
        again = book.raise_alert(alert(T0 + timedelta(minutes=30)), key)  # the window has passed
        received = rx.wait_for(4)
    assert [o.status for o in outcomes] == ["delivered", "suppressed", "suppressed"]
    assert other.delivered and again.delivered and other.kind == "stale_data"
    # The closed window's two repeats are told in one summary, just before the new alert.
    assert [r.json["blocks"][0]["text"]["text"] for r in received] == [
        "momo: session not responding", "other", "2 repeats of momo: session not responding suppressed",
        "momo: session not responding"]
    recorded = rows(warehouse)
    assert [(r[0].split(":")[0], r[1] - T0, r[6].split(":")[0]) for r in recorded] == [
        ("missing_heartbeat", timedelta(0), "webhook"),
        ("missing_heartbeat", timedelta(minutes=1), "suppressed"),
        ("stale_data", timedelta(minutes=2), "webhook"),
        ("missing_heartbeat", timedelta(minutes=29), "suppressed"),
        ("missing_heartbeat", timedelta(minutes=30), "webhook"),
        ("repeats", timedelta(minutes=30), "webhook"),
    ]
    assert recorded[1][6] == "suppressed: delivered 2024-03-04T15:00:00+00:00 within the 30 min window"
    assert recorded[0][2] == "missing_heartbeat" and recorded[0][3] == "critical"


def repeats(warehouse: Warehouse, key: str) -> list[tuple]:
    with warehouse.read() as con:
        return con.execute("SELECT ts, repeats, last_repeat_at, summarised_at FROM alerts WHERE alert_key = ? "
                           "AND NOT starts_with(delivered, 'suppressed:') ORDER BY ts", [key]).fetchall()


def test_repeats_are_counted_and_the_monitor_summarises_a_closed_window_once(warehouse) -> None:
    key = "flow_failed:ingest-bars/daily-after-close:error:VendorError"
    with WebhookReceiver() as rx:
        book = AlertBook(warehouse, WebhookChannel(rx.url, backoff=0.01), timedelta(minutes=30))
        statuses = [book.raise_alert(alert(T0 + timedelta(minutes=m)), key).status for m in (0, 4, 4, 11)]
        assert repeats(warehouse, key) == [(T0, 2, T0 + timedelta(minutes=11), None)]  # the same instant is one event
        open_window = book.summarise_closed(T0 + timedelta(minutes=29, seconds=59))
        [summary] = book.summarise_closed(T0 + timedelta(minutes=30))
        later = book.summarise_closed(T0 + timedelta(minutes=45))
        [first, told] = rx.wait_for(2)
    assert statuses == ["delivered", "suppressed", "suppressed", "suppressed"]
    assert open_window == [] and later == []  # nothing before the window closes, and only once after
    assert summary.delivered and summary.kind == "repeats" and summary.key == f"repeats:{key}"
    assert told.json["severity"] == "info" and told.json["component"] == first.json["component"]
    assert told.json["message"] == (f"2 repeats of {key} suppressed between 2024-03-04T15:00:00+00:00 (when it was "
                                    "sent) and 2024-03-04T15:11:00+00:00")
    assert repeats(warehouse, key) == [(T0, 2, T0 + timedelta(minutes=11), T0 + timedelta(minutes=30))]
    # A new window after the summary starts counting again.
    with WebhookReceiver() as rx:
        book = AlertBook(warehouse, WebhookChannel(rx.url, backoff=0.01), timedelta(minutes=30))
        assert book.raise_alert(alert(T0 + timedelta(minutes=50)), key).delivered
        assert [r.json["title"] for r in rx.wait_for(1)] == ["momo: session not responding"]  # no second summary
    assert repeats(warehouse, key)[-1] == (T0 + timedelta(minutes=50), 0, None, None)


def test_a_window_without_repeats_needs_no_summary(warehouse) -> None:
    with WebhookReceiver() as rx:
        book = AlertBook(warehouse, WebhookChannel(rx.url, backoff=0.01), timedelta(minutes=30))
        book.raise_alert(alert(), "k:1")
        assert book.summarise_closed(T0 + timedelta(hours=1)) == []
        assert book.raise_alert(alert(T0 + timedelta(hours=1)), "k:1").delivered
        assert len(rx.wait_for(2)) == 2


def test_a_failed_delivery_is_recorded_and_tried_again(warehouse, caplog) -> None:
    key = "broker_disconnected:broker:alpaca:paper:2024-03-04"
    with WebhookReceiver(fail_first=1, fail_status=400) as rx:
        book = AlertBook(warehouse, WebhookChannel(f"{rx.url}/{SECRET}", backoff=0.01), secrets=[SECRET])
        with caplog.at_level(logging.DEBUG, logger="tapeflow.alerts"):
            failed = book.raise_alert(alert(), key)
            retried = book.raise_alert(alert(T0 + timedelta(minutes=1)), key)
        assert [r.status for r in rx.wait_for(2)] == [400, 200]
    assert failed.status == "failed" and retried.delivered  # a failure does not start a window
    [first, second] = rows(warehouse)
    assert first[6].startswith("failed: webhook:generic: alert delivery to http://127.0.0.1:") and "HTTP 400" in first[6]
    assert second[6] == "webhook:generic"
    assert "could not deliver alert" in caplog.text and SECRET not in caplog.text


def test_secrets_are_scrubbed_from_what_is_sent_and_stored(warehouse) -> None:
    with WebhookReceiver() as rx:
        book = AlertBook(warehouse, WebhookChannel(rx.url, backoff=0.01), secrets=[SECRET, ""])
        book.raise_alert(alert(title=f"bad key {SECRET}", message=f"401 for {SECRET}", context={"k": SECRET}), "k:1")
        [body] = rx.bodies
    assert SECRET not in json.dumps(body) and body["message"] == "401 for **********"
    assert SECRET not in json.dumps(rows(warehouse), default=str)


def test_an_unusable_warehouse_does_not_stop_the_alert(tmp_path, caplog) -> None:
    blocked = tmp_path / "a-directory.duckdb"
    blocked.mkdir()  # DuckDB cannot open a directory as its file
    with WebhookReceiver() as rx:
        outcome = AlertBook(Warehouse(blocked, lock_timeout_s=0.1), WebhookChannel(rx.url, backoff=0.01)).raise_alert(
            alert(), "flow_failed:x:failed")
        rx.wait_for(1)
    assert outcome.delivered and not outcome.recorded
    assert "could not record alert flow_failed:x:failed" in caplog.text


def test_a_busy_warehouse_delays_an_alert_by_seconds_not_the_lock_timeout(tmp_path, caplog) -> None:
    warehouse = Warehouse(tmp_path / "w.duckdb", lock_timeout_s=60)  # a live session's patience for its own writes
    with warehouse.write():
        pass
    with lock_held(warehouse.path, 60), WebhookReceiver() as rx:  # a long query holds the file
        started = time.monotonic()
        outcome = AlertBook(warehouse, WebhookChannel(rx.url, backoff=0.01)).raise_alert(alert(), "warehouse_busy:x")
        took = time.monotonic() - started
        rx.wait_for(1)
    assert outcome.delivered and not outcome.recorded
    assert took < 20, f"the alert waited {took:.0f} s on the warehouse"  # 2 x BOOK_WAIT_S, not 2 x 60 s


def test_bad_keys_and_windows_are_refused(warehouse) -> None:
    with pytest.raises(ValueError, match="key"):
        AlertBook(warehouse, LogChannel()).raise_alert(alert(), " ")
    with pytest.raises(ValueError, match="window"):
        AlertBook(warehouse, LogChannel(), timedelta(seconds=-1))


# -- flow failure hooks ------------------------------------------------------------------


@flow(name="trade-session")
def trade_session_stand_in() -> None:
    """Only its name matters: the hook reads flow.name."""


def failed_run(raised: BaseException | None = None, *, crashed: bool = False) -> tuple[Flow, FlowRun, State]:
    run = FlowRun(flow_id=uuid4(), name="brave-otter", parameters={"strategy": "momo", "key": SECRET})
    raised = raised or broker_refused()
    if crashed:
        return trade_session_stand_in, run, Crashed(message=f"crashed: {raised!r}", data=raised)
    return trade_session_stand_in, run, Failed(message=f"HTTP 401 with key {SECRET}", data=raised)


def broker_refused() -> BaseException:
    try:
        raise RuntimeError(f"HTTP 401 with key {SECRET}")
    except RuntimeError as exc:  # raised, so it carries the traceback a run's exception has
        return exc


def typo() -> BaseException:
    try:
        raise ValueError("unknown strategy 'momoo'")
    except ValueError as exc:
        return exc


def test_flow_failures_go_through_the_book(settings, warehouse, monkeypatch) -> None:
    monkeypatch.setenv("TAPEFLOW_ALPACA_SECRET_KEY", SECRET)
    monkeypatch.setenv("TAPEFLOW_ALERT_FORMAT", "discord")
    with WebhookReceiver() as rx:
        monkeypatch.setenv("TAPEFLOW_ALERT_WEBHOOK_URL", f"{rx.url}/hook-token-9")
        alert_on_failure(*failed_run())
        alert_on_failure(*failed_run())  # the same failure again within the window
        [body] = rx.wait_for(1)
    assert body.json["content"] == ("[critical] trade-session failed: error (ad hoc run, RuntimeError): "
                                    "HTTP 401 with key **********")
    recorded = rows(warehouse)
    key = "flow_failed:trade-session:error:RuntimeError"
    assert [(r[0], r[2], r[6].split(": ")[0]) for r in recorded] == [
        (key, "flow_failed", "webhook:discord"), (key, "flow_failed", "suppressed")]
    assert repeats(warehouse, key)[0][1] == 1
    stored = json.dumps(recorded, default=str)
    assert SECRET not in stored and "hook-token-9" not in stored


def test_different_failures_of_one_flow_each_alert_within_the_window(settings, warehouse, monkeypatch) -> None:
    with WebhookReceiver() as rx:
        monkeypatch.setenv("TAPEFLOW_ALERT_WEBHOOK_URL", rx.url)
        for raised in (broker_refused(), typo(), json_error(), broker_refused()):
            alert_on_failure(*failed_run(raised))
        alert_on_failure(*failed_run(KeyboardInterrupt(), crashed=True))
        bodies = [r.json for r in rx.wait_for(4)]
    assert [(b["severity"], b["title"]) for b in bodies] == [
        ("critical", "trade-session failed: error (ad hoc run, RuntimeError)"),
        ("info", "trade-session failed: bad input (ad hoc run, ValueError)"),
        ("critical", "trade-session failed: error (ad hoc run, JSONDecodeError)"),  # a library's ValueError
        ("info", "trade-session crashed: interrupted (ad hoc run, KeyboardInterrupt)"),
    ]
    assert bodies[1]["context"]["cause"] == "bad input" and bodies[1]["context"]["origin"] == "ad hoc"
    assert [r[6].split(":")[0] for r in rows(warehouse)].count("suppressed") == 1  # the second RuntimeError


def json_error() -> BaseException:
    try:
        json.loads("<html>")
    except ValueError as exc:
        return exc
    raise AssertionError("json.loads accepted html")


def test_a_mistyped_webhook_url_falls_back_to_the_log(settings, warehouse, monkeypatch, caplog) -> None:
    monkeypatch.setenv("TAPEFLOW_ALERT_WEBHOOK_URL", "hooks.example.test/secret-token")
    alert_on_failure(*failed_run())  # never raises; the alert still goes somewhere and is recorded
    assert "alert webhook unusable" in caplog.text and "secret-token" not in caplog.text
    assert "[critical] trade-session failed" in caplog.text
    assert [r[6] for r in rows(warehouse)] == ["log"]
    book = book_from_settings(Settings(alert_dedup_window_s=0), warehouse)
    assert book.window == timedelta(0) and isinstance(book.channel, LogChannel)


def test_flow_failure_hook_never_raises(settings, monkeypatch, caplog) -> None:
    settings.home.mkdir(parents=True)
    settings.warehouse_path.mkdir()  # the warehouse cannot be opened at all
    monkeypatch.setenv("TAPEFLOW_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/secret-token")
    alert_on_failure(*failed_run())
    assert "could not deliver alert" in caplog.text and "could not record alert" in caplog.text
    assert "secret-token" not in caplog.text
