"""AlpacaActions through the real alpaca-py `CorporateActionsClient` against AlpacaActionsFake on
127.0.0.1: requests, every kind's mapping, paging, retries, malformed items and pages, and the keys."""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime

import polars as pl
import pytest

from tapeflow.calendar.exchange import ny_day_bounds
from tapeflow.config import Settings
from tapeflow.ingest.actions import check_actions
from tapeflow.ingest.store import ACTIONS, store_batch
from tapeflow.sources.action_rows import RAW_ACTION_SCHEMA
from tapeflow.sources.base import ActionSource
from tapeflow.sources.http import HttpPolicy, VendorAuthError, VendorError
from tapeflow.venues.alpaca.actions import AlpacaActions
from tapeflow.venues.configured import action_source
from tests.fakes.alpaca_actions import (
    MALFORMED_ACTIONS_PAGE,
    PATH,
    AlpacaActionsFake,
    cash_dividend,
    forward_split,
    name_change,
    reverse_split,
    spin_off,
    worthless_removal,
)

KEY = "SEKRET-KEY-act1ons-91b2"
SECRET = "SEKRET-SECRET-act1ons-3d7f"
WRONG = "SEKRET-wrong-alpaca-id"
UTC = UTC
FAST = HttpPolicy(timeout_s=2.0, attempts=3, backoff_s=0.5, jitter=0.25)
NOW = datetime(2026, 4, 2, 12, 0, tzinfo=UTC)
FIRST, LAST = date(2026, 3, 1), date(2026, 3, 31)
TYPES = "forward_split,reverse_split,cash_dividend,spin_off,name_change,worthless_removal"


@pytest.fixture(scope="module")
def server() -> Iterator[AlpacaActionsFake]:
    with AlpacaActionsFake(KEY, SECRET, page_cap=2) as running:
        yield running


@pytest.fixture
def rest(server) -> AlpacaActionsFake:
    server.reset()
    server.echoed = 0
    return server


@pytest.fixture
def make(rest, tapeflow_home) -> Callable[..., AlpacaActions]:
    """An AlpacaActions on the fake; sleeps recorded (make.sleeps), never slept."""
    sleeps: list[float] = []

    def build(**overrides: object) -> AlpacaActions:
        options = {k: overrides.pop(k) for k in ("symbols_per_request",) if k in overrides}
        fields = {"alpaca_api_key": KEY, "alpaca_secret_key": SECRET, "alpaca_data_url": rest.url, **overrides}
        return AlpacaActions(Settings(**fields), policy=FAST, sleep=sleeps.append, now=lambda: NOW, **options)  # type: ignore[arg-type]

    build.sleeps = sleeps  # type: ignore[attr-defined]
    return build


def rows(frame: pl.DataFrame, *columns: str) -> list[tuple]:
    return frame.select(columns).rows()


def payload(bucket: str, item: dict) -> str:
    return json.dumps({**item, "corporate_action_type": bucket}, sort_keys=True)


def leaked(text: str) -> list[str]:
    return [secret for secret in (KEY, SECRET) if secret in text]


# -- shape, requests ----------------------------------------------------------------------------


def test_it_is_an_action_source_with_the_raw_columns_and_configured_by_name(rest, make):
    alpaca = make()
    assert isinstance(alpaca, ActionSource) and alpaca.name == "alpaca"
    assert alpaca.actions(["AAPL"], FIRST, LAST).schema == pl.Schema(RAW_ACTION_SCHEMA)
    made = action_source("alpaca", Settings(alpaca_api_key=KEY, alpaca_secret_key=SECRET, alpaca_data_url=rest.url))
    assert isinstance(made, AlpacaActions) and made.url == rest.url
    assert repr(made) == f"AlpacaActions(url={rest.url!r})"


@pytest.mark.parametrize(
    ("overrides", "named"),
    [({"alpaca_api_key": None}, "TAPEFLOW_ALPACA_API_KEY"), ({"alpaca_secret_key": ""}, "TAPEFLOW_ALPACA_SECRET_KEY")],
)
def test_missing_keys_are_refused_at_construction(make, overrides, named):
    with pytest.raises(VendorAuthError, match=f"^alpaca needs {named} to be set$"):
        make(**overrides)


