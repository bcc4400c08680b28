"""The momentum scanner: its documented score, its filters, and that it never looks ahead."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tapeflow.config import PROJECT_DATA
from tapeflow.ingest.watchlist import check_watchlist
from tapeflow.sources import Window
from tapeflow.sources.replay import ReplaySource
from tapeflow.sources.scanner import ScannerParams, scan

DAY0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)


def history(symbol: str, n: int, *, close: float = 10.0, volume: float = 1_000.0, rng: float = 0.2) -> list[dict]:
    """n quiet daily bars: flat price, constant volume and range."""
    return [
        dict(symbol=symbol, ts=DAY0 + timedelta(days=i), end_ts=DAY0 + timedelta(days=i, hours=6, minutes=30),
             open=close, high=close + rng / 2, low=close - rng / 2, close=close, volume=volume)
        for i in range(n)
    ]


def with_last(rows: list[dict], **last: float) -> list[dict]:
    return rows[:-1] + [{**rows[-1], **last}]


def frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows).with_columns(pl.col("ts", "end_ts").cast(pl.Datetime("us", "UTC")))


def after_last(rows: list[dict]) -> datetime:
    return rows[-1]["end_ts"] + timedelta(hours=1)


def test_score_follows_the_documented_formula():
    # gap 5% (half of 10% -> 20), relative volume 3x (half of 5x -> 17.5), range 2x (half of 3x -> 12.5)
    rows = with_last(history("ABC", 22), open=10.5, high=10.7, low=10.3, close=10.6, volume=3_000.0)
    snap = scan(frame(rows), after_last(rows), "pre_market")
    assert snap["ticker"].to_list() == ["ABC"] and snap["rank"].to_list() == [1]
    assert snap["score"].to_list() == [50.0]
    detail = json.loads(snap["payload"][0])
    assert (detail["gap_pct"], detail["rel_volume"], detail["range_expansion"]) == (5.0, 3.0, 2.0)


def test_full_marks_and_caps():
    rows = with_last(history("MAX", 22), open=12.0, high=13.0, low=11.0, close=12.5, volume=50_000.0)
    assert scan(frame(rows), after_last(rows), "pre_market")["score"].to_list() == [100.0]


def test_filters_price_band_history_staleness_and_zero_scores():
    hot = dict(open=10.5, high=10.7, low=10.3, close=10.6, volume=3_000.0)
    rows = (
        with_last(history("OK", 22), **hot)
        + with_last(history("PRICEY", 22, close=50.0), open=52.5, high=53.0, low=52.0, close=52.8, volume=3_000.0)
        + with_last(history("YOUNG", 15), **hot)  # fewer than lookback + 1 bars
        + with_last(history("STALE", 21), **hot)  # its data stopped a day before everyone else's
        + history("QUIET", 22)  # nothing happened: score 0, not listed
    )
    snap = scan(frame(rows), after_last(rows), "pre_market")
    assert snap["ticker"].to_list() == ["OK"]


def test_ranks_by_score_then_ticker_and_respects_limit():
    hot = dict(open=10.5, high=10.7, low=10.3, close=10.6, volume=3_000.0)
    rows = with_last(history("BBB", 22), **hot) + with_last(history("AAA", 22), **hot)
    rows += with_last(history("CCC", 22), open=11.0, high=11.2, low=10.8, close=11.0, volume=3_000.0)
    snap = scan(frame(rows), after_last(rows), "pre_market", ScannerParams(limit=2))
    assert snap.select("rank", "ticker").rows() == [(1, "CCC"), (2, "AAA")]


def test_output_passes_the_watchlist_checks():
    rows = with_last(history("ABC", 22), open=10.5, high=10.7, low=10.3, close=10.6, volume=3_000.0)
    checked = check_watchlist(scan(frame(rows), after_last(rows), "pre_market"))
    assert checked.rejected.height == 0 and checked.good.height == 1


@pytest.fixture(scope="module")
def panel() -> pl.DataFrame:
    raw = ReplaySource(PROJECT_DATA).bars(None, "1d", Window(datetime(2009, 1, 1, tzinfo=UTC), datetime(2011, 1, 1, tzinfo=UTC)))
    return raw.filter(pl.col("problem").is_null()).select("symbol", "ts", "end_ts", "open", "high", "low", "close", "volume")


@settings(max_examples=25, deadline=None)
@given(day=st.integers(min_value=25, max_value=240), minutes=st.integers(min_value=-600, max_value=600))
def test_no_look_ahead_on_the_real_panel(panel, day, minutes):
    """The snapshot at as_of is identical when every bar ending after as_of is removed, or
    replaced by nonsense: nothing from the future takes part."""
    ends = panel["end_ts"].unique().sort()
    as_of = ends[day] + timedelta(minutes=minutes)
    full = scan(panel, as_of, "pre_market")
    future = pl.col("end_ts") > as_of
    truncated = scan(panel.filter(~future), as_of, "pre_market")
    poisoned = scan(
        panel.with_columns(*(pl.when(future).then(pl.col(c) * 3).otherwise(pl.col(c)).alias(c)
                             for c in ("open", "high", "close", "volume"))),
        as_of, "pre_market",
    )
    assert full.equals(truncated)
    assert full.equals(poisoned)
    used = pl.Series([json.loads(p)["bar_end"] for p in full["payload"]]).str.to_datetime(time_zone="UTC")
    assert used.len() == 0 or used.max() <= as_of


def test_naive_as_of_is_refused(panel):
    with pytest.raises(ValueError, match="naive"):
        scan(panel, datetime(2010, 5, 7, 9, 0), "pre_market")
