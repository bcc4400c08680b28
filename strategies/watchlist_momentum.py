"""Watchlist momentum: buy the top names of the pre-market watchlist at the open, sell them
at the close the same day.

Rules, per session:
- take the latest pre-market snapshot of the watchlist that was knowable (published and
  fetched) before the regular open;
- candidates: names with score >= `min_score`, best `max_names` by rank;
- enter each with a market-on-open order, decided when the snapshot became knowable;
  the quantity comes from the risk rules (a slice of equity, buying power, max positions);
- exit each with a market-on-close order, decided one second after the open (once the
  opening fill is known); an optional stop loss is a risk rule of the backtest config.
Names without bars in the data are skipped by the engine ("no bars for the symbol").
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from tapeflow.calendar.exchange import get_calendar
from tapeflow.model import Action, Timeframe, TimeInForce
from tapeflow.strategy.base import Param, Strategy, signal_frame
from tapeflow.strategy.history import History


class WatchlistMomentum(Strategy):
    name = "watchlist_momentum"
    timeframe = Timeframe.DAY
    uses_watchlist = True
    params = (
        Param("min_score", float, 80.0, 0.0, 100.0, "lowest watchlist score taken"),
        Param("max_names", int, 5, 1, 50, "names bought per session at most"),
    )

    def warmup_bars(self) -> int:
        return 1  # the last close sizes an entry

    def signals(self, history: History) -> pl.DataFrame:
        snapshots = history.watchlist.filter(pl.col("session") == "pre_market")
        if snapshots.is_empty():
            return signal_frame([])
        calendar = get_calendar()
        knowable = pl.max_horizontal("as_of", "fetched_at")
        snapshots = snapshots.with_columns(
            knowable.alias("_known"),
            pl.col("as_of").dt.convert_time_zone("America/New_York").dt.date().alias("_day"),
        )
        rows = []
        for day in snapshots["_day"].unique().sort().to_list():
            if not calendar.is_session(day):
                continue
            session = calendar.session(day)
            before_open = snapshots.filter((pl.col("_day") == day) & (pl.col("_known") < session.open))
            if before_open.is_empty():
                continue
            latest = before_open.filter(pl.col("as_of") == pl.col("as_of").max())
            picks = latest.filter(pl.col("score") >= self.p["min_score"]).sort("rank").head(int(self.p["max_names"]))
            for pick in picks.iter_rows(named=True):
                rows.append({"symbol": pick["ticker"], "at": pick["_known"], "action": Action.ENTER, "time_in_force": TimeInForce.OPG,
                             "reason": f"pre-market watchlist rank {pick['rank']}, score {pick['score']:g}"})
                rows.append({"symbol": pick["ticker"], "at": session.open + timedelta(seconds=1), "action": Action.EXIT,
                             "time_in_force": TimeInForce.CLS, "reason": "session end"})
        return signal_frame(rows)
