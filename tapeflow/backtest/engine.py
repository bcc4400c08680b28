"""The backtest engine: a strategy's signals, through orders and fills, to a marked portfolio.

It walks the signals in time order (not every bar): before each decision it applies the
fills that happened strictly before it, then carries the decision out under the execution
policy (`tapeflow.risk.policy`: the rules sessions trade with), whose clock rules (the kill
switch, an intraday strategy's time exit) run first at their instants; each order's fills
come from `fills.fill_order`, which only sees bars starting at or after the order. An order
is working until it has filled completely or its last chance to fill (`fills.working_until`)
has passed, whether or not it will ever fill: a decision cannot know that. The equity curve
is then marked at every bar end in one vectorised pass. `tests/reference_engine.py` is a bar-by-bar loop this engine must agree with.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property

import numpy as np
import polars as pl

from tapeflow.backtest.adjust import cash_in_lieu, fills_as_traded, scale_at, to_units, trades_as_traded
from tapeflow.backtest.compiled import columns_of as compiled_columns
from tapeflow.backtest.compiled import supports
from tapeflow.backtest.compiled import walk as compiled_walk
from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.fast import Marks, market_fills, market_only
from tapeflow.backtest.fills import (
    FillRow,
    OrderSpec,
    SymbolBars,
    fill_order,
    split_by_symbol,
    working_until,
)
from tapeflow.calendar.exchange import NEW_YORK, get_calendar, ny_day, ny_day_bounds
from tapeflow.model import Action, OrderType, Outcome, Side, Timeframe, TimeInForce
from tapeflow.risk.policy import BookView, DailyLossBreaker, Halt
from tapeflow.schemas import EQUITY_SCHEMA, FILLS_SCHEMA, TRADES_SCHEMA, UTC_TS, conform, to_us


@dataclass
class _Book:
    """Mutable state while the engine walks the signals."""

    cash: float
    position: dict[str, float] = field(default_factory=dict)
    # heap of (ts, seq, fill), and (ts, seq, order) when that order stops working
    pending: list[tuple[int, int, FillRow | OrderSpec]] = field(default_factory=list)
    cancelled: set[str] = field(default_factory=set)
    open_orders: dict[str, set[str]] = field(default_factory=dict)  # symbol -> order ids still working
    working: dict[str, OrderSpec] = field(default_factory=dict)  # order id -> the order, while it works
    applied: list[FillRow] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)  # order ids given out
    filled: dict[str, tuple[Side, float, float]] = field(default_factory=dict)  # order id -> (side, qty, value)
    traded: dict[str, float] = field(default_factory=dict)  # order id -> shares as traded (commissions are per share)
    done: dict[str, tuple[float, float]] = field(default_factory=dict)  # order id -> (commission, fees), once it stopped
    charged: dict[str, float] = field(default_factory=dict)  # order id -> commission and fees paid so far
    stops: dict[str, OrderSpec] = field(default_factory=dict)  # entry order id -> its protective stop


@dataclass(frozen=True)
class BacktestResult:
    fills: pl.DataFrame
    trades: pl.DataFrame
    equity: pl.DataFrame
    decisions: pl.DataFrame  # every signal with what became of it
    config: BacktestConfig
    start_cash: float

    @property
    def final_equity(self) -> float:
        return float(self.equity["equity"][-1]) if self.equity.height else self.start_cash

    @cached_property
    def daily_equity(self) -> pl.DataFrame:
        """One row per New York date of the bar ends: `date` and the day's last `equity` (metrics,
        report and analyses all read it: computed once)."""
        return daily_of(self.equity)


def daily_of(equity: pl.DataFrame) -> pl.DataFrame:
    """An equity frame (ts, equity) as one row per New York date: `date` and its last `equity`."""
    return (
        equity.sort("ts")
        .group_by(pl.col("ts").dt.convert_time_zone(NEW_YORK.key).dt.date().alias("date"), maintain_order=True)
        .agg(pl.col("equity").last())
    )


def simulate(bars: pl.DataFrame, signals: pl.DataFrame, config: BacktestConfig = BacktestConfig(), *,
             timeframe: Timeframe = Timeframe.DAY, halts: Sequence[Halt] = (),
             steps: pl.DataFrame | None = None) -> BacktestResult:
    """Run `signals` (SIGNAL_SCHEMA) against `bars` (symbol, ts, end_ts, OHLCV) under the
    config's execution policy; a `timeframe` of minutes brings the policy's time exit, `halts`
    are the times the kill switch was engaged, `steps` the share changes corporate actions make
    (`PricedActions.steps`: the book then holds units, see tapeflow/backtest/adjust.py)."""
    signals = signals.sort("at", maintain_order=True)
    steps = steps if steps is not None else pl.DataFrame(schema={"symbol": pl.String, "ex_start": UTC_TS, "scale": pl.Float64})
    if not steps.is_empty():
        bars = to_units(bars, steps)
    marks: Mapping[str, SymbolBars | Marks]
    if not halts and market_only(signals, config, timeframe):
        fast = signals if steps.is_empty() else signals.with_columns(pl.col("qty") / scale_at(signals, "at", steps))
        fills, outcomes, marks = market_fills(bars, fast, config.costs)
    elif not halts and supports(signals, steps):
        fills, outcomes, marks = _compiled(bars, signals, config, Timeframe(timeframe))
    else:
        fills, outcomes, marks = _walk_signals(bars, signals, config, Timeframe(timeframe), halts)
    fills = cash_in_lieu(fills, steps, bars, config.costs.commission)
    return BacktestResult(
        fills=fills_as_traded(fills, steps),
        trades=trades_as_traded(_trades(fills), steps),
        equity=_equity_curve(marks, fills, config.cash),
        decisions=signals.with_columns(pl.Series("outcome", outcomes, dtype=pl.String)),
        config=config,
        start_cash=config.cash,
    )


def _compiled(bars: pl.DataFrame, signals: pl.DataFrame, config: BacktestConfig,
              timeframe: Timeframe) -> tuple[pl.DataFrame, list[str], dict[str, Marks]]:
    """`_walk_signals` compiled (tapeflow/backtest/kernel.py): the same fills and outcomes."""

    names, columns, marks = compiled_columns(bars, liquidity=config.costs.slippage.model is not None)
    closings = _closings_between(int(columns["ts"].min()), int(columns["end"].max()), config, timeframe) if names else []
    fills, outcomes = compiled_walk(names, columns, signals, config, closings)
    return fills, outcomes, marks


@dataclass(frozen=True)
class _Event:
    """Something the policy does on the clock rather than on a decision."""

    at: int
    kind: str  # "halt": the kill switch engages; "time exit": an intraday session is closing
    reason: str


def _walk_signals(bars: pl.DataFrame, signals: pl.DataFrame, config: BacktestConfig, timeframe: Timeframe,
                  halts: Sequence[Halt]) -> tuple[pl.DataFrame, list[str], dict[str, SymbolBars]]:
    """The event loop: fills, each signal's outcome, and the bars they were marked on."""
    book_bars = split_by_symbol(bars, get_calendar())
    book = _Book(cash=config.cash)
    loop = _Loop(book, book_bars, config, config.policy.breaker(), itertools.count(),
                 _closings(book_bars, config, timeframe), [(to_us(h.start), to_us(h.end) if h.end else None, h.reason) for h in halts])
    events = sorted([_Event(e, "time exit", "time exit: the session is closing") for e, _ in loop.closings]
                    + [_Event(start, "halt", reason) for start, _, reason in loop.halts], key=lambda e: e.at)
    outcomes: list[str | OrderSpec] = []
    pending = 0
    for row in signals.iter_rows(named=True):
        at = to_us(row["at"])
        while pending < len(events) and events[pending].at <= at:  # the clock's rules go first at an instant
            loop.on_event(events[pending])
            pending += 1
        loop.observe_session(at)
        _apply_until(book, config, at)
        outcomes.append(loop.decide(row, at))
    for event in events[pending:]:
        loop.on_event(event)
    _apply_until(book, config, None)
    # Whether an order filled is known only now: a later exit may have cancelled it first.
    filled = {fill.order_id for fill in book.applied}
    settled = [o if isinstance(o, str) else Outcome.PLACED if o.order_id in filled else Outcome.NEVER_FILLED for o in outcomes]
    return _fills_frame(book), settled, book_bars


