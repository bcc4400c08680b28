"""Corporate actions for tests: the bundled file as a History's actions, a scripted strategy,
and a split planted into raw bars the way a feed shows it (prices fall, volume rises)."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl

from tapeflow.calendar.exchange import ny_day_bounds
from tapeflow.config import PROJECT_DATA
from tapeflow.ingest.actions import check_actions
from tapeflow.model import Timeframe
from tapeflow.sources.replay_actions import ReplayActions
from tapeflow.strategy.base import Param, Strategy, signal_frame
from tapeflow.strategy.history import ACTION_COLUMNS, History


def bundled_actions(symbols: list[str] | None = None) -> pl.DataFrame:
    """The bundled panel's actions, checked, in a History's action columns."""
    raw = ReplayActions(PROJECT_DATA).actions(symbols, date(2009, 1, 1), date(2011, 1, 1))
    checked = check_actions(raw)
    assert checked.rejected.is_empty(), checked.rejected
    return checked.good.select(list(ACTION_COLUMNS))


def action(symbol: str, kind: str, ex_date: date, *, ratio: float | None = None, amount: float | None = None,
           price_factor: float | None = None, knowable_at: datetime | None = None) -> dict:
    """One action row, knowable from its ex-date's New York midnight unless told otherwise."""
    return {"symbol": symbol, "kind": kind, "ex_date": ex_date, "ratio": ratio, "amount": amount,
            "price_factor": price_factor, "knowable_at": knowable_at or ny_day_bounds(ex_date)[0], "source": "test"}


def actions_frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=ACTION_COLUMNS)


def plant_split(bars: pl.DataFrame, symbol: str, ex_date: date, ratio: float) -> pl.DataFrame:
    """`bars` as a raw feed shows a `ratio`-for-1 split of `symbol` on `ex_date`."""
    after = (pl.col("symbol") == symbol) & (pl.col("ts") >= ny_day_bounds(ex_date)[0])
    return bars.with_columns(
        *(pl.when(after).then(pl.col(c) / ratio).otherwise(pl.col(c)).alias(c) for c in ("open", "high", "low", "close")),
        pl.when(after).then(pl.col("volume") * ratio).otherwise(pl.col("volume")).alias("volume"),
    )


class Scripted(Strategy):
    """Test-only: enters and exits at fixed bar ends (indices into the history's bar ends)."""

    name = "scripted"
    timeframe = Timeframe.DAY
    params = (Param("qty", int, 10, 0, 10_000, "shares; 0 sizes by the policy"),
              Param("enter", int, 1, 0, 10_000, "bar whose end enters"),
              Param("exit", int, 9, 0, 10_000, "bar whose end exits"))

    def signals(self, history: History) -> pl.DataFrame:
        ends = history.bars["end_ts"].unique().sort().to_list()
        qty = float(self.p["qty"]) or None
        rows = [{"symbol": s, "at": ends[i], "action": a, "qty": qty if a == "enter" else None, "reason": a}
                for s in history.symbols for i, a in ((int(self.p["enter"]), "enter"), (int(self.p["exit"]), "exit"))
                if i < len(ends)]
        return signal_frame(rows)


