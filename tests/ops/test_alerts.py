"""Tests for tapeflow.ops.alerts against a real local HTTP receiver."""

from __future__ import annotations

import logging
import socket
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tapeflow.ops import alerts
from tapeflow.ops.alerts import (
    Alert,
    AlertChannel,
    AlertDeliveryError,
    LogChannel,
    WebhookChannel,
    redact_url,
)
from tests.fakes.webhook_receiver import WebhookReceiver

SECRET_SUFFIX = "/T000/B000/s3cr3tTOKEN?token=abc"


def make_alert(**overrides: object) -> Alert:
    fields: dict[str, object] = {
        "component": "flow:ingest-bars",
        "severity": "warning",
        "title": "Bars late",
        "message": "no bars for AAPL since 14:30",
        "context": {"run_id": "r-123", "symbols": ["AAPL"]},
    }
    fields.update(overrides)
    return Alert(**fields)  # type: ignore[arg-type]


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assert_no_secret(text: str) -> None:
    assert "s3cr3tTOKEN" not in text
    assert "abc" not in text
    assert "T000" not in text


# -- Alert ---------------------------------------------------------------------------


def test_payload_content_and_iso_utc_time() -> None:
    at = datetime(2024, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=-5)))
    payload = make_alert(at=at).to_payload()
    assert payload == {
        "component": "flow:ingest-bars",
        "severity": "warning",
        "title": "Bars late",
        "message": "no bars for AAPL since 14:30",
        "context": {"run_id": "r-123", "symbols": ["AAPL"]},
        "at": "2024-03-01T14:30:00+00:00",
    }
    assert datetime.fromisoformat(payload["at"]).utcoffset() == timedelta(0)  # type: ignore[arg-type]


def test_default_time_is_aware_utc_now() -> None:
    before = datetime.now(UTC)
    alert = Alert(component="c", severity="info", title="t", message="m")
    assert alert.at.tzinfo is UTC
    assert before <= alert.at <= datetime.now(UTC)
    assert alert.to_payload()["context"] == {}


def test_invalid_severity_raises() -> None:
    with pytest.raises(ValueError, match="severity"):
        make_alert(severity="error")


def test_naive_time_rejected() -> None:
    with pytest.raises(ValueError, match="at is a naive timestamp"):
        make_alert(at=datetime(2024, 1, 1))


def test_context_is_snapshotted() -> None:
    ctx = {"run_id": "r-1"}
    alert = make_alert(context=ctx)
    ctx["run_id"] = "mutated"
    assert alert.to_payload()["context"] == {"run_id": "r-1"}
    hash(alert)  # frozen alert stays hashable despite the mapping field


