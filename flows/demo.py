"""The demo: the bundled real data through the same ingest flow a deployment runs."""

from __future__ import annotations

from datetime import UTC, date, datetime

from prefect import flow

from flows.actions import ingest_actions
from flows.backfill import backfill_watchlist
from flows.backtest import backtest
from flows.hooks import alert_on_failure
from flows.ingest import ingest_bars
from flows.news import ingest_news
from flows.nlp import train_sentiment
from flows.research import walk_forward
from flows.trade import trade_session
from flows.universe import ingest_universe
from tapeflow.config import load_settings
from tapeflow.model import Timeframe
from tapeflow.news.model_registry import has_model
from tapeflow.progress import tracked
from tapeflow.sources.universe_files import PANEL_UNIVERSE
from warehouse import open_warehouse

DEMO_DAY = date(2011, 3, 3)  # SPY breaks out of its opening range and is sold by the time exit
# Both sample files (data/NOTICE): the panel's last week, and SPY's days of the minute bars, which
# `tapeflow backtest news_catalyst` trades on.
NEWS_WINDOW = (datetime(2010, 8, 16, tzinfo=UTC), datetime(2011, 4, 1, tzinfo=UTC))
# Without a trained model the demo tunes a quick one: 2,500 sentences, one epoch at a higher
# learning rate (about a minute on 2 cores, held-out macro-F1 about 0.73). `tapeflow nlp
# train` trains the full model (see docs/news.md).
QUICK_MODEL = {"subset": 2500, "epochs": 1, "learning_rate": 1.5e-4, "held_out_limit": 600}


@flow(name="demo", on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def demo(replay_session: bool = True, train_if_missing: bool = True) -> dict[str, dict[str, object]]:
    """Daily S&P 500 panel (2009-08 .. 2010-08), SPY minute bars (Jan and Mar 2011), then the
    scanner's pre-market watchlist for every session that has 20 days of history before it,
    a backtest of the watchlist momentum strategy on those snapshots, and a walk-forward of
    the SMA crossover over the whole panel; last, a paper session of the opening-range
    strategy replayed on 2011-03-03 against the simulated broker; and the bundled sample
    headlines, tagged and scored (training a quick sentiment model when none exists).

    Args:
        replay_session: Replay the opening-range paper session on the demo day.
        train_if_missing: Train the quick sentiment model when none is current.
    """
    missing = train_if_missing and not has_model(load_settings(), open_warehouse(load_settings()))
    names = ["corporate actions", "daily bars (S&P 500 panel)", f"universe {PANEL_UNIVERSE}", "SPY minute bars",
             "scanner watchlists", "backtest watchlist_momentum", "walk-forward sma_cross",
             *([f"replay opening_range {DEMO_DAY}"] if replay_session else []),
             *(["quick sentiment model"] if missing else []), "sample headlines"]
    # Each phase a step of its own, numbered, timed from when its block starts.
    phase = (tracked(f"demo {n}/{len(names)}: {name}") for n, name in enumerate(names, start=1))
    # The panel's corporate actions first: the price-jump check after the bars then flags only
    # the moves they do not explain.
    with next(phase):
        actions = ingest_actions(source="replay", start=date(2009, 8, 21), end=date(2010, 8, 20))
    with next(phase):
        daily = ingest_bars(source="replay", timeframe=Timeframe.DAY, start=date(2009, 8, 21), end=date(2010, 8, 20))
    with next(phase):
        universe = ingest_universe()  # the panel's own symbol list, recorded as survivorship-biased (data/NOTICE)
    with next(phase):
        minute = ingest_bars(
            source="replay", symbols=["SPY"], timeframe=Timeframe.MINUTE, start=date(2011, 1, 3), end=date(2011, 3, 31)
        )
    with next(phase):
        watchlist = backfill_watchlist(source="scanner", start=date(2009, 9, 21), end=date(2010, 8, 20),
                                       universe=PANEL_UNIVERSE)
    with next(phase):
        momentum = backtest(strategy="watchlist_momentum", start=date(2009, 9, 21), end=date(2010, 8, 20),
                            costs="retail-default", universe=PANEL_UNIVERSE)
    # qty 0: positions sized by the risk rules (10% of equity, at most 10 names).
    grid = {"fast": [8, 10, 12], "slow": [24, 30, 36], "qty": [0]}
    with next(phase):
        folds = walk_forward(strategy="sma_cross", grid=grid, start=date(2009, 8, 21), end=date(2010, 8, 20),
                             costs="retail-default", universe=PANEL_UNIVERSE)
    session: dict[str, object] = {}
    if replay_session:  # each demo replays its day anew
        with next(phase):
            session = trade_session(strategy="opening_range", replay_day=DEMO_DAY, stop_loss_pct=0.005, fresh=True)
    model: dict[str, object] = {}
    if missing:
        with next(phase):
            model = train_sentiment(**QUICK_MODEL)
    with next(phase):
        news = ingest_news(source="replay", start=NEWS_WINDOW[0], end=NEWS_WINDOW[1])
    return {"daily": daily, "actions": actions, "minute": minute, "watchlist": watchlist, "backtest": momentum,
            "walk_forward": folds, "universe": universe, "session": session, "news": news, "sentiment_model": model}