def test_first_request_is_exactly_the_documented_one(rest, make):
    make().actions(["AAPL", "MSFT", "AAPL"], FIRST, LAST)
    (request,) = rest.requests
    assert request.path == PATH
    # end runs 90 days past the last day: the vendor bounds process dates, rows are kept by ex-date
    assert request.query == {"symbols": "AAPL,MSFT", "types": TYPES, "start": "2026-03-01", "end": "2026-06-29",
                             "limit": "1000", "sort": "asc"}
    assert (request.headers["apca-api-key-id"], request.headers["apca-api-secret-key"]) == (KEY, SECRET)


def test_symbols_go_in_batches_and_none_asks_for_every_symbol(rest, make):
    make(symbols_per_request=2).actions(["A", "B", "C"], FIRST, LAST)
    assert [r.query["symbols"] for r in rest.requests] == ["A,B", "C"]
    rest.reset()
    make().actions(None, FIRST, LAST)
    assert "symbols" not in rest.requests[0].query
    with pytest.raises(ValueError, match="^last day 2026-03-01 is before first day 2026-03-31$"):
        make().actions(["AAPL"], LAST, FIRST)


# -- mapping -------------------------------------------------------------------------------------


def test_every_kind_is_mapped(rest, make):
    items = {
        "forward_splits": forward_split("NVDA", "2026-03-10", new_rate=2, old_rate=1),
        "reverse_splits": reverse_split("MULN", "2026-03-11", new_rate=1, old_rate=10),
        "cash_dividends": cash_dividend("AAPL", "2026-03-12", 0.26),
        "spin_offs": spin_off("JUPW", "SRM", "2026-03-13", source_rate=2, new_rate=1),
        "name_changes": name_change("BSAQ", "VFS", "2026-03-14"),
        "worthless_removals": worthless_removal("ATNXQ", "2026-03-15"),
    }
    special = cash_dividend("COST", "2026-03-16", 15.0, special=True)
    for bucket, item in items.items():
        rest.add(bucket, item)
    rest.add("cash_dividends", special)
    frame = make().actions(None, FIRST, LAST)
    assert rows(frame, "symbol", "kind", "ex_date", "ratio", "amount", "price_factor", "new_symbol") == [
        ("NVDA", "split", date(2026, 3, 10), 2.0, None, None, None),
        ("MULN", "reverse_split", date(2026, 3, 11), 0.1, None, None, None),
        ("AAPL", "cash_dividend", date(2026, 3, 12), None, 0.26, None, None),
        ("JUPW", "spin_off", date(2026, 3, 13), 0.5, None, None, "SRM"),
        ("BSAQ", "symbol_change", date(2026, 3, 14), None, None, None, "VFS"),  # process_date: no ex_date sent
        ("ATNXQ", "delisting", date(2026, 3, 15), None, None, None, None),
        ("COST", "special_distribution", date(2026, 3, 16), None, 15.0, None, None),
    ]
    # Alpaca dates no announcement: known from the ex-date's New York midnight (before the fetch)
    assert frame["knowable_at"].to_list() == [ny_day_bounds(d)[0] for d in frame["ex_date"].to_list()]
    assert set(frame["fetched_at"]) == {NOW}
    assert set(frame["source"]) == {"alpaca"} and frame["problem"].null_count() == 7
    assert frame["payload"][0] == payload("forward_splits", items["forward_splits"])
    checked = check_actions(frame)
    assert checked.rejected.is_empty() and checked.good.height == 7


def test_a_dividend_is_kept_by_its_ex_date_whatever_its_process_date(rest, make):
    rest.add("cash_dividends",
             cash_dividend("KO", "2026-03-30", 0.51, process_date="2026-04-20"),  # paid after the last day
             cash_dividend("PEP", "2026-02-27", 1.42, process_date="2026-03-13"))  # went ex before the first
    frame = make().actions(None, FIRST, LAST)
    assert rows(frame, "symbol", "ex_date") == [("KO", date(2026, 3, 30))]