def _closings(bars: dict[str, SymbolBars], config: BacktestConfig, timeframe: Timeframe) -> list[tuple[int, int]]:
    """(time exit, next session's pre-open) of every session the bars span, for an intraday
    strategy whose policy has a time exit; in between, no decision is taken."""
    if not config.policy.has_time_exit(timeframe) or not bars:
        return []
    first = min(int(b.ts[0]) for b in bars.values() if len(b.ts))
    last = max(int(b.end[-1]) for b in bars.values() if len(b.end))
    return _closings_between(first, last, config, timeframe)


def _closings_between(first: int, last: int, config: BacktestConfig, timeframe: Timeframe) -> list[tuple[int, int]]:
    """`_closings` of the sessions from the one of instant `first` to the one of `last`."""
    if not config.policy.has_time_exit(timeframe):
        return []
    calendar = get_calendar()
    days = calendar.sessions(ny_day(_instant(first)), ny_day(_instant(last)))
    out = []
    for today, tomorrow in zip(days, [*days[1:], None]):
        exit_at = config.policy.exit_at(today.close, timeframe)
        assert exit_at is not None
        reopen = tomorrow.pre_open if tomorrow is not None else calendar.next_open(today.post_close, extended=True)
        out.append((to_us(exit_at), to_us(reopen)))
    return out


