"""Building blocks for trading-session tests: a stored trading day of minute bars, a
scripted strategy, a broker that drops out for a while, and a session wired to a venue on a
simulated clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import ClassVar

import polars as pl

from tapeflow.brokers.base import Disconnected
from tapeflow.brokers.execution import Execution
from tapeflow.brokers.ledger import Ledger
from tapeflow.brokers.submit import PlacePolicy
from tapeflow.calendar.exchange import NEW_YORK, get_calendar
from tapeflow.live.clock import SimulatedClock
from tapeflow.live.feed import WarehouseFeed
from tapeflow.live.session import SessionRules, TradingSession
from tapeflow.model import Mode, Timeframe
from tapeflow.strategy.base import Param, Strategy, signal_frame
from tapeflow.strategy.history import History
from tests.fakes.sim_venue import FaultyLink
from warehouse.connection import Warehouse
from warehouse.upsert import upsert

UTC = UTC
DAY = date(2023, 11, 24)  # the day after Thanksgiving: a half day, closing at 13:00 New York (18:00 UTC)
FAST = PlacePolicy(wait_s=0.01)


def ny(hh: int, mm: int = 0, day: date = DAY) -> datetime:
    return datetime.combine(day, time(hh, mm), NEW_YORK).astimezone(UTC)


def store_day(warehouse: Warehouse, prices: dict[str, float], moves: dict[tuple[str, int, int], float] | None = None,
              gaps: list[tuple[int, int, int, int]] = (), day: date = DAY, volume: dict[str, float] | None = None,
              spread: float = 0.0) -> None:
    """One session of minute bars per symbol, flat at `prices` except `moves`: from (symbol,
    hh, mm) on, the price is the given one; `gaps` drop bars in [h1:m1, h2:m2); each bar
    trades `volume[symbol]` shares (1,000,000 by default) and ranges `spread` of its price
    either side (to the cent)."""
    calendar = get_calendar()
    session = calendar.session(day)
    before = calendar.previous_close(session.open)  # the last minutes of the session before: data is fresh
    rows = []
    for symbol, start_price in prices.items():
        for k in range(5, 0, -1):
            t = before - timedelta(minutes=k)
            rows.append({"symbol": symbol, "timeframe": "1m", "ts": t, "end_ts": t + timedelta(minutes=1),
                         "open": start_price, "high": start_price, "low": start_price, "close": start_price,
                         "volume": 1e6, "source": "test", "adjustment": "raw", "ingested_at": datetime.now(UTC)})
        price = start_price
        t = session.open
        while t < session.close:
            local = t.astimezone(NEW_YORK)
            price = (moves or {}).get((symbol, local.hour, local.minute), price)
            missing = any(ny(h1, m1, day) <= t < ny(h2, m2, day) for h1, m1, h2, m2 in gaps)
            if not missing:
                rows.append({"symbol": symbol, "timeframe": "1m", "ts": t, "end_ts": t + timedelta(minutes=1),
                             "open": price, "high": round(price * (1 + spread), 2), "low": round(price * (1 - spread), 2),
                             "close": price,
                             "volume": (volume or {}).get(symbol, 1e6), "source": "test", "adjustment": "raw",
                             "ingested_at": datetime.now(UTC)})
            t += timedelta(minutes=1)
    with warehouse.write() as con:
        columns = [c[0] for c in con.execute("DESCRIBE bars").fetchall()]
        frame = pl.DataFrame(rows).with_columns(pl.col("ts", "end_ts", "ingested_at").dt.cast_time_unit("us"))
        frame = frame.select([c for c in columns if c in frame.columns])
        upsert(con, "bars", frame, ("symbol", "timeframe", "ts"), bookkeeping=("ingested_at",))


class Scripted(Strategy):
    """Decisions at fixed New York times: (hh, mm, symbol, enter|exit[, limit price]), once
    the bar ending then is known; market orders unless a limit is given."""

    name = "scripted"
    timeframe = Timeframe.MINUTE
    params = (Param("qty", int, 0, 0, 1_000_000, "shares per entry; 0: sized by the risk rules", tunable=False),)
    script: ClassVar[list[tuple]] = []

    def signals(self, history: History) -> pl.DataFrame:
        known = history.bars["end_ts"].max() if history.bars.height else None
        rows = []
        for hh, mm, symbol, action, *limit in self.script:
            at = ny(hh, mm)
            if known is not None and at <= known:
                rows.append({"symbol": symbol, "at": at, "action": action, "reason": f"script {hh:02d}:{mm:02d}",
                             "qty": float(self.p["qty"]) or None, "order_type": "limit" if limit else "market",
                             "limit_price": limit[0] if limit else None})
        return signal_frame(rows)


def scripted(script: list[tuple], **params) -> Strategy:
    cls = type("ScriptedRun", (Scripted,), {"script": script})
    return cls(**params)


def session(strategy: Strategy, broker, warehouse: Warehouse, clock: SimulatedClock, *, rules: SessionRules,
            market=None, **kw) -> TradingSession:
    execution = Execution(broker, Ledger(warehouse, broker.name, Mode.PAPER), policy=FAST)
    feed = WarehouseFeed(warehouse, Timeframe.MINUTE)
    return TradingSession(strategy, execution, feed, clock, warehouse, rules=rules, day=DAY, market=market,
                          hold_warehouse=True, **kw)


class Flaky(FaultyLink):
    """A broker that cannot be reached between two instants of the session's clock."""

    def __init__(self, inner, clock, start, end):
        super().__init__(inner)
        self.clock, self.start, self.end = clock, start, end

    def _check(self):
        if self.start <= self.clock.now() < self.end:
            raise Disconnected("connection refused")

    def account(self):
        self._check()
        return super().account()

    def positions(self):
        self._check()
        return super().positions()

    def submit(self, order):
        self._check()
        return super().submit(order)
