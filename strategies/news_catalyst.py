"""News catalyst: buy a name on a fresh, clearly positive headline of a tradable catalyst
class; sell it after a holding period or before the close.

Rules, per symbol and session:
- a headline counts when its catalyst class is one of earnings, fda, contract, m&a or
  partnership (dilution and other never), its sentiment is positive with probability at least
  `min_sentiment`, and no vendor's edit had replaced it by the decision;
- the entry is decided at the end of the first regular-session bar that ends once the
  headline is knowable (published, fetched and scored; see tapeflow/news/features.py), and
  only while the headline is at most `max_age_minutes` old then: a stale catalyst never fires;
- one entry per symbol and session, market order; the quantity comes from the risk rules;
- the exit is decided `hold_minutes` after the entry or `exit_minutes_before_close` before
  the close, whichever comes first, whether or not the name traded in that minute.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from tapeflow.model import Action, Timeframe
from tapeflow.strategy.base import Param, Strategy, signal_frame
from tapeflow.strategy.history import History
from tapeflow.strategy.regular_hours import regular_session_bars

TRADED_CATALYSTS = ("earnings", "fda", "contract", "m&a", "partnership")


class NewsCatalyst(Strategy):
    name = "news_catalyst"
    timeframe = Timeframe.MINUTE
    per_symbol = True
    uses_news = True
    params = (
        Param("min_sentiment", float, 0.7, 0.34, 1.0, "lowest probability of the positive label taken"),
        Param("max_age_minutes", int, 30, 1, 1440, "a headline older than this at the decision is ignored"),
        Param("hold_minutes", int, 60, 1, 390, "minutes held before the exit"),
        Param("exit_minutes_before_close", int, 5, 1, 60, "exit at the latest this long before the close"),
    )

    def signals(self, history: History) -> pl.DataFrame:
        news = history.news.filter(
            pl.col("catalyst").is_in(TRADED_CATALYSTS) & (pl.col("sentiment") == "positive")
            & (pl.col("sentiment_score") >= self.p["min_sentiment"])
        )
        if news.is_empty() or history.bars.is_empty():
            return signal_frame([])
        bars = regular_session_bars(history.bars).select("symbol", "end_ts", "_open", "_close").sort("end_ts")
        latest_exit = pl.col("_close") - pl.duration(minutes=int(self.p["exit_minutes_before_close"]))
        entries = (
            news.sort("knowable_at")
            .join_asof(bars, left_on="knowable_at", right_on="end_ts", by="symbol", strategy="forward",
                       check_sortedness=False)
            .filter(pl.col("end_ts").is_not_null())
            .with_columns(pl.col("end_ts").alias("at"))
            .filter(
                (pl.col("at") - pl.col("published_at") <= timedelta(minutes=int(self.p["max_age_minutes"])))
                & (pl.col("at") < latest_exit)
                # a version a vendor's edit had replaced by the decision is no longer the news
                & (pl.col("superseded_at").is_null() | (pl.col("superseded_at") > pl.col("at")))
            )
            .sort("at")
            .group_by("symbol", "_open", maintain_order=True).first()
        )
        if entries.is_empty():
            return signal_frame([])
        # The exit is a clock decision: a thin name may have no bar then, and it must still be sold.
        exits = entries.with_columns(
            pl.min_horizontal(pl.col("at") + timedelta(minutes=int(self.p["hold_minutes"])), latest_exit).alias("exit_at"))
        rows = [
            {"symbol": r["symbol"], "at": r["at"], "action": Action.ENTER,
             "reason": f"{r['catalyst']} headline, {r['sentiment']} {r['sentiment_score']:.2f}: {r['headline'][:80]}"}
            for r in entries.iter_rows(named=True)
        ] + [
            {"symbol": r["symbol"], "at": r["exit_at"], "action": Action.EXIT, "reason": "holding period over"}
            for r in exits.iter_rows(named=True)
        ]
        return signal_frame(rows)
