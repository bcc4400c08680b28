"""The news-catalyst strategy and the freshness gate: a headline reaches a strategy only once
published, fetched and scored, and a stale one never fires a trade."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from strategies.news_catalyst import NewsCatalyst
from tapeflow.news.features import SCORING_LATENCY, fresh_catalysts, news_view
from tapeflow.strategy.history import History
from tests.history_kit import scored_news

UTC = UTC
OPEN = datetime(2024, 3, 5, 14, 30, tzinfo=UTC)  # 09:30 New York, a Tuesday (EST)


def minute_bars(symbol: str = "ABCD", minutes: int = 390) -> pl.DataFrame:
    ts = [OPEN + timedelta(minutes=i) for i in range(minutes)]
    return pl.DataFrame({"symbol": symbol, "ts": ts, "end_ts": [t + timedelta(minutes=1) for t in ts],
                         "open": 5.0, "high": 5.1, "low": 4.9, "close": 5.0, "volume": 10_000.0})


def at(minutes: float) -> datetime:
    return OPEN + timedelta(minutes=minutes)


def signals(rows, **params) -> pl.DataFrame:
    return NewsCatalyst(**params).signals(History(bars=minute_bars(), news=scored_news(rows)))


def test_entry_at_the_first_bar_end_after_the_headline_is_knowable_and_exit_after_the_hold():
    frame = signals([("ABCD", at(10.2), timedelta(seconds=40), "fda", "positive", 0.9)], hold_minutes=30)
    # knowable at 10.2 min + 40 s = 10 min 52 s: the bar ending at minute 11 is the first one.
    assert frame.select("action", "at").rows() == [("enter", at(11)), ("exit", at(41))]
    assert "fda headline" in frame["reason"][0]


def test_a_stale_headline_never_fires():
    # Published 45 minutes before it was fetched: older than max_age_minutes=30 when first knowable.
    stale = ("ABCD", at(20), timedelta(minutes=45), "earnings", "positive", 0.95)
    assert signals([stale], max_age_minutes=30).is_empty()
    assert signals([stale], max_age_minutes=60)["action"].to_list() == ["enter", "exit"]


@pytest.mark.parametrize("catalyst, label, score", [
    ("dilution", "positive", 0.99),  # never traded, however it reads
    ("other", "positive", 0.99),
    ("earnings", "negative", 0.99),
    ("earnings", "positive", 0.69),  # below min_sentiment 0.7
])
def test_headlines_that_do_not_qualify(catalyst, label, score):
    assert signals([("ABCD", at(30), timedelta(seconds=5), catalyst, label, score)]).is_empty()


def test_one_entry_per_symbol_and_session_and_exit_before_the_close():
    rows = [("ABCD", at(370), timedelta(seconds=5), "contract", "positive", 0.9),
            ("ABCD", at(375), timedelta(seconds=5), "contract", "positive", 0.9)]
    frame = signals(rows, hold_minutes=60, exit_minutes_before_close=5)
    # The second headline lands after the last entry time (5 minutes before the close).
    assert frame.select("action", "at").rows() == [("enter", at(371)), ("exit", at(385))]


def test_a_headline_before_the_open_enters_at_the_first_regular_bar_while_fresh():
    early = ("ABCD", OPEN - timedelta(minutes=10), timedelta(seconds=20), "m&a", "positive", 0.9)
    assert signals([early], max_age_minutes=30)["at"].to_list()[0] == at(1)
    assert signals([early], max_age_minutes=10).is_empty()  # 11 minutes old at the first bar's end


def test_history_until_hides_headlines_not_yet_knowable():
    history = History(bars=minute_bars(), news=scored_news([("ABCD", at(10), timedelta(seconds=30), "fda", "positive", 0.9)]))
    assert history.until(at(10.4)).news.is_empty()
    assert history.until(at(10.5)).news.height == 1


def test_news_view_live_uses_the_scoring_time_and_replays_assume_the_latency():
    published = at(0)
    stored = pl.DataFrame({
        "symbol": ["ABCD"], "source": ["s"], "id": ["1"], "headline": ["h"], "catalyst": ["fda"],
        "sentiment": ["positive"], "sentiment_score": [0.9], "polarity": [0.8], "model": ["m"],
        "published_at": [published], "fetched_at": [published + timedelta(seconds=10)],
        "scored_at": [published + timedelta(hours=3)], "superseded_at": [None],
    }, schema_overrides={"superseded_at": pl.Datetime("us", "UTC")})
    assert news_view(stored, None)["knowable_at"].to_list() == [published + timedelta(hours=3)]
    assert news_view(stored, SCORING_LATENCY)["knowable_at"].to_list() == [published + timedelta(seconds=10) + SCORING_LATENCY]


def test_fresh_catalysts_gives_each_symbols_latest_fresh_headline_and_its_age():
    news = scored_news([
        ("ABCD", at(0), timedelta(seconds=5), "fda", "positive", 0.9),
        ("ABCD", at(20), timedelta(seconds=5), "dilution", "negative", 0.8),
        ("WXYZ", at(-100), timedelta(seconds=5), "earnings", "positive", 0.9),
        ("QRST", at(29), timedelta(minutes=5), "contract", "positive", 0.9),  # not knowable yet at 30
    ])
    features = fresh_catalysts(History(bars=minute_bars(), news=news), at(30), timedelta(minutes=60))
    assert features.select("symbol", "catalyst", "age_minutes").rows() == [("ABCD", "dilution", 10.0)]


def test_several_symbols_and_a_thin_name_that_stops_trading():
    from tapeflow.research.lookahead import check_lookahead

    busy = minute_bars("ABCD")
    thin = minute_bars("WXYZ").filter(pl.col("ts") < at(300))  # no bars after 14:30 New York
    rows = [("ABCD", at(100), timedelta(seconds=5), "earnings", "positive", 0.9),
            ("WXYZ", at(290), timedelta(seconds=5), "fda", "positive", 0.9)]
    history = History(bars=pl.concat([busy, thin]), news=scored_news(rows))
    frame = NewsCatalyst(hold_minutes=60).signals(history)
    assert frame.select("symbol", "action", "at").rows() == [
        ("ABCD", "enter", at(101)), ("ABCD", "exit", at(161)),
        ("WXYZ", "enter", at(291)),
        ("WXYZ", "exit", at(351)),  # decided on the clock: the name has no bar then, it is still sold
    ]
    assert check_lookahead(NewsCatalyst(hold_minutes=60), history, n=25, seed=3).passed


def test_opening_range_on_several_symbols():
    from strategies.opening_range import OpeningRangeBreakout

    up = minute_bars("ABCD").with_columns(
        pl.when(pl.col("ts") >= at(20)).then(5.5).otherwise(pl.col("close")).alias("close"),
        pl.when(pl.col("ts") >= at(20)).then(5.6).otherwise(pl.col("high")).alias("high"))
    flat = minute_bars("WXYZ")
    frame = OpeningRangeBreakout().signals(History(bars=pl.concat([flat, up])))
    assert frame.select("symbol", "action").rows() == [("ABCD", "enter"), ("ABCD", "exit")]


def edited(first: tuple, edit_at: datetime, catalyst: str, label: str) -> pl.DataFrame:
    """A headline and the vendor's edit of it: the first version replaced when the edit was fetched."""
    symbol, published, delay, *_ = first
    versions = scored_news([first, (symbol, published, edit_at - published, catalyst, label, 0.9)])
    return versions.with_columns(id=pl.lit("n0"), superseded_at=pl.Series([edit_at, None], dtype=pl.Datetime("us", "UTC")))


