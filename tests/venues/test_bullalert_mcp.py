"""BullAlertMcpSource through the official MCP SDK's client against the fake BullAlert MCP
server (the SDK's own server, streamable HTTP on 127.0.0.1): the same snapshots as the REST
source, the same checks and quarantine, tool errors, credentials, timeouts, and the CLI."""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import requests
from pydantic import SecretStr
from typer.testing import CliRunner

from tapeflow.cli.main import app
from tapeflow.config import Settings
from tapeflow.ingest.watchlist import check_watchlist
from tapeflow.schemas import WATCHLIST_SCHEMA
from tapeflow.sources import WATCHLIST_SOURCE_NAMES, WatchlistSource
from tapeflow.sources.http import HttpPolicy, VendorAuthError, VendorError, is_transient
from tapeflow.venues.bullalert import BullAlertSource
from tapeflow.venues.bullalert_mcp import BullAlertMcpSource
from tapeflow.venues.configured import watchlist_source
from tests.fakes.bullalert_mcp import FakeBullAlertMcp

KEY = "SEKRET-BA-mcp-5b1e0c"
T0 = datetime(2026, 3, 5, 13, 45, tzinfo=UTC)  # 08:45 New York, pre-market
T1 = T0 + timedelta(minutes=5)
NOW = datetime(2026, 3, 5, 14, 0, 2, tzinfo=UTC)
RAW_SCHEMA = {**WATCHLIST_SCHEMA, "payload": pl.String(), "problem": pl.String()}
FAST = HttpPolicy(timeout_s=5.0, attempts=3, backoff_s=0.0, jitter=0.0)

PRE = [("NVDA", 91.5), ("AMD", 80.0), ("TSLA", 77.25), ("PLTR", 60.0), ("SMCI", 12.0)]
PRE_LATER = [("AMD", 88.0), ("NVDA", 85.0), ("MARA", 70.5)]


@pytest.fixture
def fake() -> Iterator[FakeBullAlertMcp]:
    with FakeBullAlertMcp(KEY) as server:
        server.add_snapshot("pre_market", T0, PRE)
        server.add_snapshot("pre_market", T1, PRE_LATER)
        yield server


def make_settings(mcp_url: str, key: str | None = KEY, rest_url: str = "http://127.0.0.1:9") -> Settings:
    return Settings(bullalert_mcp_url=mcp_url, bullalert_url=rest_url,
                    bullalert_api_key=SecretStr(key) if key is not None else None)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def source(tapeflow_home: Path, fake: FakeBullAlertMcp, sleeps: list[float]) -> BullAlertMcpSource:
    return BullAlertMcpSource(make_settings(fake.url), policy=FAST, sleep=sleeps.append, clock=lambda: NOW)


def listing(frame: pl.DataFrame) -> list[tuple[str, int, float]]:
    return list(frame.select("ticker", "rank", "score").iter_rows())


def ranked(pairs: list[tuple[str, float]]) -> list[tuple[str, int, float]]:
    return [(t, n, s) for n, (t, s) in enumerate(pairs, start=1)]


# --- the same snapshots as the REST source ------------------------------------------------


def test_is_a_watchlist_source_named_bullalert_mcp(tapeflow_home: Path, fake: FakeBullAlertMcp) -> None:
    assert "bullalert-mcp" in WATCHLIST_SOURCE_NAMES
    made = watchlist_source("bullalert-mcp", make_settings(fake.url))
    assert isinstance(made, BullAlertMcpSource) and isinstance(made, WatchlistSource)
    assert made.name == "bullalert-mcp"
    for method in ("snapshot", "snapshots", "close"):
        expected = list(inspect.signature(getattr(WatchlistSource, method)).parameters)[1:]
        assert list(inspect.signature(getattr(made, method)).parameters) == expected, method
    with pytest.raises(ValueError, match="a universe scopes the scanner's lists only; bullalert-mcp sends its own"):
        watchlist_source("bullalert-mcp", make_settings(fake.url), universe="sp500-2010")