@dataclass
class _Loop:
    """The event loop's rules: the execution policy applied to the book."""

    book: _Book
    bars: dict[str, SymbolBars]
    config: BacktestConfig
    breaker: DailyLossBreaker
    seq: itertools.count
    closings: list[tuple[int, int]]  # sorted (exit at, reopen)
    halts: list[tuple[int, int | None, str]]
    observed: int | None = None

    def observe_session(self, at: int) -> None:
        """The breaker's reference: the equity the New York day started with (its midnight)."""
        if self.breaker.limit_pct is not None and _session_of(at) != self.observed:
            self.observed, start = _session_of(at), _session_start(at)
            _apply_until(self.book, self.config, start)
            self.breaker.observe(self.observed, _equity_at(self.book, self.bars, start))

    def on_event(self, event: _Event) -> None:
        _apply_until(self.book, self.config, event.at)
        if event.kind == "halt":  # the kill switch: working entries go, exits and stops stay
            for order_id, order in list(self.book.working.items()):
                if order.side is Side.BUY:
                    _cancel(self.book, self.config, order_id)
                    self.protect_now(order, event.at)
        else:
            self.flatten(event.at, event.reason)

    def flatten(self, at: int, reason: str) -> None:
        """Cancel every working order and sell every position, at market."""
        for symbol in sorted({o.symbol for o in self.book.working.values()}):
            _cancel_working(self.book, self.config, symbol)
        for symbol, held in sorted(self.book.position.items()):
            if held > 0:
                order = OrderSpec(_new_id(self.book, f"{symbol}-{at}-flat"), symbol, Side.SELL, held, OrderType.MARKET,
                                  TimeInForce.DAY, at, reason=reason)
                _place(self.book, self.bars[symbol], order, self.config, self.seq)

    def protect(self, entry: OrderSpec, fills: list[FillRow], until: int) -> None:
        """The entry's protective stop, for what it filled, from the bar after it stops working."""
        scale = fills[-1].scale  # the stop is set, in ticks, on the traded price
        stop_price = self.config.policy.stop_price(sum(f.qty * f.price for f in fills) / sum(f.qty for f in fills) / scale)
        if stop_price is None:
            return
        stop_price *= scale
        base = f"{entry.symbol}-{entry.placed_us}-stop" + entry.order_id[len(f"{entry.symbol}-{entry.placed_us}-enter"):]
        stop = OrderSpec(_new_id(self.book, base), entry.symbol, Side.SELL, sum(f.qty for f in fills), OrderType.STOP,
                         TimeInForce.GTC, until, stop_price=stop_price,
                         reason=f"stop loss {self.config.policy.stop_loss_pct:.1%} under the entry")
        self.book.stops[entry.order_id] = stop
        _place(self.book, self.bars[entry.symbol], stop, self.config, self.seq)

    def protect_now(self, entry: OrderSpec, at: int) -> None:
        """An entry cancelled part-filled at `at`: its stop covers what it filled, from `at` on."""
        planned = self.book.stops.pop(entry.order_id, None)
        if planned is not None and planned.order_id in self.book.working:
            _cancel(self.book, self.config, planned.order_id)
        if entry.order_id in self.book.filled:
            fills = [f for f in self.book.applied if f.order_id == entry.order_id]
            self.protect(entry, fills, at)

    def closing(self, at: int) -> bool:
        i = bisect.bisect_right(self.closings, (at, 2**63)) - 1
        return i >= 0 and at < self.closings[i][1]

    def stopped(self, at: int) -> str | None:
        for start, end, reason in self.halts:
            if start <= at and (end is None or at < end):
                return f"kill switch: {reason}"
        return None

    def decide(self, row: dict, at: int) -> str | OrderSpec:
        """The decision's outcome, or the order it placed (its outcome is settled at the end)."""
        book, config, policy = self.book, self.config, self.config.policy
        symbol = row["symbol"]
        series = self.bars.get(symbol)
        if series is None:
            return Outcome.NO_BARS
        if self.closing(at):
            return Outcome.CLOSING
        held = book.position.get(symbol, 0.0)
        busy = bool(book.open_orders.get(symbol))
        if row["action"] == Action.ENTER:
            multiple = config.buying_power_multiple
            view = BookView(
                equity=(equity := _equity_at(book, self.bars, at)),
                buying_power=_buying_power(book, self.bars, multiple, at, equity) if multiple is not None else math.inf,
                held=book.position, working={s for s, ids in book.open_orders.items() if ids})
            refused = policy.gate(symbol, closing=False, stopped=self.stopped(at), book=view, breaker=self.breaker,
                                  session=_session_of(at))
            if refused is not None:
                if refused.startswith(Outcome.DAILY_LOSS) and policy.flatten_on_breaker:
                    self.flatten(at, "daily loss limit: flatten")
                return refused
            # The policy sizes in shares at the traded price; the book holds units (adjust.py).
            qty = policy.entry(symbol, asked=row["qty"], price=series.traded_close(at), book=view)
            if isinstance(qty, str):
                return qty
            scale = series.scale_at(at)
            order = _order(row, symbol, Side.BUY, qty / scale, at, _new_id(book, f"{symbol}-{at}-enter"), scale)
            fills, until = _place(book, series, order, config, self.seq)
            if fills:
                # Its size is known once the entry has stopped working (a part-filled DAY entry
                # works on to its session's end): the stop is live from the bar after that.
                assert until is not None  # an order that filled had a bar to work on
                self.protect(order, fills, until + 1)
            return order
        if held == 0 and not busy:
            return Outcome.NOTHING_TO_EXIT
        _cancel_working(book, config, symbol)
        if held <= 0:
            return Outcome.CANCELLED_ENTRY
        order = _order(row, symbol, Side.SELL, held, at, _new_id(book, f"{symbol}-{at}-exit"), series.scale_at(at))
        _place(book, series, order, config, self.seq)
        return order


