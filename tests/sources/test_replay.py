"""The replay source over the bundled real data: counts, instants, DST, half days, bad lines."""

from __future__ import annotations

import gzip
import shutil
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from tapeflow.calendar.exchange import NEW_YORK
from tapeflow.config import PROJECT_DATA
from tapeflow.ingest.bars import check_bars
from tapeflow.model import Timeframe
from tapeflow.sources import MarketData, Window
from tapeflow.sources.replay import DAILY_FILE, MINUTE_FILES, ReplaySource
from tapeflow.venues.configured import market_data

ALL = Window.days(date(2000, 1, 1), date(2030, 1, 1))


@pytest.fixture(scope="module")
def source() -> ReplaySource:
    return ReplaySource(PROJECT_DATA)


@pytest.fixture(scope="module")
def daily(source) -> pl.DataFrame:
    return source.bars(None, Timeframe.DAY, ALL)


@pytest.fixture(scope="module")
def minute(source) -> pl.DataFrame:
    return source.bars(["SPY"], Timeframe.MINUTE, ALL)


def ny(frame: pl.DataFrame, column: str = "ts") -> pl.Series:
    return frame[column].dt.convert_time_zone("America/New_York")


def test_it_is_a_market_data_source(source):
    assert isinstance(source, MarketData)


def test_daily_panel_is_complete(daily):
    # The provenance note: 122,574 rows, 524 symbols, 245 sessions 2009-08-21 .. 2010-08-20.
    assert daily.height == 122_574
    assert daily["symbol"].n_unique() == 524
    assert ny(daily).dt.date().n_unique() == 245
    assert ny(daily).dt.date().min() == date(2009, 8, 21) and ny(daily).dt.date().max() == date(2010, 8, 20)


def test_daily_bar_spans_the_regular_session(daily):
    a = daily.filter((pl.col("symbol") == "A") & (ny(daily).dt.date() == date(2009, 8, 21))).row(0, named=True)
    assert a["ts"] == datetime(2009, 8, 21, 13, 30, tzinfo=UTC)  # 09:30 EDT
    assert a["end_ts"] == datetime(2009, 8, 21, 20, 0, tzinfo=UTC)  # 16:00 EDT: knowable at the close
    assert (a["open"], a["high"], a["low"], a["close"]) == (25.6, 25.61, 25.22, 25.55)
    assert a["volume"] == 3_475_800  # the file stores hundreds of shares
    winter = daily.filter(ny(daily).dt.date() == date(2010, 1, 4)).row(0, named=True)
    assert winter["ts"] == datetime(2010, 1, 4, 14, 30, tzinfo=UTC)  # 09:30 EST


def test_half_day_bar_ends_at_the_early_close(daily):
    friday = daily.filter(ny(daily).dt.date() == date(2009, 11, 27))
    assert friday.height > 400
    assert friday["end_ts"].unique().to_list() == [datetime(2009, 11, 27, 18, 0, tzinfo=UTC)]  # 13:00 EST


def test_minute_bars_are_end_stamped_and_cover_extended_hours(minute):
    assert minute.height == 14_180 + 17_577
    jan3 = minute.filter(ny(minute).dt.date() == date(2011, 1, 3)).sort("ts")
    first = jan3.row(0, named=True)
    # The file's first line, "20110103 090100", is the bar [04:00, 04:01) New York.
    assert first["end_ts"] == datetime(2011, 1, 3, 9, 1, tzinfo=UTC)
    assert first["ts"].astimezone(NEW_YORK).strftime("%H:%M") == "04:00"
    assert (minute["end_ts"] - minute["ts"]).unique().to_list() == [timedelta(minutes=1)]
    regular = jan3.filter(ny(jan3).dt.time().is_between(datetime(2000, 1, 1, 9, 30).time(), datetime(2000, 1, 1, 15, 59).time()))
    assert regular.height == 390