def test_rows_equal_the_rest_sources_but_for_the_source_name(tapeflow_home: Path, fake: FakeBullAlertMcp) -> None:
    with fake.lists:  # the REST fake serves the very same stored lists over HTTP
        settings = make_settings(fake.url, rest_url=fake.lists.url)
        rest = BullAlertSource(settings, policy=FAST, clock=lambda: NOW)
        mcp = BullAlertMcpSource(settings, policy=FAST, clock=lambda: NOW)
        asks: list[dict[str, object]] = [
            {}, {"session": "pre_market", "as_of": T0, "limit": 3}, {"session": "all"},
            {"session": "pre_market", "as_of": T0 + timedelta(minutes=2, seconds=30, microseconds=5)},
            {"session": "after_hours"},
        ]
        for ask in asks:
            by_rest, by_mcp = rest.snapshot(**ask), mcp.snapshot(**ask)  # type: ignore[arg-type]
            assert by_mcp.drop("source").equals(by_rest.drop("source")), ask  # payload_hash included
            assert set(by_mcp["source"]) <= {"bullalert-mcp"} and dict(by_mcp.schema) == RAW_SCHEMA
        walk = dict(session="pre_market", start=T0, end=T0 + timedelta(minutes=10), every=timedelta(minutes=2, seconds=30))
        assert mcp.history(**walk).drop("source").equals(rest.history(**walk).drop("source"))  # type: ignore[arg-type]
    assert fake.calls[:3] == [
        {"session": "current", "limit": 100},
        {"session": "pre_market", "limit": 3, "as_of": "2026-03-05T13:45:00Z"},
        {"session": "all", "limit": 100},
    ]
    assert fake.calls[3]["as_of"] == "2026-03-05T13:47:30.000005Z"


def test_live_snapshot_keeps_the_servers_session_and_as_of_and_the_fetch_time(source: BullAlertMcpSource) -> None:
    frame = source.snapshot()
    assert listing(frame) == ranked(PRE_LATER)
    assert frame.select("source", "session", "as_of", "fetched_at").unique().rows() == [
        ("bullalert-mcp", "pre_market", T1, NOW)
    ]
    assert frame["payload"][0] == '{"rank": 1, "score": 88.0, "ticker": "AMD"}'
    assert check_watchlist(frame).good.height == 3


def test_limit_session_and_naive_as_of_are_refused_before_any_call(source: BullAlertMcpSource, fake: FakeBullAlertMcp) -> None:
    with pytest.raises(ValueError, match=r"^bullalert-mcp limit must be an integer within 1\.\.100"):
        source.snapshot(limit=101)
    with pytest.raises(ValueError, match=r"^bullalert-mcp session must be one of pre_market, market, after_hours"):
        source.snapshot("regular")
    with pytest.raises(ValueError, match="naive timestamp"):
        source.snapshot(as_of=datetime(2026, 3, 5, 13, 45))
    assert fake.calls == []


# --- checks and quarantine --------------------------------------------------------------


def test_bad_rows_come_back_for_the_quarantine_and_the_rest_pass(source: BullAlertMcpSource, fake: FakeBullAlertMcp) -> None:
    fake.lists.set_score("pre_market", T0, "NVDA", 130.0)
    fake.lists.duplicate_ticker("pre_market", T0, "TSLA", score=99.0)
    checked = check_watchlist(source.snapshot("pre_market", as_of=T0))
    assert listing(checked.good) == [("AMD", 2, 80.0), ("PLTR", 4, 60.0), ("SMCI", 5, 12.0)]
    assert checked.rejected.rows() == [
        ("bullalert-mcp", "score must be within 0..100", '{"rank": 1, "score": 130.0, "ticker": "NVDA"}'),
        ("bullalert-mcp", "conflicting rank/score for the same ticker in one snapshot",
         '{"rank": 3, "score": 77.25, "ticker": "TSLA"}'),
        ("bullalert-mcp", "conflicting rank/score for the same ticker in one snapshot",
         '{"rank": 3, "score": 99.0, "ticker": "TSLA"}'),
    ]


