"""PolygonActions through the real requests client against FakePolygonActions on 127.0.0.1:
requests, every kind's mapping, paging, retries, malformed items and pages, and the key."""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterator
from datetime import UTC, date, datetime

import polars as pl
import pytest

from tapeflow.config import Settings
from tapeflow.ingest.actions import check_actions
from tapeflow.ingest.store import ACTIONS, store_batch
from tapeflow.sources.action_rows import RAW_ACTION_SCHEMA
from tapeflow.sources.base import ActionSource
from tapeflow.sources.http import HttpPolicy, VendorAuthError, VendorError
from tapeflow.venues.configured import action_source
from tapeflow.venues.polygon.actions import PolygonActions
from tests.fakes.polygon_actions import FakePolygonActions, dividend, split

KEY = "SEKRET-polygon-act1ons-4e7b"
UTC = UTC
FAST = HttpPolicy(timeout_s=2.0, attempts=3, backoff_s=0.01, jitter=0.0)
NOW = datetime(2026, 3, 20, 15, 0, tzinfo=UTC)  # 11:00 New York (EDT)
FIRST, LAST = date(2026, 3, 1), date(2026, 3, 31)
SPLITS, DIVIDENDS = "/v3/reference/splits", "/v3/reference/dividends"


@pytest.fixture(scope="module")
def server() -> Iterator[FakePolygonActions]:
    # One server for the module: each stop costs up to 0.5 s (the stdlib server's poll interval).
    with FakePolygonActions(KEY) as running:
        yield running


@pytest.fixture
def fake(server: FakePolygonActions, tapeflow_home) -> FakePolygonActions:
    server.reset()
    return server


def source(fake: FakePolygonActions, sleeps: list[float] | None = None, key: str = KEY, **options: object) -> PolygonActions:
    settings = Settings(polygon_api_key=key, polygon_url=fake.url)
    sleep = sleeps.append if sleeps is not None else (lambda _: None)
    return PolygonActions(settings, policy=FAST, sleep=sleep, now=lambda: NOW, **options)  # type: ignore[arg-type]


def rows(frame: pl.DataFrame, *columns: str) -> list[tuple]:
    return frame.select(columns).rows()


# -- shape, requests ----------------------------------------------------------------------------


def test_it_is_an_action_source_with_the_raw_columns_and_configured_by_name(fake):
    polygon = source(fake)
    assert isinstance(polygon, ActionSource) and polygon.name == "polygon"
    assert polygon.actions(["AAPL"], FIRST, LAST).schema == pl.Schema(RAW_ACTION_SCHEMA)
    made = action_source("polygon", Settings(polygon_api_key=KEY, polygon_url=fake.url))
    assert isinstance(made, PolygonActions)
    assert repr(made) == f"PolygonActions({fake.url!r})"
    with pytest.raises(ValueError, match=r"^unknown corporate-action source 'ibkr'; known: ") as caught:
        action_source("ibkr", Settings())
    assert {"alpaca", "polygon"} <= set(str(caught.value).split("known: ")[1].split(", "))


def test_a_missing_key_is_refused_at_construction(fake):
    with pytest.raises(VendorAuthError, match="^polygon needs TAPEFLOW_POLYGON_API_KEY to be set$"):
        source(fake, key="")


def test_first_requests_are_exactly_the_documented_ones(fake):
    source(fake).actions(["AAPL"], FIRST, LAST)
    splits, dividends = fake.requests
    assert (splits.path, dividends.path) == (SPLITS, DIVIDENDS)
    assert splits.query == {
        "ticker": "AAPL", "execution_date.gte": "2026-03-01", "execution_date.lte": "2026-03-31",
        "order": "asc", "sort": "execution_date", "limit": "1000",
    }
    assert dividends.query == {
        "ticker": "AAPL", "ex_dividend_date.gte": "2026-03-01", "ex_dividend_date.lte": "2026-03-31",
        "order": "asc", "sort": "ex_dividend_date", "limit": "1000",
    }
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in fake.requests)


