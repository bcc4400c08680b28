"""Headlines stored in the warehouse reach the news-catalyst strategy the same way in a backtest
flow and in a replayed paper session, and only once knowable and fresh."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from flows.backtest import backtest
from flows.ingest import ingest_bars
from flows.trade import trade_session
from tapeflow.config import load_settings
from tapeflow.model import Timeframe
from tapeflow.news.tickers import TAGGER
from tests.history_kit import store_scored_headline
from warehouse import Warehouse, open_warehouse
from warehouse.upsert import upsert

pytestmark = pytest.mark.slow

UTC = UTC
DAY = date(2011, 3, 3)
MODEL = "test-model"


def store_headline(id: str, published: datetime, fetched: datetime, catalyst: str, label: str, score: float) -> None:
    """A scored SPY headline in the warehouse the settings name."""
    store_scored_headline(open_warehouse(load_settings()), id, published, fetched, catalyst, label, score, MODEL)


@pytest.fixture
def spy_day_with_news(tapeflow_home, prefect_harness, monkeypatch):
    monkeypatch.setenv("TAPEFLOW_SENTIMENT_MODEL", MODEL)
    ingest_bars(source="replay", symbols=["SPY"], timeframe=Timeframe.MINUTE, start=date(2011, 3, 1), end=date(2011, 3, 4))
    ten = datetime(2011, 3, 3, 15, 0, 10, tzinfo=UTC)  # 10:00:10 New York
    store_headline("fresh", ten, ten + timedelta(seconds=20), "contract", "positive", 0.9)
    # Published at 11:00 but first fetched at 12:00: stale when it could first be acted on.
    store_headline("stale", ten + timedelta(hours=1), ten + timedelta(hours=2), "fda", "positive", 0.95)
    store_headline("weak", ten + timedelta(hours=3), ten + timedelta(hours=3, seconds=5), "earnings", "positive", 0.5)
    with open_warehouse(load_settings()).write() as con:  # an earlier version of "weak", replaced by a vendor's edit
        con.execute("INSERT INTO news_revisions SELECT * REPLACE ('old' AS payload_hash, fetched_at - INTERVAL 1 MINUTE AS fetched_at), "
                    "fetched_at FROM news WHERE id = 'weak'")


def test_backtest_and_replayed_session_act_on_the_fresh_headline_only(spy_day_with_news):
    params = {"max_age_minutes": 30, "hold_minutes": 60}
    summary = backtest(strategy="news_catalyst", params=params, symbols=["SPY"], start=DAY, end=DAY, costs="flat-commission")
    with open_warehouse(load_settings()).read() as con:
        run = con.execute("SELECT assumptions, data_snapshot FROM backtest_runs WHERE run_id = ?", [summary["run_id"]]).fetchone()
    assert summary["trades"] == 1
    assert "news" in run[0] and MODEL in run[1]

    session = trade_session(strategy="news_catalyst", params=params, replay_day=DAY)
    assert session["status"] == "finished" and session["reconciled"]
    with Warehouse(session["warehouse"]).read() as con:
        assert con.execute("SELECT id, payload_hash FROM news_revisions").fetchall() == [("weak", "old")]  # seeded
        decisions = con.execute("SELECT action, decided_at, reason FROM session_decisions ORDER BY decided_at").fetchall()
    # Knowable at 10:00:35 (fetched 10:00:30 + 5 s of scoring): decided at the end of the 10:00 bar.
    assert [(a, t.astimezone(UTC)) for a, t, _ in decisions] == [
        ("enter", datetime(2011, 3, 3, 15, 1, tzinfo=UTC)), ("exit", datetime(2011, 3, 3, 16, 1, tzinfo=UTC))]
    assert "contract headline" in decisions[0][2]


def test_a_session_reads_the_days_model_at_the_real_scoring_time(warehouse, tmp_path, tapeflow_home):
    from tapeflow.live.feed import WarehouseFeed
    from tapeflow.news.features import NewsReading
    from tapeflow.news.model_registry import ChoiceReason, choose_model, day_model, record_model

    published = datetime(2011, 3, 3, 15, 0, tzinfo=UTC)
    with warehouse.write() as con:
        upsert(con, "bars", pl.DataFrame({
            "symbol": ["SPY"], "timeframe": ["1m"], "ts": [published], "end_ts": [published + timedelta(minutes=1)],
            "open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0], "volume": [1.0], "adjustment": ["raw"],
            "source": ["test"], "ingested_at": [published]}), ("symbol", "timeframe", "ts"))

    def scored_by(model: str, chosen_at: datetime, scored_at: datetime) -> None:
        (tmp_path / model).mkdir()
        record_model(warehouse, version=model, base_model="test", path=tmp_path / model, training_data={}, params={},
                     held_out="-", report=None, train_seconds=None)
        choose_model(warehouse, model, ChoiceReason.USE, at=chosen_at)
        with warehouse.write() as con:
            upsert(con, "news", pl.DataFrame({"source": ["t"], "id": ["a"], "published_at": [published],
                                              "fetched_at": [published], "headline": ["h"], "tickers": [["SPY"]],
                                              "payload_hash": ["h"]}), ("source", "id"))
            upsert(con, "news_tags", pl.DataFrame({"source": ["t"], "id": ["a"], "tagger": [TAGGER], "tickers": [["SPY"]],
                                                   "evidence": ["{}"], "catalyst": ["fda"], "news_hash": ["h"],
                                                   "tagged_at": [published]}), ("source", "id", "tagger", "news_hash"))
            upsert(con, "news_scores", pl.DataFrame({"source": ["t"], "id": ["a"], "model": [model], "label": ["positive"],
                                                     "score": [0.9], "polarity": [0.8], "news_hash": ["h"],
                                                     "scored_at": [scored_at]}), ("source", "id", "model", "news_hash"))

    settings = load_settings()
    scored_by("m1", datetime(2011, 3, 2, 20, 0, tzinfo=UTC), published + timedelta(seconds=30))  # chosen the day before
    scored_by("m2", published + timedelta(minutes=30), published + timedelta(minutes=31))  # chosen during the day
    # The day's model is the one current when the New York day began; m2 takes over the next day.
    assert day_model(settings, warehouse, DAY)[0] == "m1"
    assert day_model(settings, warehouse, DAY + timedelta(days=1))[0] == "m2"
    feed = WarehouseFeed(warehouse, Timeframe.MINUTE, news=NewsReading(day_model(settings, warehouse, DAY)[0], TAGGER))
    assert feed.history(published + timedelta(seconds=29)).news.is_empty()  # not yet scored
    assert feed.history(published + timedelta(minutes=1)).news["sentiment"].to_list() == ["positive"]