def _new_id(book: _Book, base: str) -> str:
    """`base`, or `base-2`, `base-3`... when decisions at the same instant already used it."""
    order_id, n = base, 1
    while order_id in book.ids:
        n += 1
        order_id = f"{base}-{n}"
    book.ids.add(order_id)
    return order_id


def _order(row: dict, symbol: str, side: Side, qty: float, at: int, order_id: str, scale: float = 1.0) -> OrderSpec:
    """The decision's order in the book's units: its prices, set on traded prices, times `scale`."""
    limit, stop = row["limit_price"], row["stop_price"]
    return OrderSpec(order_id, symbol, side, float(qty), OrderType(row["order_type"]), TimeInForce(row["time_in_force"]),
                     at, None if limit is None else limit * scale, None if stop is None else stop * scale, row["reason"])


def _place(book: _Book, series: SymbolBars, order: OrderSpec, config: BacktestConfig,
           seq: itertools.count[int]) -> tuple[list[FillRow], int | None]:
    """Its fills, and the instant it stops working (None: it never works)."""
    fills = fill_order(series, order, config.costs)
    until = working_until(series, order)
    if until is None:  # no bar left it could fill on: it never works
        return fills, None
    if fills and sum(f.qty for f in fills) >= order.qty - 1e-9:
        until = fills[-1].ts_us  # complete at its last fill
    book.open_orders.setdefault(order.symbol, set()).add(order.order_id)
    book.working[order.order_id] = order
    for fill in fills:
        heapq.heappush(book.pending, (fill.ts_us, next(seq), fill))
    heapq.heappush(book.pending, (until, next(seq), order))  # after its fills at the same instant
    return fills, until


def _cancel_working(book: _Book, config: BacktestConfig, symbol: str) -> None:
    """An exit cancels whatever is still working for the symbol (an unfilled entry, its stop);
    an order cancelled part-filled pays for what it filled."""
    for order_id in list(book.open_orders.get(symbol, ())):
        _cancel(book, config, order_id)


def _cancel(book: _Book, config: BacktestConfig, order_id: str) -> None:
    order = book.working.pop(order_id)
    book.open_orders[order.symbol].discard(order_id)
    book.cancelled.add(order_id)
    _settle(book, config, order_id)


