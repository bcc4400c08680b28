"""The engine's market-order fast path: the event loop's fills, order ids and decision
outcomes, computed over arrays instead of one event at a time.

It applies (`market_only`) when nothing can couple one order to another or to a bar's
volume: every signal is a market order, DAY or GTC; every entry has a positive fixed
quantity; no symbol has two signals at one instant; the execution policy
(`tapeflow.risk.policy`) is passive: no position cap, stop loss, daily-loss limit or time
exit; and the config has no buying-power check, no participation cap, no tick rounding and
no liquidity-model slippage (it prices each fill by its size). Then each order fills whole at the open of its symbol's first bar
starting at or after the decision (for DAY and GTC alike that bar is in its window), symbols
never interact, and a symbol's decisions are the engine's small state machine: enter only
when flat with nothing working; an exit sells what is held, or cancels an entry not yet
filled.
`tests/backtest/test_engine.py` holds it equal to the event loop and to the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.costs import Costs
from tapeflow.model import Action, OrderType, Outcome, Side, Timeframe, TimeInForce
from tapeflow.risk.policy import ExecutionPolicy
from tapeflow.schemas import FILLS_SCHEMA, conform
from tapeflow.strategy.history import by_symbol_and_time


@dataclass(frozen=True)
class Marks:
    """One symbol's bar ends and closes: what the equity curve marks positions at."""

    end: np.ndarray  # int64 microseconds
    close: np.ndarray


def market_only(signals: pl.DataFrame, config: BacktestConfig, timeframe: Timeframe = Timeframe.DAY) -> bool:
    """Whether `signals` under `config` can take the fast path: the execution policy is passive
    (no position cap, stop, breaker or time exit) and nothing else couples orders."""
    costs = config.costs
    policy: ExecutionPolicy = config.policy
    if (not policy.passive(timeframe) or config.buying_power_multiple is not None
            or costs.participation is not None or costs.round_to_tick or costs.slippage.model is not None):
        return False
    if signals.is_empty():
        return True
    enter = pl.col("action") == Action.ENTER.value
    checks = signals.select(
        (pl.col("order_type") == OrderType.MARKET.value).all().alias("market"),
        pl.col("time_in_force").is_in([TimeInForce.DAY.value, TimeInForce.GTC.value]).all().alias("tif"),
        (~enter | (pl.col("qty").is_not_null() & (pl.col("qty") > 0))).all().alias("sized"),
        (pl.struct("symbol", "at").n_unique() == pl.len()).alias("distinct"),
    ).row(0)
    return all(checks)


