"""The backtest engine: a strategy's signals, through orders and fills, to a marked portfolio.

It walks the signals in time order (not every bar): before each decision it applies the
fills that happened strictly before it, then turns the decision into an order sized by the
risk rules; each order's fills come from `fills.fill_order`, which only sees bars starting
at or after the order. An order is working until it has filled completely or its last
chance to fill (`fills.working_until`) has passed, whether or not it will ever fill: a
decision cannot know that. The equity curve is then marked at every bar end in one vectorised
pass. `tests/reference_engine.py` is a bar-by-bar loop this engine must agree with.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

import numpy as np
import polars as pl

from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.fast import Marks, market_fills, market_only
from tapeflow.backtest.fills import (
    FillRow,
    OrderSpec,
    SymbolBars,
    fill_order,
    split_by_symbol,
    to_us,
    working_until,
)
from tapeflow.backtest.outcomes import Outcome
from tapeflow.calendar.exchange import get_calendar, ny_day, ny_day_bounds
from tapeflow.model import Action, OrderType, Side, TimeInForce
from tapeflow.risk.limits import DailyLossBreaker
from tapeflow.schemas import EQUITY_SCHEMA, FILLS_SCHEMA, TRADES_SCHEMA, conform


@dataclass
class _Book:
    """Mutable state while the engine walks the signals."""

    cash: float
    position: dict[str, float] = field(default_factory=dict)
    # heap of (ts, seq, fill), and (ts, seq, order) when that order stops working
    pending: list[tuple[int, int, FillRow | OrderSpec]] = field(default_factory=list)
    cancelled: set[str] = field(default_factory=set)
    open_orders: dict[str, set[str]] = field(default_factory=dict)  # symbol -> order ids still working
    applied: list[FillRow] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)  # order ids given out
    filled: dict[str, tuple[Side, float, float]] = field(default_factory=dict)  # order id -> (side, qty, value)
    done: dict[str, tuple[float, float]] = field(default_factory=dict)  # order id -> (commission, fees) charged


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


def simulate(bars: pl.DataFrame, signals: pl.DataFrame, config: BacktestConfig = BacktestConfig()) -> BacktestResult:
    """Run `signals` (SIGNAL_SCHEMA) against `bars` (symbol, ts, end_ts, OHLCV)."""
    signals = signals.sort("at", maintain_order=True)
    marks: Mapping[str, SymbolBars | Marks]
    if market_only(signals, config):
        fills, outcomes, marks = market_fills(bars, signals, config.costs)
    else:
        fills, outcomes, marks = _walk_signals(bars, signals, config)
    return BacktestResult(
        fills=fills,
        trades=_trades(fills),
        equity=_equity_curve(marks, fills, config.cash),
        decisions=signals.with_columns(pl.Series("outcome", outcomes, dtype=pl.String)),
        config=config,
        start_cash=config.cash,
    )


def _walk_signals(
    bars: pl.DataFrame, signals: pl.DataFrame, config: BacktestConfig
) -> tuple[pl.DataFrame, list[str], dict[str, SymbolBars]]:
    """The event loop: fills, each signal's outcome, and the bars they were marked on."""
    book_bars = split_by_symbol(bars, get_calendar())
    book = _Book(cash=config.cash)
    seq = itertools.count()
    breaker = DailyLossBreaker(config.daily_loss_limit_pct)
    outcomes: list[str | OrderSpec] = []
    observed: int | None = None

    for row in signals.iter_rows(named=True):
        at = to_us(row["at"])
        if breaker.limit_pct is not None and _session_of(at) != observed:
            # The session's reference equity is the one it started with (its New York midnight).
            observed, start = _session_of(at), _session_start(at)
            _apply_until(book, config, start)
            breaker.observe(observed, _equity_at(book, book_bars, start))
        _apply_until(book, config, at)
        outcomes.append(_decide(book, book_bars, config, breaker, row, at, seq))
    _apply_until(book, config, None)
    # Whether an order filled is known only now: a later exit may have cancelled it first.
    filled = {fill.order_id for fill in book.applied}
    settled = [o if isinstance(o, str) else Outcome.PLACED if o.order_id in filled else Outcome.NEVER_FILLED for o in outcomes]
    return _fills_frame(book), settled, book_bars