def _settle(book: _Book, config: BacktestConfig, order_id: str) -> None:
    """An order has stopped working: its commission and fees, on what it filled, for the report
    (the cash paid them fill by fill)."""
    if order_id in book.done or order_id not in book.filled:
        return
    side, _, value = book.filled[order_id]
    qty = book.traded[order_id]
    book.done[order_id] = (config.costs.commission.commission(qty, value), config.costs.commission.fees(side, qty, value))


def _apply_until(book: _Book, config: BacktestConfig, at: int | None) -> None:
    """Apply every pending fill strictly before `at` (all of them for None)."""
    while book.pending and (at is None or book.pending[0][0] < at):
        _, _, fill = heapq.heappop(book.pending)
        if fill.order_id in book.cancelled:
            continue
        if isinstance(fill, OrderSpec):  # it has stopped working: filled, or its time is up
            _settle(book, config, fill.order_id)
            book.open_orders.get(fill.symbol, set()).discard(fill.order_id)
            book.working.pop(fill.order_id, None)
            continue
        sign = 1 if fill.side is Side.BUY else -1
        book.position[fill.symbol] = book.position.get(fill.symbol, 0.0) + sign * fill.qty
        book.cash -= sign * fill.qty * fill.price
        book.applied.append(fill)
        _, qty, value = book.filled.get(fill.order_id, (fill.side, 0.0, 0.0))
        qty, value = qty + fill.qty, value + fill.qty * fill.price
        book.filled[fill.order_id] = (fill.side, qty, value)
        traded = book.traded[fill.order_id] = book.traded.get(fill.order_id, 0.0) + fill.qty * fill.scale
        # Commission is paid as the order fills, as a broker books it: each fill pays what the
        # order's total grew by.
        costs = config.costs.commission
        total = costs.commission(traded, value) + costs.fees(fill.side, traded, value)
        book.cash -= total - book.charged.get(fill.order_id, 0.0)
        book.charged[fill.order_id] = total


def _buying_power(book: _Book, bars: dict[str, SymbolBars], multiple: float, at: int, equity: float) -> float:
    """Equity x multiple, less the value of positions held and of the buys still working: their
    unfilled shares at their limit (or stop) price, else at the last close, as a broker holds
    them back (whether they will ever fill lies in the future)."""
    held = sum(abs(qty) * (bars[s].last_close(at) or 0.0) for s, qty in book.position.items() if qty)
    working = sum(
        (order.qty - book.filled.get(order_id, (Side.BUY, 0.0, 0.0))[1])
        * (order.limit_price or order.stop_price or bars[order.symbol].last_close(at) or 0.0)
        for order_id, order in book.working.items() if order.side is Side.BUY
    )
    return max(0.0, equity * multiple - held - working)


def _equity_at(book: _Book, bars: dict[str, SymbolBars], at: int) -> float:
    value = book.cash
    for symbol, qty in book.position.items():
        if qty:
            value += qty * (bars[symbol].last_close(at) or 0.0)
    return value


def _instant(at: int) -> datetime:
    return datetime.fromtimestamp(at / 1_000_000, UTC)


def _session_of(at: int) -> int:
    return ny_day(_instant(at)).toordinal()


def _session_start(at: int) -> int:
    """Midnight New York of the day `at` falls on."""
    return to_us(ny_day_bounds(_instant(at))[0])


def _fills_frame(book: _Book) -> pl.DataFrame:
    """Applied fills; an order's commission and fees sit on its last fill."""
    rows = []
    last_fill = {f.order_id: i for i, f in enumerate(book.applied)}
    for i, fill in enumerate(book.applied):
        commission, fees = book.done.get(fill.order_id, (0.0, 0.0)) if last_fill[fill.order_id] == i else (0.0, 0.0)
        rows.append({
            "order_id": fill.order_id, "symbol": fill.symbol, "side": fill.side.value,
            "ts": fill.ts_us, "qty": fill.qty, "price": fill.price, "commission": commission, "fees": fees,
            "slippage": abs(fill.price - fill.reference) * fill.qty,
        })
    frame = pl.DataFrame(rows, schema={**FILLS_SCHEMA, "ts": pl.Int64()})  # microseconds, as the book keeps them
    return conform(frame, FILLS_SCHEMA)


