"""BullAlertSource through the real client (requests via VendorHttp) against the fake
BullAlert on 127.0.0.1: wire format, limit, replay, faults, credentials, secrets."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import requests
from pydantic import SecretStr

from tapeflow.config import Settings
from tapeflow.ingest.watchlist import check_watchlist
from tapeflow.schemas import WATCHLIST_SCHEMA
from tapeflow.sources.http import HttpPolicy, VendorAuthError, VendorError
from tapeflow.venues.bullalert import BullAlertSource
from tests.fakes.bullalert import FakeBullAlert

KEY = "SEKRET-BA-7f3c9e1d"
UTC = UTC
T0 = datetime(2026, 3, 5, 13, 45, tzinfo=UTC)  # 08:45 New York, pre-market
T1 = T0 + timedelta(minutes=5)
NOW = datetime(2026, 3, 5, 14, 0, 2, tzinfo=UTC)
RAW_SCHEMA = {**WATCHLIST_SCHEMA, "payload": pl.String(), "problem": pl.String()}
FAST = HttpPolicy(timeout_s=2.0, attempts=3, backoff_s=0.0, jitter=0.0)

PRE = [("NVDA", 91.5), ("AMD", 80.0), ("TSLA", 77.25), ("PLTR", 60.0), ("SMCI", 12.0)]
PRE_LATER = [("AMD", 88.0), ("NVDA", 85.0), ("MARA", 70.5)]
MARKET = [("SPY", 55.0), ("QQQ", 54.0)]


@pytest.fixture
def fake() -> Iterator[FakeBullAlert]:
    with FakeBullAlert(KEY) as server:
        server.add_snapshot("pre_market", T0, PRE)
        server.add_snapshot("pre_market", T1, PRE_LATER)
        yield server


def make_settings(url: str, key: str | None = KEY) -> Settings:
    return Settings(bullalert_url=url, bullalert_api_key=SecretStr(key) if key is not None else None)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def source(tapeflow_home: Path, fake: FakeBullAlert, sleeps: list[float]) -> BullAlertSource:
    return BullAlertSource(make_settings(fake.url), policy=FAST, sleep=sleeps.append, clock=lambda: NOW)


def listing(frame: pl.DataFrame) -> list[tuple[str, int, float]]:
    return list(frame.select("ticker", "rank", "score").iter_rows())


def ranked(pairs: list[tuple[str, float]]) -> list[tuple[str, int, float]]:
    return [(t, n, s) for n, (t, s) in enumerate(pairs, start=1)]


# --- wire format ------------------------------------------------------------------------


def test_live_snapshot_is_the_latest_list_with_server_session_and_as_of(source: BullAlertSource, fake: FakeBullAlert) -> None:
    frame = source.snapshot()
    assert dict(frame.schema) == RAW_SCHEMA
    assert listing(frame) == ranked(PRE_LATER)
    assert frame["source"].unique().to_list() == ["bullalert"]
    assert frame["session"].unique().to_list() == ["pre_market"]  # "current" resolved by the server
    assert frame["as_of"].unique().to_list() == [T1]
    assert frame["fetched_at"].unique().to_list() == [NOW]
    assert frame["problem"].null_count() == 3
    assert json.loads(frame["payload"][0]) == {"rank": 1, "ticker": "AMD", "score": 88.0}
    assert frame["payload"][0] == '{"rank": 1, "score": 88.0, "ticker": "AMD"}'  # sorted keys
    (request,) = fake.hits("/v1/watchlist")
    assert request.query == {"session": "current", "limit": "100"}
    assert request.headers["x-ba-api-key"] == KEY
    assert check_watchlist(frame).good.height == 3


def test_payload_hash_is_the_sha256_of_the_response_body(source: BullAlertSource, fake: FakeBullAlert) -> None:
    frame = source.snapshot("pre_market")
    body = requests.get(f"{fake.url}/v1/watchlist", params={"session": "pre_market", "limit": "100"},
                        headers={"x-ba-api-key": KEY}, timeout=2).text
    assert json.loads(body)["meta"] == {"session": "pre_market", "as_of": "2026-03-05T13:50:00Z", "count": 3, "cache_ttl_s": 60}
    assert frame["payload_hash"].unique().to_list() == [hashlib.sha256(body.encode()).hexdigest()]


def test_limit_is_sent_and_honoured(source: BullAlertSource, fake: FakeBullAlert) -> None:
    frame = source.snapshot("pre_market", as_of=T0, limit=3)
    assert listing(frame) == ranked(PRE[:3])
    assert fake.hits()[-1].query == {"session": "pre_market", "limit": "3", "as_of": "2026-03-05T13:45:00Z"}


@pytest.mark.parametrize("limit", [0, 101, -1, True, 2.5])
def test_limit_outside_1_to_100_is_refused_before_any_request(source: BullAlertSource, fake: FakeBullAlert, limit: object) -> None:
    with pytest.raises(ValueError, match=r"^bullalert limit must be an integer within 1\.\.100"):
        source.snapshot(limit=limit)  # type: ignore[arg-type]
    assert fake.hits() == []


def test_unknown_session_and_naive_as_of_are_refused(source: BullAlertSource, fake: FakeBullAlert) -> None:
    with pytest.raises(ValueError, match=r"^bullalert session must be one of pre_market, market, after_hours, all, current"):
        source.snapshot("regular")
    with pytest.raises(ValueError, match="naive timestamp"):
        source.snapshot(as_of=datetime(2026, 3, 5, 13, 45))
    assert fake.hits() == []


def test_as_of_replay_answers_the_list_standing_at_that_instant(source: BullAlertSource, fake: FakeBullAlert) -> None:
    between = T0 + timedelta(minutes=2, seconds=30, microseconds=5)
    frame = source.snapshot("pre_market", as_of=between)
    assert listing(frame) == ranked(PRE)
    assert frame["as_of"].unique().to_list() == [T0]  # the list's own time, not the one asked for
    assert fake.hits()[-1].query["as_of"] == "2026-03-05T13:47:30.000005Z"


def test_all_and_current_resolve_to_the_session_the_server_names(source: BullAlertSource, fake: FakeBullAlert) -> None:
    open_ = datetime(2026, 3, 5, 14, 31, tzinfo=UTC)
    fake.add_snapshot("market", open_, MARKET)
    assert source.snapshot("all")["session"].unique().to_list() == ["market"]
    replay = source.snapshot("current", as_of=open_ - timedelta(minutes=1))
    assert (replay["session"].unique().to_list(), replay["as_of"].unique().to_list()) == (["pre_market"], [T1])


def test_no_list_yet_is_an_empty_batch(source: BullAlertSource) -> None:
    frame = source.snapshot("after_hours")
    assert frame.height == 0 and dict(frame.schema) == RAW_SCHEMA


def test_history_walks_as_of_from_start_to_end_inclusive(source: BullAlertSource, fake: FakeBullAlert) -> None:
    frame = source.history("pre_market", T0, T0 + timedelta(minutes=10), every=timedelta(minutes=2, seconds=30))
    assert [r.query["as_of"] for r in fake.hits()] == [
        "2026-03-05T13:45:00Z", "2026-03-05T13:47:30Z", "2026-03-05T13:50:00Z", "2026-03-05T13:52:30Z", "2026-03-05T13:55:00Z"
    ]
    # Five steps, two lists: a list already returned is not repeated.
    assert listing(frame) == ranked(PRE) + ranked(PRE_LATER)
    assert frame["as_of"].to_list() == [T0] * 5 + [T1] * 3
    checked = check_watchlist(frame)
    assert checked.rejected.height == 0 and checked.good.height == 8


def test_history_refuses_a_backward_or_empty_walk(source: BullAlertSource) -> None:
    with pytest.raises(ValueError, match="is before start"):
        source.history("pre_market", T1, T0, every=timedelta(minutes=1))
    with pytest.raises(ValueError, match="positive interval"):
        source.history("pre_market", T0, T1, every=timedelta(0))


def test_snapshots_replay_each_moment_and_skip_a_list_already_returned(source: BullAlertSource, fake: FakeBullAlert) -> None:
    frame = source.snapshots([(T0, "pre_market"), (T0 + timedelta(minutes=1), "all"), (T1, "pre_market")], limit=10)
    assert [(r.query["session"], r.query["as_of"]) for r in fake.hits()] == [
        ("pre_market", "2026-03-05T13:45:00Z"), ("all", "2026-03-05T13:46:00Z"), ("pre_market", "2026-03-05T13:50:00Z")
    ]
    # The second moment lands on the first list, under another requested session: not repeated.
    assert listing(frame) == ranked(PRE) + ranked(PRE_LATER)
    assert source.snapshots([], limit=10).equals(source.snapshot("after_hours"))


def test_same_snapshot_fetched_twice_gives_identical_rows_and_hash(tapeflow_home: Path, fake: FakeBullAlert) -> None:
    fixed = BullAlertSource(make_settings(fake.url), policy=FAST, clock=lambda: NOW)
    first, second = fixed.snapshot("pre_market", as_of=T0), fixed.snapshot("pre_market", as_of=T0)
    assert first.equals(second)
    # With the real clock only fetched_at moves: the listing and its hash stay put.
    live = BullAlertSource(make_settings(fake.url), policy=FAST)
    a, b = live.snapshot("pre_market", as_of=T0), live.snapshot("pre_market", as_of=T0)
    assert a.drop("fetched_at").equals(b.drop("fetched_at"))
    assert a["payload_hash"].n_unique() == 1 and a["payload_hash"][0] == first["payload_hash"][0]
    assert b["fetched_at"][0] >= a["fetched_at"][0]


def test_meta_fallbacks_for_as_of_and_session(source: BullAlertSource, fake: FakeBullAlert) -> None:
    bare = json.dumps({"data": {"watchlist": [{"rank": 1, "ticker": "NVDA", "score": 90}]}})
    fake.malformed_next(body=bare, times=2)
    replayed = source.snapshot("market", as_of=T0)
    assert (replayed["as_of"][0], replayed["session"][0], replayed["score"][0]) == (T0, "market", 90.0)
    live = source.snapshot("current")
    assert (live["as_of"][0], live["session"][0]) == (NOW, None)
    assert check_watchlist(live).rejected["reason"].to_list() == ["session is missing"]


def test_odd_entries_come_back_for_the_quarantine(source: BullAlertSource, fake: FakeBullAlert) -> None:
    entries = ["NVDA", {"rank": "1", "ticker": "AMD", "score": 80}, {"rank": 2, "ticker": 7, "score": True}]
    meta = {"session": "market", "as_of": "2026-03-05T13:45:00", "count": 3, "cache_ttl_s": 60}
    fake.malformed_next(body=json.dumps({"data": {"watchlist": entries}, "meta": meta}))
    frame = source.snapshot()
    assert frame.height == 3
    assert frame.select("ticker", "rank", "score").rows() == [(None, None, None), ("AMD", None, 80.0), (None, 2, None)]
    naive = "meta.as_of is a naive timestamp (2026-03-05T13:45:00): a time zone is required"
    assert frame["problem"].to_list() == [f"{naive}; watchlist entry is not a JSON object", naive, naive]
    assert frame["payload"].to_list() == [
        '"NVDA"', '{"rank": "1", "score": 80, "ticker": "AMD"}', '{"rank": 2, "score": true, "ticker": 7}'
    ]
    assert check_watchlist(frame).good.height == 0


# --- faults -----------------------------------------------------------------------------


def test_429_with_retry_after_then_success(source: BullAlertSource, fake: FakeBullAlert, sleeps: list[float]) -> None:
    fake.fail_next(429, retry_after="7")
    assert listing(source.snapshot()) == ranked(PRE_LATER)
    assert sleeps == [7.0]
    assert len(fake.hits()) == 2


def test_5xx_then_success(source: BullAlertSource, fake: FakeBullAlert, sleeps: list[float]) -> None:
    fake.fail_next(503, times=2)
    assert listing(source.snapshot()) == ranked(PRE_LATER)
    assert sleeps == [0.0, 0.0] and len(fake.hits()) == 3


def test_timeout_then_success_and_timeout_every_time(tapeflow_home: Path, fake: FakeBullAlert) -> None:
    policy = HttpPolicy(timeout_s=0.2, attempts=2, backoff_s=0.0, jitter=0.0)
    source = BullAlertSource(make_settings(fake.url), policy=policy, sleep=lambda s: None)
    fake.delay_next(0.6)
    assert listing(source.snapshot()) == ranked(PRE_LATER)
    fake.delay_next(0.6, times=2)
    with pytest.raises(VendorError, match=r"^bullalert /v1/watchlist: gave up after 2 attempts \(timed out after 0.2 s\)$"):
        source.snapshot()


def test_422_from_the_server_is_not_retried(source: BullAlertSource, fake: FakeBullAlert, sleeps: list[float]) -> None:
    fake.fail_next(422)
    with pytest.raises(VendorError, match=r"^bullalert /v1/watchlist: HTTP 422$"):
        source.snapshot()
    assert sleeps == [] and len(fake.hits()) == 1


def test_malformed_page_is_one_problem_row_quarantined_and_the_run_continues(
    source: BullAlertSource, fake: FakeBullAlert
) -> None:
    broken = '{"data": {"watchlist": [{"rank": 1, "ticker": "NV'
    fake.malformed_next(body=broken)  # the walk's first step meets it; the later steps do not
    walk = source.history("pre_market", T0, T1 + timedelta(minutes=5), every=timedelta(minutes=5))
    assert len(fake.hits()) == 3
    assert walk["problem"].null_count() == walk.height - 1
    bad = walk.row(0, named=True)
    assert bad["problem"].startswith("malformed JSON from bullalert: ")
    assert (bad["payload"], bad["session"], bad["as_of"], bad["ticker"], bad["rank"]) == (broken, "pre_market", T0, None, None)
    assert bad["payload_hash"] == hashlib.sha256(broken.encode()).hexdigest()
    checked = check_watchlist(walk)
    assert checked.rejected.rows() == [
        ("bullalert", bad["problem"] + "; ticker is missing; rank is missing or not an integer; "
         "score is missing or not a number", broken)
    ]
    assert listing(checked.good) == ranked(PRE_LATER)  # the next steps still ran


def test_body_without_data_watchlist_is_a_problem_row(source: BullAlertSource, fake: FakeBullAlert) -> None:
    fake.malformed_next(body='{"data": {"list": []}, "meta": {}}')
    frame = source.snapshot("market")
    assert frame.select("session", "problem", "payload").rows() == [
        ("market", "bullalert response lacks data.watchlist (a list)", '{"data": {"list": []}, "meta": {}}')
    ]
    assert check_watchlist(frame).rejected["reason"][0].startswith("bullalert response lacks data.watchlist (a list); ")


def test_duplicate_tickers_from_the_vendor_all_come_back(source: BullAlertSource, fake: FakeBullAlert) -> None:
    fake.duplicate_ticker("pre_market", T0, "AMD")
    fake.duplicate_ticker("pre_market", T0, "TSLA", score=99.0)
    frame = source.snapshot("pre_market", as_of=T0)
    assert listing(frame) == [*ranked(PRE), ("AMD", 2, 80.0), ("TSLA", 3, 99.0)]
    checked = check_watchlist(frame)
    assert listing(checked.good) == [("NVDA", 1, 91.5), ("AMD", 2, 80.0), ("PLTR", 4, 60.0), ("SMCI", 5, 12.0)]
    assert checked.rejected["reason"].to_list() == [
        "conflicting rank/score for the same ticker in one snapshot",
        "duplicate of an earlier row in the same snapshot",
        "conflicting rank/score for the same ticker in one snapshot",
    ]


def test_out_of_range_score_comes_back_and_is_rejected(source: BullAlertSource, fake: FakeBullAlert) -> None:
    fake.set_score("pre_market", T1, "NVDA", 130.0)
    fake.set_score("pre_market", T1, "MARA", -2)
    frame = source.snapshot()
    assert frame["score"].to_list() == [88.0, 130.0, -2.0]
    checked = check_watchlist(frame)
    assert listing(checked.good) == [("AMD", 1, 88.0)]
    assert checked.rejected.rows() == [
        ("bullalert", "score must be within 0..100", '{"rank": 2, "score": 130.0, "ticker": "NVDA"}'),
        ("bullalert", "score must be within 0..100", '{"rank": 3, "score": -2, "ticker": "MARA"}'),
    ]


# --- credentials and secrets ------------------------------------------------------------


def test_fake_answers_bad_credentials_and_bad_parameters_like_the_vendor(fake: FakeBullAlert) -> None:
    url = f"{fake.url}/v1/watchlist"
    for headers in ({}, {"x-ba-api-key": "wrong"}):
        answer = requests.get(url, headers=headers, timeout=2)
        assert (answer.status_code, answer.json()) == (401, {"error": "invalid api key"})
    good = {"x-ba-api-key": KEY}
    for params in ({"session": "regular"}, {"limit": "0"}, {"limit": "101"}, {"limit": "x"}, {"as_of": "2026-03-05T13:45:00+00:00"}):
        assert requests.get(url, headers=good, params=params, timeout=2).status_code == 422


def test_missing_key_fails_at_construction_naming_the_setting(tapeflow_home: Path, fake: FakeBullAlert) -> None:
    for key in (None, ""):
        with pytest.raises(VendorAuthError, match=r"^bullalert needs TAPEFLOW_BULLALERT_API_KEY to be set$"):
            BullAlertSource(make_settings(fake.url, key=key))
    assert fake.hits() == []


def test_wrong_key_is_an_auth_error_naming_the_setting_not_the_key(tapeflow_home: Path, fake: FakeBullAlert) -> None:
    wrong = "SEKRET-BA-wrong-0000"
    source = BullAlertSource(make_settings(fake.url, key=wrong), policy=FAST, sleep=lambda s: None)
    with pytest.raises(VendorAuthError) as caught:
        source.snapshot()
    assert str(caught.value) == "bullalert refused the credentials (HTTP 401): check TAPEFLOW_BULLALERT_API_KEY"
    assert caught.value.status == 401
    assert wrong not in f"{caught.value!r} {caught.value} {source!r}"
    assert len(fake.hits()) == 1  # refused credentials are not retried


def test_key_is_in_no_output(
    source: BullAlertSource, fake: FakeBullAlert, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.malformed_next(body="{not json")
    frames = [source.snapshot(), source.snapshot("pre_market", as_of=T0, limit=2),
              source.history("pre_market", T0, T1, timedelta(minutes=5))]
    fake.fail_next(500, times=3)
    with pytest.raises(VendorError) as caught:
        source.snapshot()
    checked = [check_watchlist(f) for f in frames]
    texts = [
        repr(source), repr(source._http), str(caught.value), repr(caught.value), caplog.text, "".join(capsys.readouterr()),
        *(f.write_json() for f in frames), *(c.good.write_json() + c.rejected.write_json() for c in checked),
    ]
    assert caplog.text  # urllib3 did log the requests
    for text in texts:
        assert KEY not in text
