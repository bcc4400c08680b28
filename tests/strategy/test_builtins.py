"""Built-in strategies: their rules on small hand-made data, and the look-ahead check on each
over data on which it enters and exits (tests/research/test_lookahead.py tests the check)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from strategies.sma_cross import SmaCross, price_grid
from strategies.watchlist_momentum import WatchlistMomentum
from tapeflow.calendar.windows import pre_market_times
from tapeflow.config import PROJECT_DATA
from tapeflow.model import Action, AdjustMode
from tapeflow.research.lookahead import check_lookahead
from tapeflow.sources import Window
from tapeflow.sources.replay import ReplaySource
from tapeflow.sources.scanner import scan
from tapeflow.strategy.base import signal_frame
from tapeflow.strategy.history import History
from tapeflow.strategy.registry import available, get_strategy
from tests.actions_kit import action, actions_frame, plant_split
from tests.history_kit import scored_news

ALL = Window(datetime(2009, 1, 1, tzinfo=UTC), datetime(2012, 1, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def daily() -> pl.DataFrame:
    raw = ReplaySource(PROJECT_DATA).bars(None, "1d", ALL)
    return raw.filter(pl.col("problem").is_null() & pl.col("symbol").is_in(["AAPL", "C", "F", "MSFT", "PCS", "TIE", "JDSU", "XRX"]))


@pytest.fixture(scope="module")
def minute() -> pl.DataFrame:
    raw = ReplaySource(PROJECT_DATA).bars(["SPY"], "1m", ALL)
    return raw.filter(pl.col("problem").is_null())


@pytest.fixture(scope="module")
def with_watchlist(daily) -> History:
    panel = ReplaySource(PROJECT_DATA).bars(None, "1d", ALL).filter(pl.col("problem").is_null())
    times = pre_market_times(date(2010, 3, 1), date(2010, 5, 28))
    snaps = pl.concat([scan(panel, t, "pre_market") for t in times])
    return History(bars=panel.filter(pl.col("symbol").is_in(snaps["ticker"].unique().to_list())), watchlist=snaps)


@pytest.fixture(scope="module")
def with_news(minute) -> History:
    """SPY minute bars of January 2011 with a headline every session at a different minute."""
    days = sorted(minute.filter(pl.col("ts").dt.month() == 1)["ts"].dt.convert_time_zone("America/New_York")
                  .dt.date().unique().to_list())
    kinds = [("earnings", "positive", 0.9), ("fda", "positive", 0.8), ("dilution", "negative", 0.9),
             ("contract", "positive", 0.6), ("other", "positive", 0.95)]
    rows = []
    for i, day in enumerate(days):
        published = datetime(day.year, day.month, day.day, 14, 40, 20, tzinfo=UTC) + timedelta(minutes=17 * i % 300)
        catalyst, label, score = kinds[i % len(kinds)]
        rows.append(("SPY", published, timedelta(seconds=35), catalyst, label, score))
    return History(bars=minute, news=scored_news(rows))


@pytest.mark.parametrize("name", sorted(available()))
def test_every_built_in_strategy_decides_and_passes_the_lookahead_check(name, daily, minute, with_watchlist, with_news):
    strategy = get_strategy(name)()
    history = (with_watchlist if strategy.uses_watchlist else with_news if strategy.uses_news
               else History(bars=minute if strategy.timeframe == "1m" else daily))
    decisions = strategy.signals(history)
    # A check over no decisions proves nothing: each built-in must enter and exit here, and often.
    assert decisions.height >= 10, f"{name} decided only {decisions.height} times on its test data"
    assert set(decisions["action"]) == {"enter", "exit"}, f"{name} decided {set(decisions['action'])}"
    report = check_lookahead(strategy, history, n=12, seed=7)
    assert report.passed, report.summary()
    assert report.decisions == decisions.height


def test_sma_cross_rules_on_a_hand_made_series():
    closes = [10.0] * 30 + [11.0] * 3 + [9.0] * 12
    start = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    bars = pl.DataFrame({
        "symbol": "X", "ts": [start + timedelta(days=i) for i in range(len(closes))],
        "end_ts": [start + timedelta(days=i, hours=6, minutes=30) for i in range(len(closes))],
        "open": closes, "high": closes, "low": closes, "close": closes, "volume": 1000.0,
    })
    signals = SmaCross(fast=3, slow=5).signals(History(bars=bars))
    # A tie (all 10.0) is neither above nor below. Bar 30 (11): fast 10.33 > slow 10.2 after a
    # tie: up. Bar 33 (first 9): fast (11+11+9)/3 = 10.33 < slow (10+11+11+11+9)/5 = 10.4: down.
    assert signals.select("action", pl.col("at").dt.date()).rows() == [
        ("enter", date(2024, 2, 1)), ("exit", date(2024, 2, 4)),
    ]
    assert signals["qty"].to_list() == [100.0, 100.0]


def test_price_grid():
    assert price_grid(pl.Series([10.01, 3.5])) == 100
    assert price_grid(pl.Series([10.0078125])) == 128
    assert price_grid(pl.Series([1 / 3])) is None


def test_parameters_are_typed_and_ranged():
    with pytest.raises(ValueError, match="fast must be within 2..200"):
        SmaCross(fast=1)
    with pytest.raises(ValueError, match="must be shorter than slow"):
        SmaCross(fast=30, slow=20)
    with pytest.raises(ValueError, match="has no parameter speed"):
        SmaCross(speed=3)
    with pytest.raises(ValueError, match="must be a whole number"):
        SmaCross(fast=2.5)


def test_watchlist_momentum_buys_the_open_and_sells_the_close(with_watchlist):
    signals = WatchlistMomentum(min_score=80, max_names=2).signals(with_watchlist)
    day = signals.filter(pl.col("at").dt.convert_time_zone("America/New_York").dt.date() == date(2010, 5, 7))
    entries = day.filter(pl.col("action") == "enter")
    assert entries["symbol"].to_list() == ["PCS"]  # the only name scoring >= 80 that morning
    assert entries["time_in_force"].to_list() == ["opg"]
    exits = day.filter(pl.col("action") == "exit")
    assert exits["time_in_force"].to_list() == ["cls"]
    assert exits["at"].to_list() == [datetime(2010, 5, 7, 13, 30, 1, tzinfo=UTC)]


def test_a_live_session_sees_the_decisions_of_the_full_run(daily):
    # A session runs `signals` on the history up to now and acts on the rows at now.
    strategy, history = SmaCross(), History(bars=daily)
    full = strategy.signals(history)
    at = full["at"][len(full) // 2]
    live = strategy.signals(history.until(at)).filter(pl.col("at") == at)
    assert live.select("symbol", "action").rows() == full.filter(pl.col("at") == at).select("symbol", "action").rows()


def test_a_decision_outside_the_enums_is_refused():
    at = datetime(2024, 3, 5, 15, tzinfo=UTC)
    with pytest.raises(ValueError, match=r"^signal action must be one of enter, exit, got 'buy' for ABCD at "):
        signal_frame([{"symbol": "ABCD", "at": at, "action": "buy"}])
    with pytest.raises(ValueError, match=r"^signal order_type must be one of market, limit, stop, stop_limit, got 'moc'"):
        signal_frame([{"symbol": "ABCD", "at": at, "action": "enter", "order_type": "moc"}])
    with pytest.raises(ValueError, match=r"^signal time_in_force must be one of day, gtc, opg, cls, got None"):
        signal_frame(pl.DataFrame({"symbol": ["ABCD"], "at": [at], "action": ["exit"], "time_in_force": [None]},
                                  schema_overrides={"time_in_force": pl.String}))
    assert signal_frame([{"symbol": "ABCD", "at": at, "action": Action.EXIT}])["action"].to_list() == ["exit"]


@pytest.mark.parametrize("name", sorted(available()))
def test_every_built_in_strategy_passes_the_lookahead_check_on_split_adjusted_prices(name, daily, minute, with_watchlist,
                                                                                    with_news):
    """The check covers adjusted runs: a split planted in each strategy's data (announced days
    before its ex-date) is applied only from when it was in effect and known."""
    strategy = get_strategy(name)()
    history = (with_watchlist if strategy.uses_watchlist else with_news if strategy.uses_news
               else History(bars=minute if strategy.timeframe == "1m" else daily))
    decided = strategy.signals(history)
    symbol = decided.group_by("symbol").len().sort("len", "symbol", descending=True)["symbol"][0]
    days = sorted(history.bars["ts"].dt.convert_time_zone("America/New_York").dt.date().unique().to_list())
    ex = days[len(days) // 2]
    planted = History(bars=plant_split(history.bars, symbol, ex, 2.0), watchlist=history.watchlist, news=history.news,
                      actions=actions_frame([action(symbol, "split", ex, ratio=2.0,
                                                    knowable_at=datetime.combine(days[len(days) // 2 - 3],
                                                                                 datetime.min.time(), tzinfo=UTC))]))
    report = check_lookahead(strategy, planted, n=12, seed=7, adjust=AdjustMode.SPLITS)
    assert report.passed, report.summary()


@pytest.mark.parametrize("name", sorted(n for n, cls in available().items() if cls.per_symbol))
def test_a_strategy_that_says_it_decides_each_symbol_apart_does(name, daily, minute, with_news):
    """`per_symbol` lets an adjusted backtest run only the symbols with actions span by span:
    the claim must hold, or those runs would decide otherwise than the whole history."""
    strategy = get_strategy(name)()
    history = with_news if strategy.uses_news else History(bars=minute if strategy.timeframe == "1m" else daily)
    if history.bars["symbol"].n_unique() == 1:  # one symbol: split its days into two "names"
        day = history.bars["ts"].dt.convert_time_zone("America/New_York").dt.day()
        history = History(bars=history.bars.with_columns(
            pl.when(day % 2 == 0).then(pl.lit("EVEN")).otherwise(pl.col("symbol")).alias("symbol")),
            news=pl.concat([history.news, history.news.with_columns(pl.lit("EVEN").alias("symbol"))]))
    whole = strategy.signals(history)
    apart = pl.concat([strategy.signals(History(bars=history.bars.filter(pl.col("symbol") == s),
                                                news=history.news.filter(pl.col("symbol") == s)))
                       for s in history.symbols]).sort("at", "symbol", maintain_order=True)
    assert whole["symbol"].n_unique() >= 2  # decisions on several names, or the comparison proves nothing
    assert whole.sort("at", "symbol", maintain_order=True).equals(apart)