def test_symbols_are_asked_one_at_a_time_and_none_asks_for_every_ticker(fake):
    source(fake).actions(["AAPL", "MSFT", "AAPL"], FIRST, LAST)
    assert [(r.path, r.query["ticker"]) for r in fake.requests] == [
        (SPLITS, "AAPL"), (SPLITS, "MSFT"), (DIVIDENDS, "AAPL"), (DIVIDENDS, "MSFT")]
    fake.reset()
    source(fake).actions(None, FIRST, LAST)
    assert [("ticker" in r.query) for r in fake.requests] == [False, False]
    with pytest.raises(ValueError, match="^last day 2026-03-01 is before first day 2026-03-31$"):
        source(fake).actions(["AAPL"], LAST, FIRST)


# -- mapping -------------------------------------------------------------------------------------


def test_a_two_for_one_split_and_a_one_for_ten_reverse_split(fake):
    forward, reverse = split("NVDA", "2026-03-10", 1, 2), split("MULN", "2026-03-12", 10, 1)
    fake.splits += [forward, reverse]
    frame = source(fake).actions(None, FIRST, LAST)
    assert frame.to_dicts() == [
        {"source": "polygon", "symbol": "NVDA", "kind": "split", "ex_date": date(2026, 3, 10), "ratio": 2.0,
         "amount": None, "price_factor": None, "new_symbol": None,
         "knowable_at": datetime(2026, 3, 10, 4, 0, tzinfo=UTC),  # no declaration: its ex-date's NY midnight
         "fetched_at": NOW, "payload": json.dumps(forward, sort_keys=True), "problem": None},
        {"source": "polygon", "symbol": "MULN", "kind": "reverse_split", "ex_date": date(2026, 3, 12), "ratio": 0.1,
         "amount": None, "price_factor": None, "new_symbol": None,
         "knowable_at": datetime(2026, 3, 12, 4, 0, tzinfo=UTC), "fetched_at": NOW,
         "payload": json.dumps(reverse, sort_keys=True), "problem": None},
    ]
    checked = check_actions(frame)
    assert checked.rejected.is_empty() and checked.good["kind"].to_list() == ["split", "reverse_split"]


def test_dividends_map_type_amount_and_the_end_of_the_declaration_day(fake):
    fake.dividends += [
        dividend("AAPL", "2026-03-05", 0.25, declaration_date="2026-02-26"),  # EST: next midnight is 05:00 UTC
        dividend("COST", "2026-03-06", 15.0, dividend_type="SC", declaration_date="2026-03-08"),  # DST starts
        dividend("PDI", "2026-03-09", 0.2205, dividend_type="LT", declaration_date=None),
        dividend("KO", "2026-03-11", 0.51, dividend_type="ST", declaration_date="2026-03-20"),  # declared today
    ]
    frame = source(fake).actions(None, FIRST, LAST)
    assert rows(frame, "symbol", "kind", "amount", "knowable_at", "problem") == [
        ("AAPL", "cash_dividend", 0.25, datetime(2026, 2, 27, 5, 0, tzinfo=UTC), None),
        # declared after its ex-date (3-08 ends 3-09 04:00 UTC): known from the ex-date's NY midnight (EST)
        ("COST", "special_distribution", 15.0, datetime(2026, 3, 6, 5, 0, tzinfo=UTC), None),
        ("PDI", "cash_dividend", 0.2205, datetime(2026, 3, 9, 4, 0, tzinfo=UTC), None),  # undeclared: ex-date (EDT)
        ("KO", "cash_dividend", 0.51, datetime(2026, 3, 11, 4, 0, tzinfo=UTC), None),
    ]
    checked = check_actions(frame)
    assert checked.rejected.is_empty() and checked.good.height == 4


# -- paging and retries --------------------------------------------------------------------------


def test_paging_follows_next_url_across_pages_with_the_key_only_in_the_header(fake):
    fake.splits += [split("AAPL", f"2026-03-{day:02d}", 1, 2) for day in (2, 3, 4, 5, 6)]
    frame = source(fake, page_size=2).actions(["AAPL"], FIRST, LAST)
    assert frame["ex_date"].to_list() == [date(2026, 3, day) for day in (2, 3, 4, 5, 6)]
    split_requests = fake.hits(SPLITS)
    assert len(split_requests) == 3
    assert all(set(r.query) == {"cursor"} for r in split_requests[1:])
    assert all(r.headers["authorization"] == f"Bearer {KEY}" and "apiKey" not in r.query for r in fake.requests)