# -- paging and retries --------------------------------------------------------------------------


def test_paging_across_several_pages_keeps_every_item_once(rest, make):
    rest.add("forward_splits", *[forward_split(f"S{i}", f"2026-03-{10 + i}", 3, 1) for i in range(5)])
    frame = make().actions(None, FIRST, LAST)
    assert frame["symbol"].to_list() == [f"S{i}" for i in range(5)]
    assert len(rest.requests) == 3
    tokens = [r.query.get("page_token") for r in rest.requests]
    assert tokens[0] is None and None not in tokens[1:] and len(set(tokens)) == 3


def test_a_repeated_page_token_stops_paging_with_a_problem_row(rest, make):
    rest.add("forward_splits", *[forward_split(f"S{i}", f"2026-03-{10 + i}", 3, 1) for i in range(5)])
    rest.repeat_token_next()
    frame = make().actions(None, FIRST, LAST)
    assert len(rest.requests) == 2
    assert frame["symbol"].to_list() == ["S0", "S1", "S2", "S3", None]
    assert frame["problem"][-1] == "alpaca sent the same page token twice; paging stopped after 2 pages"
    assert check_actions(frame).rejected.height == 1


def test_a_429_waits_retry_after_then_succeeds(rest, make):
    rest.add("cash_dividends", cash_dividend("AAPL", "2026-03-12", 0.26))
    source = make()
    rest.fail_next(429, retry_after="2")
    frame = source.actions(["AAPL"], FIRST, LAST)
    assert make.sleeps == [2.0]
    assert rows(frame, "symbol", "amount") == [("AAPL", 0.26)]
    assert len(rest.requests) == 2


def test_429_every_time_is_a_vendor_error_after_the_policy_s_attempts(rest, make):
    rest.fail_next(429, times=3, retry_after="1")
    with pytest.raises(VendorError, match=r"^alpaca /v1/corporate-actions: gave up after 3 attempts \(HTTP 429"):
        make().actions(["AAPL"], FIRST, LAST)
    assert len(rest.requests) == 3


# -- malformed items and pages -------------------------------------------------------------------


def test_malformed_items_come_back_with_their_problem_and_the_rest_is_stored(rest, make, warehouse):
    good = forward_split("NVDA", "2026-03-10", 2, 1), cash_dividend("AAPL", "2026-03-12", 0.26)
    bad = {
        "no new_rate": ("forward_splits", forward_split("TSLA", "2026-03-11", None, 1)),
        "bad ex_date": ("reverse_splits", reverse_split("MULN", "2026-13-01", 1, 10, process_date="2026-03-12")),
        "text rate": ("cash_dividends", cash_dividend("T", "2026-03-13", "0.2775")),
        "no special": ("cash_dividends", cash_dividend("VZ", "2026-03-14", 0.66, special=None)),
        "no new_symbol": ("spin_offs", spin_off("GE", "", "2026-03-15", 1, 1)),
        "unknown type": ("partial_calls", {"id": "x", "symbol": "PFE", "process_date": "2026-03-16"}),
    }
    rest.add("forward_splits", good[0])
    rest.add("cash_dividends", good[1])
    for bucket, item in bad.values():
        rest.add(bucket, item)
    rest.add("worthless_removals", "not an object")
    frame = make().actions(None, FIRST, LAST)
    problems = dict(rows(frame, "payload", "problem"))
    assert {name: problems[payload(*pair)] for name, pair in bad.items()} == {
        "no new_rate": "new_rate is missing",
        "bad ex_date": "ex_date is not a YYYY-MM-DD date: '2026-13-01'",
        "text rate": "rate is not a number: '0.2775'",
        "no special": "special is not true or false: None",
        "no new_symbol": "new_symbol is missing",
        "unknown type": "alpaca type 'partial_calls' has no tapeflow action kind",
    }
    shown = json.dumps({"corporate_action_type": "worthless_removals", "item": "not an object"}, sort_keys=True)
    assert problems[shown] == "alpaca worthless_removals item is not a JSON object"

    checked = check_actions(frame)
    assert rows(checked.good, "symbol", "kind") == [("NVDA", "split"), ("AAPL", "cash_dividend")]
    assert checked.rejected.height == 7 and set(checked.rejected["source"]) == {"alpaca"}
    counts = store_batch(warehouse, ACTIONS, checked.good, checked.rejected, run_id="r1", source="alpaca",
                         feed="corporate_actions", params={}, started_at=NOW)
    assert (counts.inserted, counts.quarantined) == (2, 7)
    with warehouse.read() as con:
        stored = con.execute("SELECT symbol, kind, ratio, amount FROM corporate_actions ORDER BY symbol").fetchall()
        quarantined = con.execute("SELECT count(*) FROM quarantine WHERE source = 'alpaca'").fetchone()
    assert stored == [("AAPL", "cash_dividend", None, 0.26), ("NVDA", "split", 2.0, None)]
    assert quarantined == (7,)