@pytest.mark.parametrize("catalyst, label", [("fda", "positive"), ("dilution", "negative")])
def test_an_edit_after_the_entry_leaves_the_entry_and_its_exit_standing(catalyst, label):
    from tapeflow.research.lookahead import check_lookahead

    news = edited(("ABCD", at(10), timedelta(seconds=30), "fda", "positive", 0.9), at(20), catalyst, label)
    history = History(bars=minute_bars(), news=news)
    strategy = NewsCatalyst(hold_minutes=60)
    assert strategy.signals(history).select("action", "at").rows() == [("enter", at(11)), ("exit", at(71))]
    seen_then = strategy.signals(history.until(at(71))).filter(pl.col("at") == at(71))  # as a live session sees it
    assert seen_then["action"].to_list() == ["exit"]
    assert check_lookahead(strategy, history, n=30, seed=5).passed


def test_a_version_replaced_before_the_decision_is_not_acted_on():
    # First version knowable at 10 min 30 s; the edit (to dilution) fetched at 10 min 45 s, before the 11-minute bar ends.
    news = edited(("ABCD", at(10), timedelta(seconds=30), "fda", "positive", 0.9), at(10.75), "dilution", "negative")
    assert NewsCatalyst().signals(History(bars=minute_bars(), news=news)).is_empty()