def test_next_url_naming_another_host_is_sent_to_the_configured_one(fake):
    fake.dividends += [dividend("AAPL", f"2026-03-{day:02d}", 0.25) for day in (2, 3, 4)]
    fake.next_host = "https://api.polygon.io"
    frame = source(fake, page_size=2).actions(["AAPL"], FIRST, LAST)
    assert frame.height == 3 and len(fake.hits(DIVIDENDS)) == 2


def test_a_next_url_repeating_a_page_stops_paging_with_a_problem_row(fake):
    fake.splits += [split("AAPL", f"2026-03-{day:02d}", 1, 2) for day in (2, 3, 4, 5, 6)]
    fake.repeat_cursor = True
    frame = source(fake, page_size=2).actions(["AAPL"], FIRST, LAST)
    assert len(fake.hits(SPLITS)) == 2  # the second page links to itself
    assert frame["ex_date"].to_list() == [*(date(2026, 3, day) for day in (2, 3, 4, 5)), None]
    assert frame["problem"].to_list()[-1] == (
        f"malformed page from polygon: next_url repeats a page already read; paging stopped ({SPLITS})")
    assert check_actions(frame).rejected.height == 1


def test_a_429_waits_exactly_retry_after_then_succeeds(fake):
    fake.splits.append(split("AAPL", "2026-03-10", 1, 4))
    fake.fail_next(429, retry_after="3", path_prefix=SPLITS)
    sleeps: list[float] = []
    frame = source(fake, sleeps).actions(["AAPL"], FIRST, LAST)
    assert sleeps == [3.0]
    assert rows(frame, "symbol", "ratio") == [("AAPL", 4.0)]
    assert len(fake.hits(SPLITS)) == 2


def test_429_every_time_is_a_vendor_error_after_the_policy_s_attempts(fake):
    fake.fail_next(429, times=3, retry_after="1")
    with pytest.raises(VendorError, match=r"^polygon /v3/reference/splits: gave up after 3 attempts \(HTTP 429\)$"):
        source(fake).actions(["AAPL"], FIRST, LAST)


# -- malformed items and pages -------------------------------------------------------------------


def test_malformed_items_come_back_with_their_problem_and_the_rest_is_stored(fake, warehouse):
    good_split, good_dividend = split("AAPL", "2026-03-10", 1, 2), dividend("MSFT", "2026-03-11", 0.83)
    bad = {
        "no split_to": split("TSLA", "2026-03-12", 1, None),
        "bad date": split("GME", "2026-3-15", 1, 4),
        "one for one": split("AMC", "2026-03-13", 3, 3),
        "text amount": dividend("T", "2026-03-14", "0.2775"),
        "unknown type": dividend("VZ", "2026-03-15", 0.66, dividend_type="XX"),
        "in CAD": dividend("SHOP", "2026-03-16", 0.1, currency="CAD"),
        "bad declaration": dividend("PFE", "2026-03-17", 0.43, declaration_date="26/02/2026"),
    }
    fake.splits += [good_split, bad["no split_to"], bad["bad date"], bad["one for one"], ["not", "an", "object"]]
    fake.dividends += [good_dividend, bad["text amount"], bad["unknown type"], bad["in CAD"], bad["bad declaration"]]
    frame = source(fake).actions(None, FIRST, LAST)
    problems = dict(rows(frame, "payload", "problem"))
    assert {name: problems[json.dumps(item, sort_keys=True)] for name, item in bad.items()} == {
        "no split_to": "split_to is missing",
        "bad date": "execution_date is not a YYYY-MM-DD date: '2026-3-15'",
        "one for one": None,  # readable: check_actions refuses a reverse split of ratio 1
        "text amount": "cash_amount is not a number: '0.2775'",
        "unknown type": "dividend_type 'XX' is none of CD, LT, ST, SC",
        "in CAD": "cash_amount is in 'CAD', not USD",
        "bad declaration": "declaration_date is not a YYYY-MM-DD date: '26/02/2026'",
    }
    assert problems['["not", "an", "object"]'] == "polygon /v3/reference/splits item is not a JSON object"

    checked = check_actions(frame)
    assert rows(checked.good, "symbol", "kind") == [("AAPL", "split"), ("MSFT", "cash_dividend")]
    reasons = dict(rows(checked.rejected, "payload", "reason"))
    assert len(reasons) == 8 and set(checked.rejected["source"]) == {"polygon"}
    assert reasons[json.dumps(bad["one for one"], sort_keys=True)] == "a reverse split's ratio is below 1 (0.1 for 1-for-10)"
    assert reasons[json.dumps(bad["no split_to"], sort_keys=True)].startswith("split_to is missing; a split needs its ratio")

    counts = store_batch(warehouse, ACTIONS, checked.good, checked.rejected, run_id="r1", source="polygon",
                         feed="corporate_actions", params={}, started_at=NOW)
    assert (counts.inserted, counts.quarantined) == (2, 8)
    with warehouse.read() as con:
        stored = con.execute("SELECT symbol, kind, ratio, amount FROM corporate_actions ORDER BY symbol").fetchall()
    assert stored == [("AAPL", "split", 2.0, None), ("MSFT", "cash_dividend", None, 0.83)]