def market_fills(bars: pl.DataFrame, signals: pl.DataFrame, costs: Costs) -> tuple[pl.DataFrame, list[str], dict[str, Marks]]:
    """The fills frame, each signal's outcome (in `signals`' order, which must be sorted by
    `at`) and each symbol's marks, for inputs `market_only` accepted."""
    bars = by_symbol_and_time(bars)
    ts = bars["ts"].dt.epoch("us").to_numpy()
    end = bars["end_ts"].dt.epoch("us").to_numpy()
    opens, closes = bars["open"].to_numpy(), bars["close"].to_numpy()
    traded = bars["scale"].to_numpy() if "scale" in bars.columns else np.ones(bars.height)
    runs = bars["symbol"].rle()
    lengths = runs.struct.field("len").to_numpy()
    stops = np.cumsum(lengths)
    bounds = {s: (int(b - n), int(b)) for s, b, n in zip(runs.struct.field("value").to_list(), stops, lengths)}
    marks = {s: Marks(end[a:b], closes[a:b]) for s, (a, b) in bounds.items()}

    outcome = np.full(signals.height, Outcome.NO_BARS, dtype=object)
    sig = (signals.with_row_index("_decision").filter(pl.col("symbol").is_in(list(bounds)))
           .sort("symbol", "at", maintain_order=True))
    at = sig["at"].dt.epoch("us").to_numpy()
    enter = (sig["action"] == Action.ENTER.value).to_numpy()
    qty = sig["qty"].fill_null(0.0).to_numpy()
    first = np.empty(sig.height, dtype=np.int64)  # the bar each signal's order would fill on
    last = np.empty(sig.height, dtype=np.int64)  # one past its symbol's last bar
    new_symbol = np.zeros(sig.height, dtype=bool)
    sig_runs = sig["symbol"].rle()
    hi = 0
    for symbol, n in zip(sig_runs.struct.field("value").to_list(), sig_runs.struct.field("len").to_list()):
        a, b = bounds[symbol]
        first[hi:hi + n] = a + np.searchsorted(ts[a:b], at[hi:hi + n], side="left")
        last[hi:hi + n] = b
        new_symbol[hi] = True
        hi += n

    live = first < last  # a bar is left to fill on (false only for a symbol's last decisions)
    fill_ts = ts[np.minimum(first, len(ts) - 1)]
    same = ~new_symbol[1:]
    if not np.any(same & live[:-1] & (fill_ts[:-1] >= at[1:])):
        # Every order fills before its symbol's next decision: the position after a decision
        # is its action, so a decision acts exactly when its action changes.
        previous = np.concatenate([[False], enter[:-1]]) & ~new_symbol
        acted = np.flatnonzero(live & (enter != previous))
        sides = enter[acted]
        # Entries and exits alternate, each symbol starting with an entry: an exit sells
        # what the entry before it bought.
        amounts = np.where(sides, qty[acted], np.roll(qty[acted], 1))
        placed = np.where(enter, Outcome.BUSY, Outcome.NOTHING_TO_EXIT).astype(object)
        placed[acted] = Outcome.PLACED
        # Decisions with no bar left change nothing: each meets the position the last
        # decision that could fill left behind.
        k = np.arange(len(at))
        start = np.maximum.accumulate(np.where(new_symbol, k, 0))
        last_live = np.maximum.accumulate(np.where(live, k, -1))
        held = (last_live >= start) & enter[np.maximum(last_live, 0)]
        dead = ~live
        placed[dead & (enter != held)] = Outcome.NEVER_FILLED
    else:
        acted, amounts, placed = _walk(at, enter, qty, first, last, fill_ts, new_symbol)
        sides = enter[acted]
    outcome[sig["_decision"].to_numpy()] = placed

    bar = first[acted]
    sign = np.where(sides, 1.0, -1.0)
    reference = opens[bar]
    fraction = costs.slippage.fraction()
    price = reference * (1 + sign * fraction)
    value = amounts * price
    chosen = sig[acted]
    fills = pl.DataFrame({
        "order_id": chosen.select(pl.format("{}-{}-{}", "symbol", pl.col("at").dt.epoch("us"), "action")).to_series(),
        "symbol": chosen["symbol"],
        "side": np.where(sides, Side.BUY.value, Side.SELL.value),
        "ts": ts[bar],
        "qty": amounts,
        "price": price,
        # per-share charges count shares as traded, not the engine's units (adjust.py)
        "commission": costs.commission.commissions(amounts * traded[bar], value),
        "fees": costs.commission.sell_fees(~sides, amounts * traded[bar], value),
        "slippage": np.abs(price - reference) * amounts,
        "_decision": chosen["_decision"],
    })
    # The event loop's order: by fill time, then by when the order was placed.
    fills = conform(fills.sort("ts", "_decision"), FILLS_SCHEMA)
    return fills, outcome.tolist(), marks


def _walk(at: np.ndarray, enter: np.ndarray, qty: np.ndarray, first: np.ndarray, last: np.ndarray, fill_ts: np.ndarray,
          new_symbol: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The state machine one decision at a time (orders still working at a later decision,
    or decisions after the last bar): which decisions placed an order that filled, their
    quantities, and every decision's outcome."""
    acted: list[int] = []
    amounts: list[float] = []
    outcome = np.empty(len(at), dtype=object)
    held, working = 0.0, -1  # position; the decision whose order has not filled yet
    for k in range(len(at)):
        if new_symbol[k]:
            held, working = 0.0, -1
        if working >= 0 and fill_ts[working] < at[k]:  # it filled before this decision
            held += amounts[-1] if enter[working] else -amounts[-1]
            working = -1
        if enter[k]:
            if held != 0 or working >= 0:
                outcome[k] = Outcome.BUSY
                continue
            amount = float(qty[k])
        else:
            if held == 0 and working < 0:
                outcome[k] = Outcome.NOTHING_TO_EXIT
                continue
            if working >= 0:  # the exit cancels the order still working
                acted.pop(), amounts.pop()
                outcome[working] = Outcome.NEVER_FILLED
                working = -1
            if held <= 0:
                outcome[k] = Outcome.CANCELLED_ENTRY
                continue
            amount = held
        if first[k] >= last[k]:  # no bar left to fill on
            outcome[k] = Outcome.NEVER_FILLED
            continue
        outcome[k] = Outcome.PLACED
        acted.append(k)
        amounts.append(amount)
        working = k
    return np.asarray(acted, dtype=np.int64), np.asarray(amounts, dtype=float), outcome