# -- redact_url ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://hooks.slack.com/services/T0/B0/XXXX", "https://hooks.slack.com/…"),
        ("http://127.0.0.1:8080/hook?token=abc", "http://127.0.0.1:8080/…"),
        ("https://user:pw@example.com:8443/", "https://example.com:8443"),
        ("https://example.com", "https://example.com"),
        ("https://[::1]:9000/x", "https://[::1]:9000/…"),
        ("not a url", "<invalid url>"),
        ("http://host:notaport/x", "<invalid url>"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


# -- WebhookChannel ------------------------------------------------------------------


def test_webhook_posts_one_json_body_with_text() -> None:
    alert = make_alert()
    with WebhookReceiver() as rx:
        WebhookChannel(rx.url, backoff=0.01).send(alert)
        (req,) = rx.wait_for(1)
        time.sleep(0.05)  # give a stray duplicate a chance to show up
        assert len(rx.received) == 1
    assert req.method == "POST"
    assert req.path == "/hook"
    assert req.headers["Content-Type"] == "application/json"
    assert req.json == {**alert.to_payload(), "text": "[warning] Bars late: no bars for AAPL since 14:30"}


def test_webhook_retries_5xx_then_succeeds() -> None:
    with WebhookReceiver(fail_first=2, fail_status=503) as rx:
        WebhookChannel(rx.url, attempts=3, backoff=0.01).send(make_alert())
        received = rx.wait_for(3)
    assert [r.status for r in received] == [503, 503, 200]
    assert received[0].json == received[2].json


def test_webhook_gives_up_after_attempts_and_hides_secret() -> None:
    with WebhookReceiver(fail_first=5, fail_status=503) as rx:
        channel = WebhookChannel(f"{rx.url}{SECRET_SUFFIX}", attempts=3, backoff=0.01)
        with pytest.raises(AlertDeliveryError) as info:
            channel.send(make_alert())
        assert len(rx.received) == 3
        assert rx.received[0].path == "/hook" + SECRET_SUFFIX  # the secret did reach the server
        port = rx.port
    err = info.value
    assert f"127.0.0.1:{port}" in str(err)
    assert "503" in str(err)
    assert err.attempts == 3 and err.status == 503
    assert_no_secret(str(err))
    assert_no_secret(repr(err))
    assert_no_secret(repr(channel))
    assert f"http://127.0.0.1:{port}" in repr(channel)
    # A chained requests exception would print the full URL in tracebacks.
    assert err.__cause__ is None and err.__context__ is None


def test_webhook_retries_429_and_honours_retry_after() -> None:
    with WebhookReceiver(fail_first=1, fail_status=429, retry_after="0.3") as rx:
        start = time.monotonic()
        WebhookChannel(rx.url, attempts=2, backoff=0.01).send(make_alert())
        elapsed = time.monotonic() - start
        assert [r.status for r in rx.wait_for(2)] == [429, 200]
    assert elapsed >= 0.3


def test_retry_after_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(alerts, "_sleep", waits.append)
    with WebhookReceiver(fail_first=2, fail_status=429, retry_after=3600) as rx:
        WebhookChannel(rx.url, attempts=3, backoff=0.01).send(make_alert())
        rx.wait_for(3)
    assert waits == [alerts.MAX_RETRY_DELAY_S, alerts.MAX_RETRY_DELAY_S]


def test_backoff_is_exponential(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(alerts, "_sleep", waits.append)
    with WebhookReceiver(fail_first=9, fail_status=500) as rx:
        with pytest.raises(AlertDeliveryError):
            WebhookChannel(rx.url, attempts=4, backoff=0.01).send(make_alert())
        assert len(rx.received) == 4
    assert waits == pytest.approx([0.01, 0.02, 0.04])


def test_webhook_4xx_fails_immediately() -> None:
    with WebhookReceiver(fail_first=5, fail_status=400) as rx:
        channel = WebhookChannel(f"{rx.url}{SECRET_SUFFIX}", attempts=3, backoff=0.01)
        with pytest.raises(AlertDeliveryError, match="400") as info:
            channel.send(make_alert())
        time.sleep(0.05)
        assert len(rx.received) == 1
    assert info.value.attempts == 1
    assert_no_secret(str(info.value))


def test_connection_refused_raises_delivery_error() -> None:
    port = closed_port()
    channel = WebhookChannel(f"http://127.0.0.1:{port}/hook{SECRET_SUFFIX}", attempts=2, backoff=0.01)
    with pytest.raises(AlertDeliveryError, match="connection failed") as info:
        channel.send(make_alert())
    assert f"127.0.0.1:{port}" in str(info.value)
    assert_no_secret(str(info.value))
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_read_timeout_is_retried_then_raises() -> None:
    # A listening socket that never accepts: the connect succeeds, the response never comes.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        channel = WebhookChannel(f"http://127.0.0.1:{port}{SECRET_SUFFIX}", timeout=0.2, attempts=2, backoff=0.01)
        with pytest.raises(AlertDeliveryError, match="timed out") as info:
            channel.send(make_alert())
    assert info.value.attempts == 2
    assert_no_secret(str(info.value))


@pytest.mark.parametrize("url", ["ftp://example.com/x", "hooks.slack.com/services/x", ""])
def test_webhook_rejects_non_http_url(url: str) -> None:
    with pytest.raises(ValueError):
        WebhookChannel(url)


def test_webhook_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        WebhookChannel("http://example.com", attempts=0)
    with pytest.raises(ValueError):
        WebhookChannel("http://example.com", timeout=0)


def test_invalid_url_error_does_not_echo_secret() -> None:
    with pytest.raises(ValueError) as info:
        WebhookChannel("ftp://example.com/s3cr3tTOKEN?token=abc")
    assert_no_secret(str(info.value))


# -- LogChannel ----------------------------------------------------------------------


def test_log_channel_logs_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="tapeflow.alerts"):
        LogChannel().send(make_alert(severity="warning"))
    (record,) = [r for r in caplog.records if r.name == "tapeflow.alerts"]
    assert record.levelno == logging.WARNING
    assert "[warning] Bars late: no bars for AAPL since 14:30" in record.getMessage()
    assert record.alert["context"] == {"run_id": "r-123", "symbols": ["AAPL"]}  # type: ignore[attr-defined]


@pytest.mark.parametrize(("severity", "level"), [("info", logging.INFO), ("critical", logging.CRITICAL)])
def test_log_channel_level_by_severity(caplog: pytest.LogCaptureFixture, severity: str, level: int) -> None:
    with caplog.at_level(logging.DEBUG, logger="tapeflow.alerts"):
        LogChannel().send(make_alert(severity=severity))
    assert [r.levelno for r in caplog.records if r.name == "tapeflow.alerts"] == [level]


def test_channels_satisfy_protocol() -> None:
    assert isinstance(LogChannel(), AlertChannel)
    assert isinstance(WebhookChannel("https://example.com/hook"), AlertChannel)


# -- the fake itself -----------------------------------------------------------------


def test_receiver_wait_for_times_out_and_lifetime_cap_stops_it() -> None:
    rx = WebhookReceiver(max_lifetime=0.2).start()
    try:
        with pytest.raises(AssertionError, match="expected 1"):
            rx.wait_for(1, timeout=0.05)
        deadline = time.monotonic() + 3.0
        while rx.running and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not rx.running
    finally:
        rx.stop()


def test_http_debug_logs_do_not_show_the_webhook_path(caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="urllib3")
    with WebhookReceiver() as rx:
        WebhookChannel(f"{rx.url}/T000/B000/s3cr3tTOKEN?token=abc").send(Alert("c", "info", "t", "m"))
        rx.wait_for(1)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]
    assert any("POST /…" in line for line in lines)
    assert not any("s3cr3tTOKEN" in line or "token=abc" in line for line in lines)
