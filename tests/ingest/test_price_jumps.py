"""The price-jump check: what it flags, what a recorded action explains, and a planted
3-for-1 jump in replayed data reaching `data_findings` and the backtest report."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest

from strategies.sma_cross import SmaCross
from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.loading import history_between
from tapeflow.backtest.run import run_backtest
from tapeflow.config import PROJECT_DATA
from tapeflow.ingest.actions import check_actions
from tapeflow.ingest.bars import check_bars
from tapeflow.ingest.price_jumps import find_jumps, record_jumps
from tapeflow.ingest.store import ACTIONS, BARS, store_batch
from tapeflow.model import Timeframe
from tapeflow.sources import Window
from tapeflow.sources.replay import ReplaySource
from tapeflow.sources.replay_actions import ReplayActions
from tests.actions_kit import action, actions_frame, bundled_actions, plant_split
from tests.research_kit import ALL, path_bars

NONE = actions_frame([])


def _jump(ratio: float, volume_after: float = 1e6) -> pl.DataFrame:
    bars = path_bars([0.0] * 6, price=60.0)
    after = pl.int_range(pl.len()) >= 4
    return bars.with_columns(*(pl.when(after).then(pl.col(c) * ratio).otherwise(pl.col(c)).alias(c)
                               for c in ("open", "high", "low", "close")),
                             pl.when(after).then(volume_after).otherwise(pl.col("volume")).alias("volume"))


@pytest.mark.parametrize(("ratio", "volume", "words"), [
    (1 / 3, 1e6, "looks like a 3-for-1 split"),
    (10.0, 1e5, "looks like a 1-for-10 reverse split"),
    (0.55, 3e6, "moves x0.550 with volume x3.00"),
    (2.4, 1e6, "moves x2.400"),
])
def test_a_move_that_looks_like_an_action_is_flagged(ratio, volume, words):
    found = find_jumps(_jump(ratio, volume), NONE, "1d")
    assert found.height == 1 and words in found["detail"][0] and found["ratio"][0] == pytest.approx(ratio)


@pytest.mark.parametrize(("ratio", "volume"), [(0.9, 1e6), (0.55, 1e6), (1.3, 5e6), (0.78, 1e6)])
def test_an_ordinary_move_is_not(ratio, volume):
    # 0.55 without a volume change stays in the wide band; 0.78 is 2.5% from 5-for-4's 0.8.
    assert find_jumps(_jump(ratio, volume), NONE, "1d").is_empty()


def test_a_recorded_action_explains_its_jump_unless_it_leaves_one():
    bars = _jump(0.5)
    ex = bars["ts"].dt.convert_time_zone("America/New_York").dt.date()[4]
    assert find_jumps(bars, actions_frame([action("X", "split", ex, ratio=2.0)]), "1d").is_empty()
    wrong = find_jumps(bars, actions_frame([action("X", "split", ex, ratio=4.0)]), "1d")  # x0.25 recorded, x0.5 seen
    assert wrong.height == 1 and "the recorded split" in wrong["detail"][0] and "leaving x2.000" in wrong["detail"][0]
    elsewhere = find_jumps(bars, actions_frame([action("X", "split", date(2023, 1, 3), ratio=2.0)]), "1d")
    assert elsewhere.height == 1  # an action on another day explains nothing here


def test_the_bundled_actions_explain_every_action_jump_of_the_panel():
    bars = ReplaySource(PROJECT_DATA).bars(None, "1d", ALL).filter(pl.col("problem").is_null())
    unexplained = find_jumps(bars, NONE, "1d")
    assert {"GIS", "DHR", "ESRX", "ETFC", "STR", "WY"} <= set(unexplained["symbol"])
    left = find_jumps(bars, bundled_actions(), "1d")
    # CVS fell 20% on 2009-11-05 (0.799, a 5-for-4 split's ratio): a real move, flagged, never "fixed".
    assert left.select("symbol", pl.col("ts").dt.date()).rows() == [("CVS", date(2009, 11, 5))]


def test_a_planted_three_for_one_jump_is_recorded_and_listed_by_the_report(settings, warehouse):
    raw = ReplaySource(PROJECT_DATA).bars(["IBM", "MSFT"], Timeframe.DAY, Window.days(date(2010, 1, 4), date(2010, 8, 20)))
    planted = plant_split(raw, "IBM", date(2010, 5, 3), 3.0)  # the feed splits IBM 3-for-1; nobody recorded it
    checked = check_bars(planted)
    started = datetime.now(UTC)
    store_batch(warehouse, BARS, checked.good, checked.rejected, run_id="r1", source="replay", feed="bars:1d",
                params={}, started_at=started)
    found = record_jumps(warehouse, "1d", date(2010, 1, 4), date(2010, 8, 20))
    assert found.select("symbol", pl.col("ts").dt.date()).rows() == [("IBM", date(2010, 5, 3))]
    assert "looks like a 3-for-1 split" in found["detail"][0]
    with warehouse.read() as con:
        stored = con.sql("SELECT symbol, ts::DATE AS day, detail FROM data_findings").fetchall()
    assert [(s, d) for s, d, _ in stored] == [("IBM", date(2010, 5, 3))]

    start, end = datetime(2010, 1, 4, tzinfo=UTC), datetime(2010, 8, 21, tzinfo=UTC)
    history, _ = history_between(settings, "1d", None, start, end)
    run = run_backtest(SmaCross(), history, BacktestConfig())
    assert [line for line in run.assumptions["data findings"] if line.startswith("IBM 2010-05-03")]

    # Once the split is recorded, it explains the jump: the finding goes, the backtest adjusts.
    fetched = check_actions(pl.DataFrame([{**action("IBM", "split", date(2010, 5, 3), ratio=3.0), "source": "manual",
                                           "new_symbol": None, "fetched_at": started, "payload": "{}", "problem": None}]))
    store_batch(warehouse, ACTIONS, fetched.good, fetched.rejected, run_id="r2", source="manual",
                feed="corporate_actions", params={}, started_at=started)
    assert record_jumps(warehouse, "1d", date(2010, 1, 4), date(2010, 8, 20)).is_empty()
    with warehouse.read() as con:
        assert con.sql("SELECT count(*) FROM data_findings").fetchall() == [(0,)]
    history, _ = history_between(settings, "1d", None, start, end)
    run = run_backtest(SmaCross(), history, BacktestConfig())
    assert run.assumptions["data findings"] == ["no price jump is left unexplained (tapeflow/ingest/price_jumps.py)"]
    assert any(line.startswith("IBM 2010-05-03 split 3-for-1") for line in run.assumptions["corporate actions in the window"])


def test_the_bundled_file_loads_clean_with_the_six_actions_the_panel_shows():
    checked = check_actions(ReplayActions(PROJECT_DATA).actions(None, date(2009, 8, 21), date(2010, 8, 20)))
    assert checked.rejected.is_empty()
    got = {(r["symbol"], r["kind"], r["ex_date"]) for r in checked.good.to_dicts()}
    assert {("GIS", "split", date(2010, 6, 9)), ("STR", "spin_off", date(2010, 7, 1)),
            ("WY", "special_distribution", date(2010, 7, 20)), ("DHR", "split", date(2010, 6, 14)),
            ("ESRX", "split", date(2010, 6, 8)), ("ETFC", "reverse_split", date(2010, 6, 2))} <= got
