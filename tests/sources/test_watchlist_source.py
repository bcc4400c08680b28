"""The watchlist interface: the scanner and BullAlert both implement it, the settings' name picks
one, and the scanner as a source gives exactly what `scan` gives, from one read of the bars for
many as-of instants."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from pydantic import SecretStr

from tapeflow.config import PROJECT_DATA, Settings
from tapeflow.schemas import WATCHLIST_RAW_COLUMNS, empty_raw_watchlist
from tapeflow.sources import WatchlistSource, Window
from tapeflow.sources.replay import ReplaySource
from tapeflow.sources.scanner import ScannerParams, ScannerSource, scan
from tapeflow.venues.bullalert import BullAlertSource
from tapeflow.venues.configured import watchlist_source

AS_OF = [datetime(2010, 5, d, 13, 0, tzinfo=UTC) for d in (3, 4, 5, 6, 7)]  # 09:00 New York
METHODS = ("snapshot", "snapshots", "close")


@pytest.fixture(scope="module")
def panel() -> pl.DataFrame:
    window = Window(datetime(2010, 1, 1, tzinfo=UTC), datetime(2010, 6, 1, tzinfo=UTC))
    raw = ReplaySource(PROJECT_DATA).bars(None, "1d", window)
    return raw.filter(pl.col("problem").is_null()).select("symbol", "ts", "end_ts", "open", "high", "low", "close", "volume")


class Reads:
    """daily_bars for ScannerSource that serves `panel` and remembers each `until` asked."""

    def __init__(self, panel: pl.DataFrame) -> None:
        self.panel, self.until = panel, []

    def __call__(self, until: datetime) -> pl.DataFrame:
        self.until.append(until)
        return self.panel.filter(pl.col("end_ts") <= until)


def sources() -> list[WatchlistSource]:
    bullalert = Settings(bullalert_url="http://127.0.0.1:9", bullalert_api_key=SecretStr("SEKRET-BA-iface"))
    return [ScannerSource(lambda until: pl.DataFrame()), BullAlertSource(bullalert)]


@pytest.mark.usefixtures("tapeflow_home")
def test_both_sources_implement_the_interface():
    for source in sources():
        assert isinstance(source, WatchlistSource)
        for method in METHODS:
            # Same parameters by name and order: callers pass them either way.
            expected = list(inspect.signature(getattr(WatchlistSource, method)).parameters)[1:]
            assert list(inspect.signature(getattr(source, method)).parameters) == expected, (source, method)
        source.close()
    assert [s.name for s in sources()] == ["scanner", "bullalert"]


def test_the_settings_name_picks_the_source_and_an_unknown_name_is_refused(settings, monkeypatch):
    with pytest.raises(ValueError, match="unknown watchlist source 'nope'; known: scanner, bullalert"):
        watchlist_source("nope", settings)
    assert isinstance(watchlist_source("scanner", settings), ScannerSource)
    monkeypatch.setenv("TAPEFLOW_BULLALERT_API_KEY", "SEKRET-BA-picked")
    assert isinstance(watchlist_source("bullalert", Settings()), BullAlertSource)


def test_scanner_snapshots_are_scan_at_each_moment_from_one_read(panel):
    reads = Reads(panel)
    moments = [(at, "pre_market") for at in AS_OF]
    batch = ScannerSource(reads, ScannerParams(limit=7)).snapshots(moments, limit=None)
    expected = pl.concat([scan(panel, at, "pre_market", ScannerParams(limit=7)) for at in AS_OF])
    assert batch.equals(expected)
    assert batch.columns == [*WATCHLIST_RAW_COLUMNS, "problem"] and batch.height == 5 * 7
    assert reads.until == [max(AS_OF)]


def test_scanner_snapshot_limit_and_clock(panel):
    reads = Reads(panel)
    source = ScannerSource(reads, clock=lambda: AS_OF[-1])
    now = source.snapshot("market", None, 3)
    assert now.equals(scan(panel, AS_OF[-1], "market", ScannerParams(limit=3)))
    assert source.snapshot("pre_market", AS_OF[0], None).height == ScannerParams().limit


def test_scanner_refuses_what_it_cannot_store_and_reads_nothing_for_no_moments(panel):
    reads = Reads(panel)
    source = ScannerSource(reads)
    with pytest.raises(ValueError, match="scanner session must be one of pre_market, market, after_hours, got 'all'"):
        source.snapshot("all", AS_OF[0], 20)
    with pytest.raises(ValueError, match="naive"):
        source.snapshots([(datetime(2010, 5, 7, 9, 0), "pre_market")], 20)
    with pytest.raises(ValueError, match="limit"):
        source.snapshot("pre_market", AS_OF[0], 0)
    assert source.snapshots([], 20).equals(empty_raw_watchlist())
    assert reads.until == []


def test_scanner_sees_no_bar_that_ended_after_as_of(panel):
    """The read is bounded by the latest as_of, and each scan by its own: a later moment in the
    same call changes nothing for an earlier one."""
    early = ScannerSource(Reads(panel)).snapshot("pre_market", AS_OF[0], 20)
    both = ScannerSource(Reads(panel)).snapshots([(AS_OF[0], "pre_market"), (AS_OF[0] + timedelta(days=30), "pre_market")], 20)
    assert both.filter(pl.col("as_of") == AS_OF[0]).equals(early)