def test_a_page_that_is_not_json_is_one_rejected_row_after_the_good_pages(rest, make):
    rest.add("forward_splits", *[forward_split(f"S{i}", f"2026-03-{10 + i}", 3, 1) for i in range(3)])
    source = make()
    rest.malformed_next(MALFORMED_ACTIONS_PAGE)  # the first page
    frame = source.actions(None, FIRST, LAST)
    assert frame.height == 1 and frame["payload"][0] == MALFORMED_ACTIONS_PAGE
    assert frame["problem"][0].startswith("malformed JSON from alpaca: ")
    assert frame["problem"][0].endswith("(/v1/corporate-actions, after 0 good pages)")
    assert check_actions(frame).rejected["payload"].to_list() == [MALFORMED_ACTIONS_PAGE]


def test_a_page_of_the_wrong_shape_is_a_problem_row(rest, make):
    rest.malformed_next('{"corporate_actions": [], "next_page_token": null}')
    frame = make().actions(None, FIRST, LAST)
    assert frame["problem"].to_list() == [
        'unexpected response from alpaca: the page has no "corporate_actions" object (after 0 good pages)']


# -- the keys ------------------------------------------------------------------------------------


def test_wrong_keys_are_refused_without_either_key_in_the_error(rest, make):
    with pytest.raises(VendorAuthError) as caught:
        make(alpaca_api_key=WRONG, alpaca_secret_key=SECRET).actions(["AAPL"], FIRST, LAST)
    assert str(caught.value) == (
        "alpaca refused the credentials (HTTP 403: forbidden): check TAPEFLOW_ALPACA_API_KEY and TAPEFLOW_ALPACA_SECRET_KEY")
    told = "".join(traceback.format_exception(caught.value))
    assert leaked(told) == [] and WRONG not in told
    assert len(rest.requests) == 1  # refused keys are not retried


@pytest.mark.parametrize("kind", ["shape", "malformed"])
def test_a_page_quoting_the_request_back_never_shows_the_keys(rest, make, kind):
    source = make()
    rest.echo_next(kind)
    frame = source.actions(["AAPL"], FIRST, LAST)
    assert rest.echoed == 1 and frame.height == 1 and "echo-of-the-request" in frame["payload"][0]
    checked = check_actions(frame)
    assert checked.rejected.height == 1
    assert leaked(frame.write_csv() + checked.rejected.write_csv()) == []


def test_an_error_body_quoting_the_request_back_never_shows_the_keys(rest, make):
    source = make()
    rest.echo_next("status")
    with pytest.raises(VendorError) as caught:
        source.actions(["AAPL"], FIRST, LAST)
    told = "".join(traceback.format_exception(caught.value))
    assert str(caught.value).startswith("alpaca /v1/corporate-actions: HTTP 400: echo-of-the-request")
    assert leaked(told) == []
