"""News catalyst (stub until the news layer lands): buy names with a fresh, strongly
positive scored headline, sell at the close.

Intended rules: a headline scored positive with score >= `min_sentiment`, published and
fetched before the decision, about a name on today's watchlist, triggers a market entry;
the position is sold at the session's close. Until news scores reach the History this
strategy takes no decisions, so it is safe to schedule and passes every check.
"""

from __future__ import annotations

import polars as pl

from strategies.base import Param, Strategy, signal_frame
from tapeflow.model import Timeframe
from tapeflow.sim.history import History


class NewsCatalyst(Strategy):
    name = "news_catalyst"
    timeframe = Timeframe.MINUTE
    params = (Param("min_sentiment", float, 0.8, 0.0, 1.0, "lowest positive sentiment score taken"),)

    def signals(self, history: History) -> pl.DataFrame:
        return signal_frame([])