def _decide(book: _Book, bars: dict[str, SymbolBars], config: BacktestConfig, breaker: DailyLossBreaker,
            row: dict, at: int, seq: itertools.count) -> str | OrderSpec:
    """The decision's outcome, or the order it placed (its outcome is settled at the end)."""
    symbol = row["symbol"]
    series = bars.get(symbol)
    if series is None:
        return Outcome.NO_BARS
    held = book.position.get(symbol, 0.0)
    busy = bool(book.open_orders.get(symbol))
    # Marking the whole book costs a pass over every position: only when a rule needs it.
    equity = _equity_at(book, bars, at) if breaker.limit_pct is not None or row["qty"] is None else None
    session = _session_of(at) if breaker.limit_pct is not None else None
    if row["action"] == Action.ENTER:
        if held != 0 or busy:
            return Outcome.BUSY
        # Both are known exactly when the breaker is on.
        if session is not None and equity is not None and breaker.tripped(session, equity):
            return Outcome.DAILY_LOSS.with_detail(breaker.describe(session, equity))
        price = series.last_close(at)
        multiple = config.buying_power_multiple
        power = _buying_power(book, bars, multiple, at) if multiple is not None else None
        qty = row["qty"] if row["qty"] is not None else config.sizing.shares(
            equity=cast(float, equity),  # marked above: the rules size this entry
            buying_power=book.cash if power is None else power, price=price,
            open_positions=_open_positions(book),
            stop_distance=price * config.stop_loss_pct if price and config.stop_loss_pct else None,
        )
        if not qty or qty <= 0:
            return Outcome.SIZED_TO_ZERO
        if power is not None and price:
            affordable = max(0, int(power // price))
            if affordable == 0:
                return Outcome.NO_BUYING_POWER.with_detail(f"{power:,.2f}")
            qty = min(qty, affordable)
        order = _order(row, symbol, Side.BUY, qty, at, _new_id(book, f"{symbol}-{at}-enter"))
        fills, until = _place(book, series, order, config, seq)
        if fills and config.stop_loss_pct:
            # Its size is known once the entry has stopped working (a part-filled DAY entry
            # works on to its session's end): the stop is live from the bar after that.
            assert until is not None  # an order that filled had a bar to work on
            entry = sum(f.qty * f.price for f in fills) / sum(f.qty for f in fills)
            stop_id = f"{symbol}-{at}-stop" + order.order_id[len(f"{symbol}-{at}-enter"):]  # the entry's -n
            stop = OrderSpec(stop_id, symbol, Side.SELL, sum(f.qty for f in fills), OrderType.STOP,
                             TimeInForce.GTC, until + 1, stop_price=entry * (1 - config.stop_loss_pct),
                             reason=f"stop loss {config.stop_loss_pct:.1%} under the entry")
            _place(book, series, stop, config, seq)
        return order
    if held == 0 and not busy:
        return Outcome.NOTHING_TO_EXIT
    _cancel_working(book, config, symbol)
    if held <= 0:
        return Outcome.CANCELLED_ENTRY
    order = _order(row, symbol, Side.SELL, held, at, _new_id(book, f"{symbol}-{at}-exit"))
    _place(book, series, order, config, seq)
    return order


def _new_id(book: _Book, base: str) -> str:
    """`base`, or `base-2`, `base-3`... when decisions at the same instant already used it."""
    order_id, n = base, 1
    while order_id in book.ids:
        n += 1
        order_id = f"{base}-{n}"
    book.ids.add(order_id)
    return order_id


def _order(row: dict, symbol: str, side: Side, qty: float, at: int, order_id: str) -> OrderSpec:
    return OrderSpec(order_id, symbol, side, float(qty), OrderType(row["order_type"]), TimeInForce(row["time_in_force"]),
                     at, row["limit_price"], row["stop_price"], row["reason"])


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
    for fill in fills:
        heapq.heappush(book.pending, (fill.ts_us, next(seq), fill))
    heapq.heappush(book.pending, (until, next(seq), order))  # after its fills at the same instant
    return fills, until


def _cancel_working(book: _Book, config: BacktestConfig, symbol: str) -> None:
    """An exit cancels whatever is still working for the symbol (an unfilled entry, its stop);
    an order cancelled part-filled pays for what it filled."""
    for order_id in book.open_orders.pop(symbol, set()):
        book.cancelled.add(order_id)
        _settle(book, config, order_id)


def _settle(book: _Book, config: BacktestConfig, order_id: str) -> None:
    """Charge an order's commission and fees once, on what it actually filled."""
    if order_id in book.done or order_id not in book.filled:
        return
    side, qty, value = book.filled[order_id]
    charge = (config.costs.commission.commission(qty, value), config.costs.commission.fees(side, qty, value))
    book.done[order_id] = charge
    book.cash -= sum(charge)


def _apply_until(book: _Book, config: BacktestConfig, at: int | None) -> None:
    """Apply every pending fill strictly before `at` (all of them for None)."""
    while book.pending and (at is None or book.pending[0][0] < at):
        _, _, fill = heapq.heappop(book.pending)
        if fill.order_id in book.cancelled:
            continue
        if isinstance(fill, OrderSpec):  # it has stopped working: filled, or its time is up
            _settle(book, config, fill.order_id)
            book.open_orders.get(fill.symbol, set()).discard(fill.order_id)
            continue
        sign = 1 if fill.side is Side.BUY else -1
        book.position[fill.symbol] = book.position.get(fill.symbol, 0.0) + sign * fill.qty
        book.cash -= sign * fill.qty * fill.price
        book.applied.append(fill)
        _, qty, value = book.filled.get(fill.order_id, (fill.side, 0.0, 0.0))
        book.filled[fill.order_id] = (fill.side, qty + fill.qty, value + fill.qty * fill.price)


def _buying_power(book: _Book, bars: dict[str, SymbolBars], multiple: float, at: int) -> float:
    """Equity x multiple, less the value of positions held and of buys still to fill."""
    held = sum(abs(qty) * (bars[s].last_close(at) or 0.0) for s, qty in book.position.items() if qty)
    # Buys still to fill are valued at the last close: their fill prices lie in the future.
    working = sum(
        f.qty * (bars[f.symbol].last_close(at) or 0.0) for _, _, f in book.pending
        if isinstance(f, FillRow) and f.side is Side.BUY and f.order_id not in book.cancelled
    )
    equity = book.cash + sum(qty * (bars[s].last_close(at) or 0.0) for s, qty in book.position.items() if qty)
    return max(0.0, equity * multiple - held - working)


def _equity_at(book: _Book, bars: dict[str, SymbolBars], at: int) -> float:
    value = book.cash
    for symbol, qty in book.position.items():
        if qty:
            value += qty * (bars[symbol].last_close(at) or 0.0)
    return value


def _open_positions(book: _Book) -> int:
    return sum(1 for qty in book.position.values() if qty) + sum(
        1 for s, ids in book.open_orders.items() if ids and not book.position.get(s)
    )


def _session_of(at: int) -> int:
    return ny_day(datetime.fromtimestamp(at / 1_000_000, UTC)).toordinal()


def _session_start(at: int) -> int:
    """Midnight New York of the day `at` falls on."""
    return to_us(ny_day_bounds(datetime.fromtimestamp(at / 1_000_000, UTC))[0])


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
