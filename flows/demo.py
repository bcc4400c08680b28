"""The demo: the bundled real data through the same ingest flow a deployment runs."""

from __future__ import annotations

from datetime import date

from prefect import flow

from flows.hooks import alert_on_failure
from flows.backfill import backfill_watchlist
from flows.backtest import backtest
from flows.ingest import ingest_bars
from flows.research import walk_forward
from flows.trade import trade_session
from tapeflow.model import Timeframe


DEMO_DAY = date(2011, 3, 3)  # SPY breaks out of its opening range and is sold by the time exit


@flow(name="demo", on_failure=[alert_on_failure], on_crashed=[alert_on_failure])
def demo(replay_session: bool = True) -> dict[str, dict[str, object]]:
    """Daily S&P 500 panel (2009-08 .. 2010-08), SPY minute bars (Jan and Mar 2011), then the
    scanner's pre-market watchlist for every session that has 20 days of history before it,
    a backtest of the watchlist momentum strategy on those snapshots, and a walk-forward of
    the SMA crossover over the whole panel; last, a paper session of the opening-range
    strategy replayed on 2011-03-03 against the simulated broker."""
    daily = ingest_bars(source="replay", timeframe=Timeframe.DAY, start=date(2009, 8, 21), end=date(2010, 8, 20))
    minute = ingest_bars(
        source="replay", symbols=["SPY"], timeframe=Timeframe.MINUTE, start=date(2011, 1, 3), end=date(2011, 3, 31)
    )
    watchlist = backfill_watchlist(source="scanner", start=date(2009, 9, 21), end=date(2010, 8, 20))
    momentum = backtest(strategy="watchlist_momentum", start=date(2009, 9, 21), end=date(2010, 8, 20), costs="retail")
    # qty 0: positions sized by the risk rules (10% of equity, at most 10 names).
    grid = {"fast": [8, 10, 12], "slow": [24, 30, 36], "qty": [0]}
    folds = walk_forward(strategy="sma_cross", grid=grid, start=date(2009, 8, 21), end=date(2010, 8, 20), costs="retail")
    session = trade_session(strategy="opening_range", replay_day=DEMO_DAY, stop_loss_pct=0.005) if replay_session else {}
    return {"daily": daily, "minute": minute, "watchlist": watchlist, "backtest": momentum, "walk_forward": folds,
            "session": session}