def _trades(fills: pl.DataFrame) -> pl.DataFrame:
    """Round trips: from the fill that opens a position to the one that brings it back to 0,
    per symbol (in order of its first fill), then in time."""
    buy = pl.col("side") == Side.BUY.value
    value = pl.col("qty") * pl.col("price")
    marked = fills.with_row_index("_row").with_columns(
        (pl.when(buy).then(pl.col("qty")).otherwise(-pl.col("qty")).cum_sum().over("symbol").abs() < 1e-9).alias("_flat"),
    ).with_columns(
        # a trade ends on the fill that leaves the symbol flat: count the ends before each fill
        pl.col("_flat").cast(pl.Int64).cum_sum().shift(1, fill_value=0).over("symbol").alias("_trade"),
        pl.col("_row").min().over("symbol").alias("_first"),
    )
    trades = marked.group_by("_first", "_trade").agg(
        pl.col("symbol").first(), pl.col("ts").first().alias("entry_ts"), pl.col("ts").last().alias("exit_ts"),
        pl.col("qty").filter(buy).sum().alias("qty"), value.filter(buy).sum().alias("_bought"),
        value.filter(~buy).sum().alias("_sold"), (pl.col("commission") + pl.col("fees")).sum().alias("costs"),
        pl.col("_flat").last().alias("_closed"),
    ).filter("_closed").sort("_first", "_trade")
    pnl = pl.col("_sold") - pl.col("_bought") - pl.col("costs")
    return conform(trades.with_columns(
        (pl.col("_bought") / pl.col("qty")).alias("entry_price"), (pl.col("_sold") / pl.col("qty")).alias("exit_price"),
        pnl.alias("pnl"), (100 * pnl / pl.col("_bought")).alias("return_pct"),
    ), TRADES_SCHEMA)


def _timeline(ends: list[np.ndarray]) -> np.ndarray:
    """Every distinct bar end, in order."""
    if not ends:
        return np.array([], dtype=np.int64)
    first = ends[0]
    if np.all(first[1:] > first[:-1]) and all(np.array_equal(e, first) for e in ends[1:]):
        return first  # one clock for every symbol: nothing to merge
    merged = np.sort(np.concatenate(ends))
    return merged[np.concatenate([[True], merged[1:] != merged[:-1]])]


def _running_total(bins: np.ndarray, amounts: np.ndarray, n: int) -> np.ndarray:
    """At each of `n` instants, the sum of the amounts whose bin is at or before it."""
    return np.cumsum(np.bincount(bins, weights=amounts, minlength=n + 1)[:n])


def _equity_curve(marks: Mapping[str, SymbolBars | Marks], fills: pl.DataFrame, cash: float) -> pl.DataFrame:
    """Cash, position value and equity at every bar end, fills up to that instant included."""
    timeline = _timeline([m.end for m in marks.values()])
    # Each fill counts from the first bar end at or after it: sums per bar end, then running totals.
    at = np.searchsorted(timeline, fills["ts"].dt.epoch("us").to_numpy(), side="left")
    signed = np.where(fills["side"].to_numpy() == Side.BUY.value, 1.0, -1.0) * fills["qty"].to_numpy()
    cash_flow = -signed * fills["price"].to_numpy() - fills["commission"].to_numpy() - fills["fees"].to_numpy()
    cash_curve = cash + _running_total(at, cash_flow, len(timeline))
    value = np.zeros(len(timeline))
    gross = np.zeros(len(timeline))
    rows = dict(fills.select("symbol", pl.int_range(pl.len()).alias("i")).group_by("symbol").agg("i").iter_rows())
    for symbol, series in marks.items():  # in the bars' order: the sum is the same every run
        if symbol not in rows:
            continue
        mine = np.asarray(rows[symbol], dtype=np.int64)
        held = _running_total(at[mine], signed[mine], len(timeline))
        if len(series.end) == len(timeline) and np.array_equal(series.end, timeline):
            price = series.close  # the symbol's own clock
        else:
            last = np.searchsorted(series.end, timeline, side="right") - 1
            price = np.where(last >= 0, series.close[np.maximum(last, 0)], 0.0)
        value += held * price
        gross += np.abs(held * price)
    equity = cash_curve + value
    return conform(pl.DataFrame({
        "ts": pl.Series(timeline, dtype=pl.Int64),
        "cash": cash_curve, "positions": value, "equity": equity,
        "exposure": np.divide(gross, equity, out=np.zeros_like(gross), where=equity > 0),
    }), EQUITY_SCHEMA)