def test_malformed_json_is_one_rejected_row_and_the_dividends_still_come(fake):
    fake.dividends.append(dividend("AAPL", "2026-03-05", 0.25))
    body = '{"results": [ {"ticker": "AAPL", "split_from":'
    fake.malformed_next(body)
    frame = source(fake).actions(["AAPL"], FIRST, LAST)
    broken = frame.row(0, named=True)
    assert (broken["symbol"], broken["payload"], broken["fetched_at"], broken["kind"]) == ("AAPL", body, NOW, None)
    assert broken["problem"].startswith("malformed JSON from polygon: ") and broken["problem"].endswith(f"({SPLITS})")
    checked = check_actions(frame)
    assert checked.good["kind"].to_list() == ["cash_dividend"]
    assert checked.rejected["payload"].to_list() == [body]


def test_an_error_status_page_is_a_problem_row(fake):
    fake.malformed_next(json.dumps({"status": "ERROR", "request_id": "x", "error": "Plan lacks dividends"}))
    frame = source(fake).actions(["AAPL"], FIRST, LAST)
    assert frame["problem"].to_list() == [f"polygon answered status 'ERROR': Plan lacks dividends ({SPLITS})"]


def test_rows_outside_the_days_are_dropped_and_undatable_ones_kept(fake):
    page = {"status": "OK", "results": [split("AAPL", "2026-02-27", 1, 2), split("AAPL", "2026-03-02", 1, 2),
                                        split("AAPL", "soon", 1, 2)]}
    fake.malformed_next(json.dumps(page))
    frame = source(fake).actions(["AAPL"], FIRST, LAST)
    assert rows(frame, "ex_date", "problem") == [
        (date(2026, 3, 2), None), (None, "execution_date is not a YYYY-MM-DD date: 'soon'")]


# -- the key -------------------------------------------------------------------------------------


def test_a_wrong_key_is_refused_without_the_key_in_the_error(fake):
    wrong = "SEKRET-wrong-polygon-key-0c55"
    with pytest.raises(VendorAuthError) as caught:
        source(fake, key=wrong).actions(["AAPL"], FIRST, LAST)
    assert str(caught.value) == "polygon refused the credentials (HTTP 401): check TAPEFLOW_POLYGON_API_KEY"
    told = "".join(traceback.format_exception(caught.value))
    assert wrong not in told and KEY not in told
    assert len(fake.requests) == 1  # a refused key is not retried


@pytest.mark.parametrize("kind", ["shape", "malformed"])
def test_a_page_quoting_the_request_back_never_shows_the_key(fake, kind):
    fake.splits.append(split("AAPL", "2026-03-10", 1, 2))
    fake.echo_next(kind, path_prefix=DIVIDENDS)
    frame = source(fake).actions(["AAPL"], FIRST, LAST)
    assert fake.echoed == 1 and frame.height == 2
    assert "echo-of-the-request" in frame["payload"][1]
    checked = check_actions(frame)
    assert checked.good.height == 1 and checked.rejected.height == 1
    for text in (frame.write_csv(), checked.good.write_csv(), checked.rejected.write_csv()):
        assert KEY not in text


def test_an_error_body_quoting_the_request_back_never_shows_the_key(fake):
    fake.echo_next("status")
    with pytest.raises(VendorError) as caught:
        source(fake).actions(["AAPL"], FIRST, LAST)
    assert str(caught.value) == "polygon /v3/reference/splits: HTTP 400"
    assert KEY not in "".join(traceback.format_exception(caught.value))
