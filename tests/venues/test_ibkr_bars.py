"""IbkrSource through the real ib_async client against the fake IB Gateway on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from ib_async import IB

from tapeflow.config import Settings
from tapeflow.ingest.bars import check_bars
from tapeflow.model import Timeframe
from tapeflow.sources.base import MarketData, Window, empty_raw_bars
from tapeflow.sources.http import VendorError
from tapeflow.venues.ibkr.bars import IbkrSource, pieces
from tests.fakes.ib_gateway import (
    ACCOUNT,
    PACING,
    FakeIBGateway,
    daily_bar,
    minute_bars,
)

UTC = UTC
PACING_WAIT = 0.25
RECEIVED = datetime(2026, 12, 1, tzinfo=UTC)  # the batches below were "received" after every bar ended


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def gateway() -> Iterator[FakeIBGateway]:
    with FakeIBGateway(symbols=["AAPL", "MSFT"]) as gw:
        yield gw


@pytest.fixture
def ib_settings(settings: Settings, gateway: FakeIBGateway) -> Settings:
    return settings.model_copy(update={"ibkr_host": "127.0.0.1", "ibkr_port": gateway.port})


@pytest.fixture
def naps() -> list[float]:
    return []


@pytest.fixture
def source(ib_settings: Settings, naps: list[float]) -> IbkrSource:
    return IbkrSource(ib_settings, connect_timeout_s=2, request_timeout_s=2, pacing_wait_s=PACING_WAIT,
                      sleep=naps.append)


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- chunking / paging
def test_long_minute_window_is_chunked_and_returns_every_bar_once_in_order(
    source: IbkrSource, gateway: FakeIBGateway
) -> None:
    first = utc(2026, 11, 23, 9, 0)
    gateway.add_bars("AAPL", "1 min", minute_bars(first, 3000))  # 50 hours of bars, 2026-11-23 09:00 .. 11-25 11:00
    window = Window(utc(2026, 11, 23, 10, 0), utc(2026, 11, 25, 10, 0))  # 48 h -> two full pieces

    raw = source.bars(["AAPL"], Timeframe.MINUTE, window)

    assert raw.schema == empty_raw_bars().schema
    assert raw.height == 48 * 60
    assert raw["ts"].to_list() == [window.start + timedelta(minutes=i) for i in range(48 * 60)]
    assert raw["ts"].n_unique() == raw.height
    sent = [(r.end, r.duration, r.bar_size, r.use_rth, r.what_to_show, r.format_date)
            for r in gateway.history_requests]
    assert sent == [
        ("20261124 10:00:00 UTC", "86400 S", "1 min", "0", "TRADES", "2"),
        ("20261125 10:00:00 UTC", "86400 S", "1 min", "0", "TRADES", "2"),
    ]


def test_pieces_tile_the_window_and_stay_within_ib_limits() -> None:
    window = Window(utc(2026, 11, 23, 14, 30), utc(2026, 11, 25, 2, 0))
    minute = pieces(Timeframe.MINUTE, window)
    assert [(p.start, p.end, p.duration) for p in minute] == [
        (utc(2026, 11, 23, 14, 30), utc(2026, 11, 24, 14, 30), "86400 S"),
        (utc(2026, 11, 24, 14, 30), utc(2026, 11, 25, 2, 0), "41400 S"),
    ]
    daily = pieces(Timeframe.DAY, Window.days(date(2024, 1, 1), date(2026, 11, 27)))
    assert [p.duration for p in daily] == ["365 D", "365 D", "335 D"]
    assert all(a.end == b.start for a, b in zip(daily, daily[1:]))


def test_gateway_answering_more_than_asked_still_gives_each_bar_once_and_only_in_window(
    source: IbkrSource, gateway: FakeIBGateway
) -> None:
    gateway.answer_beyond_duration = True  # every answer reaches back to the first stored bar
    gateway.add_bars("AAPL", "1 min", minute_bars(utc(2026, 11, 23, 23, 0), 26 * 60))
    window = Window(utc(2026, 11, 24, 0, 0), utc(2026, 11, 25, 0, 0) + timedelta(minutes=30))

    raw = source.bars(["AAPL"], Timeframe.MINUTE, window)

    assert len(gateway.history_requests) == 2
    assert raw["ts"].to_list() == [window.start + timedelta(minutes=i) for i in range(24 * 60 + 30)]


# -------------------------------------------------------------------------- instants
def test_minute_bar_instants_fields_and_payload(source: IbkrSource, gateway: FakeIBGateway) -> None:
    premarket = utc(2026, 11, 24, 13, 0)  # 08:00 New York: extended hours come back (useRTH=0)
    gateway.add_bars("AAPL", "1 min", minute_bars(premarket, 2, price=230.0))

    raw = source.bars(["AAPL"], Timeframe.MINUTE, Window(utc(2026, 11, 24, 12), utc(2026, 11, 24, 14)))

    row = raw.row(0, named=True)
    assert (row["ts"], row["end_ts"]) == (premarket, premarket + timedelta(minutes=1))
    assert (row["open"], row["high"], row["low"], row["close"]) == (230.0, 230.05, 229.95, 230.01)
    assert (row["volume"], row["vwap"], row["trade_count"]) == (100.0, 230.0, 10)
    assert (row["symbol"], row["timeframe"], row["adjustment"], row["source"], row["problem"]) == (
        "AAPL", "1m", "split", "ibkr", None)
    assert json.loads(row["payload"]) == {
        "symbol": "AAPL", "date": "2026-11-24T13:00:00+00:00", "open": 230.0, "high": 230.05, "low": 229.95,
        "close": 230.01, "volume": 100.0, "average": 230.0, "barCount": 10,
    }
    assert raw["ts"][1] == premarket + timedelta(minutes=1)
    assert len(check_bars(raw, received_at=RECEIVED).good) == 2


def test_daily_bar_instants_open_to_close_and_half_day(source: IbkrSource, gateway: FakeIBGateway) -> None:
    gateway.add_bars("AAPL", "1 day", [daily_bar(date(2026, 11, 24), 100.0), daily_bar(date(2026, 11, 27), 102.0)])

    raw = source.bars(["AAPL"], Timeframe.DAY, Window.days(date(2026, 11, 23), date(2026, 11, 27)))

    assert raw["ts"].to_list() == [utc(2026, 11, 24, 14, 30), utc(2026, 11, 27, 14, 30)]  # 09:30 New York
    assert raw["end_ts"].to_list() == [utc(2026, 11, 24, 21, 0), utc(2026, 11, 27, 18, 0)]  # 16:00; 13:00 half day
    assert raw["timeframe"].to_list() == ["1d", "1d"]
    assert json.loads(raw["payload"][1])["date"] == "2026-11-27"
    (request,) = gateway.history_requests
    assert (request.end, request.duration, request.bar_size, request.use_rth, request.format_date) == (
        "20261128 05:00:00 UTC", "6 D", "1 day", "1", "2")


def test_daily_bar_on_a_holiday_comes_back_with_a_problem(source: IbkrSource, gateway: FakeIBGateway) -> None:
    gateway.add_bars("AAPL", "1 day", [daily_bar(date(2026, 11, 26), 100.0)])  # Thanksgiving

    raw = source.bars(["AAPL"], Timeframe.DAY, Window.days(date(2026, 11, 23), date(2026, 11, 27)))

    assert raw["problem"].to_list() == ["2026-11-26 is not an XNYS session"]
    assert check_bars(raw, received_at=RECEIVED).rejected["reason"].to_list() == ["2026-11-26 is not an XNYS session"]


def test_no_data_is_an_empty_batch_not_an_error(source: IbkrSource) -> None:
    raw = source.bars(["AAPL"], Timeframe.MINUTE, Window(utc(2026, 11, 28), utc(2026, 11, 29)))  # a Saturday
    assert raw.height == 0
    assert raw.schema == empty_raw_bars().schema


# ---------------------------------------------------------------------------- errors
def test_unknown_symbol_becomes_a_problem_row_and_the_run_continues(
    source: IbkrSource, gateway: FakeIBGateway
) -> None:
    gateway.add_bars("AAPL", "1 min", minute_bars(utc(2026, 11, 24, 15), 3))

    raw = source.bars(["ZZZZ", "AAPL"], Timeframe.MINUTE, Window(utc(2026, 11, 24, 15), utc(2026, 11, 24, 16)))

    assert raw["symbol"].to_list() == ["ZZZZ", "AAPL", "AAPL", "AAPL"]
    assert raw["problem"][0] == "IB does not know symbol ZZZZ (error 200)"
    assert json.loads(raw["payload"][0]) == {
        "symbol": "ZZZZ", "code": 200, "message": "No security definition has been found for the request"}
    checked = check_bars(raw, received_at=RECEIVED)
    assert len(checked.good) == 3
    assert checked.rejected["reason"][0].startswith("IB does not know symbol ZZZZ (error 200)")


def test_pacing_violation_waits_then_retries_once(
    source: IbkrSource, gateway: FakeIBGateway, naps: list[float]
) -> None:
    gateway.add_bars("AAPL", "1 min", minute_bars(utc(2026, 11, 24, 15), 3))
    gateway.fail_next_history(162, PACING)

    raw = source.bars(["AAPL"], Timeframe.MINUTE, Window(utc(2026, 11, 24, 15), utc(2026, 11, 24, 16)))

    assert raw.height == 3
    assert naps == [PACING_WAIT]
    first, second = gateway.history_requests
    assert (first.end, first.duration) == (second.end, second.duration) == ("20261124 16:00:00 UTC", "3600 S")


def test_pacing_violation_twice_is_a_vendor_error(
    source: IbkrSource, gateway: FakeIBGateway, naps: list[float]
) -> None:
    gateway.fail_next_history(162, PACING, times=2)

    with pytest.raises(VendorError, match=r"pacing violation \(error 162\)"):
        source.bars(["AAPL"], Timeframe.MINUTE, Window(utc(2026, 11, 24, 15), utc(2026, 11, 24, 16)))
    assert naps == [PACING_WAIT]


def test_other_historical_error_is_a_problem_row_and_the_run_continues(
    source: IbkrSource, gateway: FakeIBGateway
) -> None:
    gateway.add_bars("MSFT", "1 min", minute_bars(utc(2026, 11, 24, 15), 2))
    gateway.fail_next_history(354, "Requested market data is not subscribed.")

    raw = source.bars(["AAPL", "MSFT"], Timeframe.MINUTE, Window(utc(2026, 11, 24, 15), utc(2026, 11, 24, 16)))

    assert raw["symbol"].to_list() == ["AAPL", "MSFT", "MSFT"]
    assert raw["problem"][0] == (
        "IB refused historical data for AAPL (error 354: Requested market data is not subscribed.)")


def test_gateway_down_is_a_fast_vendor_error_naming_the_settings(settings: Settings) -> None:
    source = IbkrSource(settings.model_copy(update={"ibkr_host": "127.0.0.1", "ibkr_port": free_port()}))
    started = time.monotonic()

    with pytest.raises(VendorError) as caught:
        source.bars(["AAPL"], Timeframe.MINUTE, Window(utc(2026, 11, 24, 15), utc(2026, 11, 24, 16)))

    assert time.monotonic() - started < 2
    message = str(caught.value)
    assert "connection refused" in message
    assert "TAPEFLOW_IBKR_HOST" in message and "TAPEFLOW_IBKR_PORT" in message
    assert caught.value.vendor == "ibkr"


def test_client_id_in_use_is_a_vendor_error_naming_the_setting(
    ib_settings: Settings, gateway: FakeIBGateway
) -> None:
    holder = IB()
    holder.connect("127.0.0.1", gateway.port, clientId=ib_settings.ibkr_client_id, timeout=2)  # another session
    try:
        with pytest.raises(VendorError, match="client id 17 is already in use.*TAPEFLOW_IBKR_CLIENT_ID"):
            IbkrSource(ib_settings, connect_timeout_s=1).bars(
                ["AAPL"], Timeframe.MINUTE, Window(utc(2026, 11, 24, 15), utc(2026, 11, 24, 16)))
    finally:
        holder.disconnect()


def test_connection_dropped_mid_request_is_a_vendor_error(source: IbkrSource, gateway: FakeIBGateway) -> None:
    gateway.drop_on_next_history()
    started = time.monotonic()

    with pytest.raises(VendorError, match="lost the connection to IB Gateway at 127.0.0.1"):
        source.bars(["AAPL"], Timeframe.MINUTE, Window(utc(2026, 11, 24, 15), utc(2026, 11, 24, 16)))
    assert time.monotonic() - started < 2


def test_unanswered_request_times_out_as_a_vendor_error(ib_settings: Settings, gateway: FakeIBGateway) -> None:
    gateway.ignore_next_history()
    source = IbkrSource(ib_settings, request_timeout_s=0.3)
    started = time.monotonic()

    with pytest.raises(VendorError, match=r"did not answer .* within 0.3 s"):
        source.bars(["AAPL"], Timeframe.MINUTE, Window(utc(2026, 11, 24, 15), utc(2026, 11, 24, 16)))
    assert time.monotonic() - started < 2


# ------------------------------------------------------------------- batch contract
def test_duplicate_bars_from_ib_both_come_back_and_check_bars_keeps_one(
    source: IbkrSource, gateway: FakeIBGateway
) -> None:
    bar = minute_bars(utc(2026, 11, 24, 15), 1)
    gateway.add_bars("AAPL", "1 min", bar + bar)

    raw = source.bars(["AAPL"], Timeframe.MINUTE, Window(utc(2026, 11, 24, 15), utc(2026, 11, 24, 16)))

    assert raw.height == 2
    assert raw["payload"][0] == raw["payload"][1]
    checked = check_bars(raw, received_at=RECEIVED)
    assert checked.good["ts"].to_list() == [utc(2026, 11, 24, 15)]
    assert checked.rejected["reason"].to_list() == ["duplicate of an earlier row in the same batch"]


def test_unavailable_values_are_null_not_minus_one(source: IbkrSource, gateway: FakeIBGateway) -> None:
    (bar,) = minute_bars(utc(2026, 11, 24, 15), 1)
    gateway.add_bars("AAPL", "1 min", [replace(bar, wap=-1.0, count=-1)])  # IB's "not available"

    raw = source.bars(["AAPL"], Timeframe.MINUTE, Window(utc(2026, 11, 24, 15), utc(2026, 11, 24, 16)))

    assert (raw["vwap"][0], raw["trade_count"][0]) == (None, None)
    assert json.loads(raw["payload"][0])["average"] == -1.0


def test_symbols_are_required_and_none_asked_means_no_connection(settings: Settings) -> None:
    source = IbkrSource(settings.model_copy(update={"ibkr_port": free_port()}))
    window = Window(utc(2026, 11, 24, 15), utc(2026, 11, 24, 16))
    assert isinstance(source, MarketData)
    with pytest.raises(ValueError, match="ibkr needs explicit symbols"):
        source.bars(None, Timeframe.MINUTE, window)
    assert source.bars([], Timeframe.MINUTE, window).equals(empty_raw_bars())


def test_runs_from_a_worker_thread_like_a_sync_task(source: IbkrSource, gateway: FakeIBGateway) -> None:
    gateway.add_bars("AAPL", "1 min", minute_bars(utc(2026, 11, 24, 15), 2))
    heights: list[int] = []
    worker = threading.Thread(target=lambda: heights.append(
        source.bars(["AAPL"], Timeframe.MINUTE, Window(utc(2026, 11, 24, 15), utc(2026, 11, 24, 16))).height))
    worker.start()
    worker.join(10)
    assert heights == [2]


def test_refuses_to_run_inside_a_running_event_loop(source: IbkrSource) -> None:
    async def inside() -> None:
        source.bars(["AAPL"], Timeframe.MINUTE, Window(utc(2026, 11, 24, 15), utc(2026, 11, 24, 16)))

    with pytest.raises(RuntimeError, match="blocking: call it from synchronous code"):
        asyncio.run(inside())


def test_account_number_appears_in_no_log_and_no_row(
    source: IbkrSource, gateway: FakeIBGateway, caplog: pytest.LogCaptureFixture
) -> None:
    gateway.add_bars("AAPL", "1 min", minute_bars(utc(2026, 11, 24, 15), 2))
    caplog.set_level(logging.DEBUG)  # ib_async dumps every wire frame at DEBUG, managedAccounts included

    raw = source.bars(["AAPL", "ZZZZ"], Timeframe.MINUTE, Window(utc(2026, 11, 24, 15), utc(2026, 11, 24, 16)))

    assert "<<< 15,1,<account>" in caplog.text  # the frame was logged, masked
    assert ACCOUNT not in caplog.text
    assert not raw.select(pl.col("payload").str.contains(ACCOUNT)).to_series().any()
    assert ACCOUNT not in repr(source)