def test_unreadable_answer_is_one_problem_row_and_the_walk_goes_on(source: BullAlertMcpSource, fake: FakeBullAlertMcp) -> None:
    broken = '{"data": {"watchlist": [{"rank": 1, "ticker": "NV'
    fake.malformed_next(body=broken)
    walk = source.history("pre_market", T0, T1 + timedelta(minutes=5), every=timedelta(minutes=5))
    assert len(fake.calls) == 3
    bad = walk.row(0, named=True)
    assert bad["problem"].startswith("malformed JSON from bullalert-mcp: ")
    assert (bad["payload"], bad["session"], bad["as_of"], bad["ticker"]) == (broken, "pre_market", T0, None)
    checked = check_watchlist(walk)
    assert checked.rejected.select("source", "payload").rows() == [("bullalert-mcp", broken)]
    assert listing(checked.good) == ranked(PRE_LATER)


# --- faults -----------------------------------------------------------------------------


def test_tool_error_is_a_vendor_error_quoting_it_and_not_retried(
    source: BullAlertMcpSource, fake: FakeBullAlertMcp, sleeps: list[float]
) -> None:
    fake.tool_error_next("upstream scoring service unavailable")
    with pytest.raises(VendorError) as caught:
        source.snapshot()
    assert str(caught.value) == "bullalert-mcp list_watchlist: the tool failed: upstream scoring service unavailable"
    assert not is_transient(caught.value)  # the flow's task does not retry it either
    assert (len(fake.calls), sleeps) == (1, [])
    assert caught.value.__cause__ is None and caught.value.__context__ is None


def test_timeout_is_bounded_retried_then_given_up(tapeflow_home: Path, fake: FakeBullAlertMcp) -> None:
    waits: list[float] = []
    policy = HttpPolicy(timeout_s=0.3, attempts=2, backoff_s=0.0, jitter=0.0)
    source = BullAlertMcpSource(make_settings(fake.url), policy=policy, sleep=waits.append)
    fake.delay_next(1.5)  # the tool would answer, but only after the deadline
    assert listing(source.snapshot()) == ranked(PRE_LATER)
    fake.delay_next(1.5, times=2)
    with pytest.raises(VendorError, match=r"^bullalert-mcp list_watchlist: gave up after 2 attempts "
                                          r"\(timed out after 0.3 s\)$") as caught:
        source.snapshot()
    assert is_transient(caught.value) and waits == [0.0, 0.0]
    assert len(fake.calls) == 4


def test_429_with_retry_after_and_5xx_are_retried_then_succeed(
    source: BullAlertMcpSource, fake: FakeBullAlertMcp, sleeps: list[float]
) -> None:
    fake.http_fail_next(429, retry_after="7")
    assert listing(source.snapshot()) == ranked(PRE_LATER)
    fake.http_fail_next(503, times=2)
    assert listing(source.snapshot()) == ranked(PRE_LATER)
    assert sleeps == [7.0, 0.0, 0.0]
    fake.http_fail_next(503, times=3)
    with pytest.raises(VendorError, match=r"^bullalert-mcp list_watchlist: gave up after 3 attempts \(HTTP 503\)$"):
        source.snapshot()


def test_no_server_is_a_connection_failure_after_the_policys_attempts(tapeflow_home: Path, sleeps: list[float]) -> None:
    source = BullAlertMcpSource(make_settings("http://127.0.0.1:9/mcp"), policy=FAST, sleep=sleeps.append)
    with pytest.raises(VendorError, match=r"^bullalert-mcp list_watchlist: gave up after 3 attempts \(connection failed\)$"):
        source.snapshot()
    assert sleeps == [0.0, 0.0]


# --- credentials and secrets ------------------------------------------------------------


def test_fake_refuses_a_request_without_the_key(fake: FakeBullAlertMcp) -> None:
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    for headers in ({}, {"x-ba-api-key": "wrong"}):
        answer = requests.post(fake.url, json=call, headers=headers, timeout=5)
        assert (answer.status_code, answer.json()) == (401, {"error": "invalid api key"})
    assert fake.calls == []


def test_missing_key_fails_at_construction_naming_the_setting(tapeflow_home: Path, fake: FakeBullAlertMcp) -> None:
    for key in (None, ""):
        with pytest.raises(VendorAuthError, match=r"^bullalert-mcp needs TAPEFLOW_BULLALERT_API_KEY to be set$"):
            BullAlertMcpSource(make_settings(fake.url, key=key))
    assert fake.refused == 0


