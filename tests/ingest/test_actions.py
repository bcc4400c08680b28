"""The checks a corporate-action batch passes before it is stored."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from tapeflow.ingest.actions import check_actions

SEEN = datetime(2010, 6, 1, tzinfo=UTC)


def _row(**fields) -> dict:
    row = {"source": "vendor", "symbol": "GIS", "kind": "split", "ex_date": "2010-06-09", "ratio": 2.0, "amount": None,
           "price_factor": None, "new_symbol": None, "knowable_at": "2010-05-20T20:00:00Z", "fetched_at": SEEN,
           "payload": "{}"}
    return {**row, **fields}


def _check(*rows: dict):
    return check_actions(pl.DataFrame(list(rows), schema_overrides={"fetched_at": pl.Datetime("us", "UTC")}))


@pytest.mark.parametrize(("fields", "reason"), [
    ({"ratio": None}, "a split needs its ratio"),
    ({"ratio": 0.5}, "below 1 is a reverse split"),
    ({"kind": "reverse_split", "ratio": 10.0}, "a reverse split's ratio is below 1"),
    ({"kind": "merger"}, "kind must be one of"),
    ({"kind": "cash_dividend", "ratio": None}, "a cash distribution needs its amount per share"),
    ({"kind": "cash_dividend", "ratio": None, "amount": -0.3}, "amount must be a positive number"),
    ({"kind": "spin_off", "ratio": None, "price_factor": 1.2}, "price_factor must be within (0, 1)"),
    ({"ex_date": "June 9"}, "ex_date is missing or not a YYYY-MM-DD date"),
    ({"knowable_at": "2010-06-02T00:00:00Z"}, "knowable_at is after fetched_at"),
    ({"symbol": "gis inc"}, "symbol must be"),
])
def test_a_bad_action_is_quarantined_with_its_reason_and_the_rest_is_kept(fields, reason):
    checked = _check(_row(symbol="DHR", ex_date="2010-06-14"), _row(**fields, payload='{"bad": 1}'))
    assert checked.good["symbol"].to_list() == ["DHR"]
    assert checked.rejected.height == 1 and reason in checked.rejected["reason"][0]
    assert checked.rejected["payload"][0] == '{"bad": 1}'


def test_a_good_batch_is_typed_and_an_action_reported_twice_is_kept_once():
    checked = _check(_row(), _row(), _row(symbol="WY", kind="special_distribution", ex_date="2010-07-20", ratio=None,
                                         price_factor=0.381))
    assert checked.good.select("symbol", "kind", "ex_date").rows() == [
        ("GIS", "split", datetime(2010, 6, 9).date()), ("WY", "special_distribution", datetime(2010, 7, 20).date())]
    assert checked.good["knowable_at"][0] == datetime(2010, 5, 20, 20, tzinfo=UTC)
    assert checked.rejected["reason"].to_list() == ["duplicate of an earlier row in the same batch"]
