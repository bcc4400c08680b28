"""What a session may know at an instant: bars that have ended, watchlist snapshots fetched
by then and scored headlines knowable by then, read from the warehouse (where the ingest
flows put them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import polars as pl

from tapeflow.backtest.adjust import view_at
from tapeflow.calendar.exchange import ny_day
from tapeflow.model import AdjustMode, Bar, Timeframe
from tapeflow.news.features import LOOKBACK as NEWS_LOOKBACK
from tapeflow.news.features import NewsReading, news_view
from tapeflow.schemas import instant, to_us
from tapeflow.strategy.history import NO_WATCHLIST, History
from tapeflow.strategy.warmup import history_from, history_start, session_warmup
from warehouse.connection import Warehouse
from warehouse.reads import actions_between, bars_ended, bars_opened, scored_news_between, watchlist_fetched_by

WATCHLIST_LOOKBACK = timedelta(days=7)  # snapshots older than a week decide nothing
SESSION_ADJUST = AdjustMode.SPLITS  # a backtest's default: a session decides on the prices its backtest did


class NotEnoughHistory(ValueError):
    """The warehouse does not reach back as far as the strategy's warm-up needs."""


@dataclass(frozen=True)
class CycleRead:
    """One cycle's market, read in one pass: the strategy's history, the bars that ended since
    the simulator last got each symbol's (time order), and the newest bar end."""

    history: History
    ended: list[Bar]
    newest_end: datetime | None