def test_wrong_key_is_an_auth_error_naming_the_setting_not_the_key(
    tapeflow_home: Path, fake: FakeBullAlertMcp, sleeps: list[float]
) -> None:
    wrong = "SEKRET-BA-mcp-wrong-0000"
    source = BullAlertMcpSource(make_settings(fake.url, key=wrong), policy=FAST, sleep=sleeps.append)
    with pytest.raises(VendorAuthError) as caught:
        source.snapshot()
    assert str(caught.value) == "bullalert-mcp refused the credentials (HTTP 401): check TAPEFLOW_BULLALERT_API_KEY"
    assert (caught.value.status, sleeps, fake.calls) == (401, [], [])  # refused once, not retried
    assert fake.refused >= 1
    assert wrong not in f"{caught.value!r} {caught.value} {source!r}"
    assert caught.value.__context__ is None  # no SDK exception rides along to be printed


def test_key_is_in_no_output_even_when_the_vendor_quotes_it(
    source: BullAlertMcpSource, fake: FakeBullAlertMcp, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.echo_next("shape")
    echoed = source.snapshot()
    fake.echo_next("status")
    with pytest.raises(VendorError) as caught:
        source.snapshot()
    assert fake.echoed == 2
    assert "x-ba-api-key: **********" in echoed["payload"][0]  # the vendor did quote it, masked on arrival
    assert "echo-of-the-request" in str(caught.value) and len(str(caught.value)) < 400
    texts = [repr(source), str(caught.value), repr(caught.value), caplog.text, "".join(capsys.readouterr()),
             echoed.write_json(), check_watchlist(echoed).rejected.write_json()]
    assert caplog.text  # the SDK did log its requests
    for text in texts:
        assert KEY not in text


# --- the command ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_snapshot_command_stores_the_mcp_list_point_in_time(
    fake: FakeBullAlertMcp, warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAPEFLOW_BULLALERT_MCP_URL", fake.url)
    monkeypatch.setenv("TAPEFLOW_BULLALERT_API_KEY", KEY)
    fake.lists.set_score("pre_market", T1, "MARA", 130.0)  # one bad row: quarantined, the others stored
    argv = ["snapshot", "--source", "bullalert-mcp", "--as-of", "2026-03-05T08:55:00-05:00"]
    first, second = CliRunner().invoke(app, argv), CliRunner().invoke(app, argv)
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert fake.calls == [{"session": "pre_market", "limit": 20, "as_of": "2026-03-05T13:55:00Z"}] * 2
    with warehouse.read() as con:
        stored = con.execute("SELECT source, session, as_of, ticker, rank, score FROM watchlist_snapshots "
                             "ORDER BY rank").fetchall()
        fetched = con.execute("SELECT DISTINCT fetched_at FROM watchlist_snapshots").fetchall()
        quarantined = con.execute("SELECT source, reason, payload FROM quarantine").fetchall()
    assert [(s, sess, a.astimezone(UTC), t, r, sc) for s, sess, a, t, r, sc in stored] == [
        ("bullalert-mcp", "pre_market", T1, "AMD", 1, 88.0), ("bullalert-mcp", "pre_market", T1, "NVDA", 2, 85.0)
    ]
    assert len(fetched) == 1  # the second run found the same snapshot: first-seen time kept
    assert {(s, r) for s, r, _ in quarantined} == {("bullalert-mcp", "score must be within 0..100")}
    assert json.loads(quarantined[0][2])["ticker"] == "MARA"


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_snapshot_command_with_a_tool_error_fails_with_its_message(
    fake: FakeBullAlertMcp, warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAPEFLOW_BULLALERT_MCP_URL", fake.url)
    monkeypatch.setenv("TAPEFLOW_BULLALERT_API_KEY", KEY)
    fake.tool_error_next("quota exhausted for today")
    result = CliRunner().invoke(app, ["snapshot", "--source", "bullalert-mcp", "--as-of", "2026-03-05T08:55:00-05:00"])
    assert result.exit_code != 0
    # The run fails with the source's error (the console entry point prints it as one line).
    assert str(result.exception) == "bullalert-mcp list_watchlist: the tool failed: quota exhausted for today"
    assert len(fake.calls) == 1  # not retried by the task either
    with warehouse.read() as con:
        assert con.execute("SELECT count(*) FROM watchlist_snapshots").fetchone() == (0,)