def test_minute_bars_follow_the_dst_switch(source):
    around = source.bars(["SPY"], Timeframe.MINUTE, Window.days(date(2011, 3, 11), date(2011, 3, 14)))
    firsts = around.group_by(ny(around).dt.date().alias("day")).agg(pl.col("ts").min()).sort("day")
    assert firsts["day"].to_list() == [date(2011, 3, 11), date(2011, 3, 14)]
    # 04:00 New York is 09:00 UTC before the switch (EST) and 08:00 UTC after it (EDT).
    assert firsts["ts"].to_list() == [
        datetime(2011, 3, 11, 9, 0, tzinfo=UTC),
        datetime(2011, 3, 14, 8, 0, tzinfo=UTC),
    ]


def test_window_and_symbol_filters(source):
    window = Window.days(date(2010, 8, 19), date(2010, 8, 20))
    two = source.bars(["AAPL", "MSFT"], Timeframe.DAY, window)
    assert sorted(two["symbol"].unique().to_list()) == ["AAPL", "MSFT"]
    assert two.height == 4
    assert two["ts"].min() >= window.start and two["ts"].max() < window.end
    assert source.bars(None, Timeframe.MINUTE, window).height == 0


def test_bundled_data_checks_out_except_known_bad_rows(daily, minute):
    checked = check_bars(daily)
    reasons = checked.rejected.group_by("reason").len().sort("reason")
    assert reasons.rows() == [
        ("open/close outside the bar's range", 78),
        ("volume at the file's ceiling of 21,474,836 hundreds: true volume unknown", 1),
    ]
    assert checked.good.height == 122_574 - 79
    assert check_bars(minute).rejected.height == 0


def test_bad_lines_are_kept_for_the_quarantine(tmp_path):
    (tmp_path / "daily").mkdir()
    (tmp_path / "intraday").mkdir()
    lines = [
        "Date,Symbol,Open,High,Low,Close,Volume",
        "20100104,AAA,10,11,9,10.5,100",
        "20100102,AAA,10,11,9,10.5,100",  # a Saturday
        "2010-01-05,AAA,10,11,9,10.5,100",
        "20100105,AAA,ten,11,9,10.5,100",
        "19900104,AAA,10,11,9,10.5,100",  # before the calendar's range
    ]
    with gzip.open(tmp_path / DAILY_FILE, "wt") as f:
        f.write("\n".join(lines) + "\n")
    for name in MINUTE_FILES:
        shutil.copy(PROJECT_DATA / name, tmp_path / name)
    raw = ReplaySource(tmp_path).bars(None, Timeframe.DAY, ALL)
    assert raw.height == 5
    checked = check_bars(raw)
    assert checked.good.height == 1
    reasons = dict(zip(checked.rejected["payload"].str.json_decode().struct.field("Date"), checked.rejected["reason"]))
    assert reasons["20100102"] == "Date 20100102: 2010-01-02 is not an XNYS session"
    assert reasons["19900104"].startswith("Date 19900104: 1990-01-04 is outside the XNYS calendar range")
    assert reasons["2010-01-05"].startswith("Date 2010-01-05 is not a yyyymmdd date")
    assert reasons["20100105"] == "open is missing or not a number"


def test_missing_data_dir_names_the_setting(tmp_path):
    with pytest.raises(FileNotFoundError, match="TAPEFLOW_DATA_DIR"):
        ReplaySource(tmp_path).bars(None, Timeframe.DAY, ALL)


def test_unknown_source_is_named(settings):
    with pytest.raises(ValueError, match="unknown market-data source 'nope'; known: replay"):
        market_data("nope", settings)


def test_window_rejects_naive_and_reversed_bounds():
    with pytest.raises(ValueError, match="naive"):
        Window(datetime(2011, 1, 1), datetime(2011, 1, 2, tzinfo=UTC))
    with pytest.raises(ValueError, match="before first day"):
        Window.days(date(2011, 1, 2), date(2011, 1, 1))
    days = Window.days(date(2011, 3, 13), date(2011, 3, 13))  # the spring-forward day is 23 hours long
    assert days.end - days.start == timedelta(hours=23)