class WarehouseFeed:
    """Bars of one timeframe (and watchlist snapshots) from the warehouse, cut at `at`, from
    as far back as the strategy's warm-up needs."""

    def __init__(self, warehouse: Warehouse, timeframe: Timeframe, symbols: list[str] | None = None,
                 warmup_bars: int = 0, news: NewsReading | None = None) -> None:
        self.warehouse = warehouse
        self.news = news
        self.timeframe = Timeframe(timeframe)
        self.symbols = symbols
        self.warmup = session_warmup(self.timeframe, warmup_bars)
        self._starts: dict[date, datetime] = {}
        self._read_actions: dict[date, pl.DataFrame] = {}

    def start(self, day: date) -> datetime:
        """Where the history of `day`'s session starts: its warm-up's first bar (the day's
        midnight without one, or when the warehouse holds too little: `require_history` says)."""
        if day not in self._starts:
            with self.warehouse.write() as con:
                self._starts[day] = history_from(con, self.timeframe, self.warmup, day, self.symbols)[0]
        return self._starts[day]

    def require_history(self, day: date) -> None:
        """Refuse a session whose warm-up the warehouse cannot supply, naming what is missing."""
        with self.warehouse.write() as con:
            _, have = history_from(con, self.timeframe, self.warmup, day, self.symbols)
        if have < self.warmup:
            needed = history_start(self.timeframe, self.warmup, day)
            raise NotEnoughHistory(
                f"{day.isoformat()}'s session needs {self.warmup} {self.timeframe.value} bars of warm-up before it; "
                f"the warehouse has {have}: ingest {self.timeframe.value} bars from {ny_day(needed).isoformat()} "
                f"(or earlier) first")

    def history(self, at: datetime) -> History:
        """Everything knowable at `at`: bars ended by then, snapshots fetched by then, headlines
        published, fetched and scored by then; prices adjusted for the corporate actions in
        effect and known by then, as a backtest's decisions see them (orders still trade raw:
        the latest bar keeps its traded price)."""
        return self.read(at).history

    def read(self, at: datetime, after: datetime | None = None, seen: Mapping[str, datetime] | None = None, *,
             watchlist: bool = True) -> CycleRead:
        """`history(at)` and `bars_ended(after, at, seen)` from one bars query in one transaction
        (a cycle needs both; without `after`, no bars ended), with the newest bar end. Without
        `watchlist` the history has no snapshots (a strategy that does not use them, as in a
        backtest)."""
        start = self.start(ny_day(at))
        lo = start if after is None else min(start, after)
        with self.warehouse.write() as con:  # the session's own process may hold the file
            frame = bars_ended(con, self.timeframe.value, lo, at, self.symbols)
            snapshots = watchlist_fetched_by(con, at - WATCHLIST_LOOKBACK, at) if watchlist else None
            actions = self._actions(con, ny_day(start), ny_day(at))
            news = None if self.news is None else news_view(
                scored_news_between(con, at - NEWS_LOOKBACK, at, self.news.model, self.news.tagger),
                self.news.scoring_latency)
            # Every symbol's bars ended in (lo, at] are in the frame, so its newest is the table's (unless empty).
            newest = frame["end_ts"].max() if self.symbols is None and frame.height else self._newest(con, at)
        bars = frame if lo == start else frame.filter(pl.col("end_ts") > instant(start))
        ended = [] if after is None else self._as_bars(_unseen(frame.filter(pl.col("end_ts") > instant(after)), seen)
                                                       .sort("end_ts", "symbol"))
        if snapshots is None:
            snapshots = NO_WATCHLIST
        if news is None:
            history = History(bars, snapshots, actions=actions)  # bars and snapshots are read as of `at`
            history = history if actions.is_empty() else view_at(history, SESSION_ADJUST, at)
        else:
            history = view_at(History(bars, snapshots, news, actions=actions), SESSION_ADJUST, at)
        return CycleRead(history, ended, newest)

    def _actions(self, con, first: date, day: date) -> pl.DataFrame:  # type: ignore[no-untyped-def]
        """The corporate actions of the history's days, read once a session day (a cycle a
        minute need not ask again; `History.until` keeps those not yet knowable out)."""
        if day not in self._read_actions:
            self._read_actions = {day: actions_between(con, first, day, self.symbols)}
        return self._read_actions[day]

    def bars_ended(self, after: datetime, until: datetime, seen: Mapping[str, datetime] | None = None) -> list[Bar]:
        """Bars that ended in (after, until], in time order: what the market did meanwhile
        (less each symbol's bars that ended by its time in `seen`)."""
        with self.warehouse.write() as con:
            frame = bars_ended(con, self.timeframe.value, after, until, self.symbols)
        return self._as_bars(_unseen(frame, seen).sort("end_ts", "symbol"))

    def latest_bars(self, until: datetime) -> list[Bar]:
        """Each symbol's last bar ended by `until` within the history: the market as it stood."""
        with self.warehouse.write() as con:
            frame = bars_ended(con, self.timeframe.value, self.start(ny_day(until)), until, self.symbols)
        return self._as_bars(frame.sort("end_ts").group_by("symbol", maintain_order=True).last().sort("symbol"))

    def bars_opened(self, after: datetime, until: datetime) -> list[Bar]:
        """Bars that opened in (after, until] and are still running: their opening prints are
        the market's (only the simulated broker gets them)."""
        with self.warehouse.write() as con:
            return self._as_bars(bars_opened(con, self.timeframe.value, after, until, self.symbols).sort("ts", "symbol"))

    def _as_bars(self, frame: pl.DataFrame) -> list[Bar]:
        return [Bar(symbol=r["symbol"], timeframe=self.timeframe, ts=r["ts"], end=r["end_ts"], open=r["open"],
                    high=r["high"], low=r["low"], close=r["close"], volume=r["volume"], source="warehouse")
                for r in frame.iter_rows(named=True)]

    def newest_bar_end(self, until: datetime) -> datetime | None:
        """The end of the newest bar knowable at `until`."""
        with self.warehouse.write() as con:
            return self._newest(con, until)

    def _newest(self, con, until: datetime) -> datetime | None:  # type: ignore[no-untyped-def]
        [(newest,)] = con.execute("SELECT max(end_ts) FROM bars WHERE timeframe = ? AND end_ts <= ?",
                                  [self.timeframe.value, until]).fetchall()  # read out: the cycle's next reads follow
        return newest


def _unseen(frame: pl.DataFrame, seen: Mapping[str, datetime] | None) -> pl.DataFrame:
    """`frame` less each symbol's bars that ended by its time in `seen`. Compared as epoch
    microseconds: a join, or literals of aware times, cost a cycle twice as much."""
    if not seen or frame.is_empty():
        return frame
    marks = pl.col("symbol").replace_strict(list(seen), [to_us(t) for t in seen.values()], default=-(2**62),
                                            return_dtype=pl.Int64)
    return frame.filter(pl.col("end_ts").dt.epoch("us") > marks)
