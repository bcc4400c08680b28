"""The compiled event loop's edges: which runs it takes, its inputs as arrays, and its codes
back into order ids, outcomes and the fills frame, as `engine._walk_signals` gives them.

It takes market, limit and stop orders, DAY or GTC, under the whole execution policy (sizing,
slots, position cap, buying power, stops, the daily-loss breaker, time exits) and cost model
(commissions and fees, fixed or liquidity slippage, ticks, the participation cap). The
kill switch, OPG and CLS auctions and corporate-action units stay with the Python loop.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from tapeflow.backtest.config import BacktestConfig
from tapeflow.backtest.fast import Marks
from tapeflow.backtest.liquidity import bar_liquidity
from tapeflow.model import Action, OrderType, Outcome, Side, TimeInForce
from tapeflow.risk.policy import loss_detail
from tapeflow.schemas import FILLS_SCHEMA, conform, to_us
from tapeflow.strategy.base import signal_frame
from tapeflow.strategy.history import by_symbol_and_time

_TYPES = {OrderType.MARKET.value: 0, OrderType.LIMIT.value: 1, OrderType.STOP.value: 2}
_TIFS = {TimeInForce.DAY.value: 0, TimeInForce.GTC.value: 1}
_KINDS = ("enter", "exit", "flat", "stop")
_PLAIN: list[str | None] = [Outcome.NO_BARS, Outcome.CLOSING, Outcome.BUSY, None, Outcome.NO_PRICE, Outcome.SIZED_TO_ZERO, None,
          Outcome.NOTHING_TO_EXIT, Outcome.CANCELLED_ENTRY, None]  # by kernel code; None: built below


def supports(signals: pl.DataFrame, steps: pl.DataFrame) -> bool:
    """Whether the compiled loop takes these signals: market, limit and stop orders, DAY or
    GTC, each with its price, and no corporate-action units."""
    if not steps.is_empty():
        return False
    if signals.is_empty():
        return True
    checks = signals.select(
        pl.col("order_type").is_in(list(_TYPES)).all().alias("type"),
        pl.col("time_in_force").is_in(list(_TIFS)).all().alias("tif"),
        ((pl.col("order_type") != OrderType.LIMIT.value) | pl.col("limit_price").is_not_null()).all().alias("limit"),
        ((pl.col("order_type") != OrderType.STOP.value) | pl.col("stop_price").is_not_null()).all().alias("stop"),
        (~pl.col("qty").is_nan()).fill_null(True).all().alias("qty"),
    ).row(0)
    return all(checks)


def columns_of(bars: pl.DataFrame, liquidity: bool) -> tuple[list[str], dict[str, np.ndarray], dict[str, Marks]]:
    """The bars as the loop's columns, symbols one after another in order: each symbol's name,
    the columns, and each symbol's marks for the equity curve. Sessions are the bars' New York
    dates (as `fills.mark_sessions` gives them); ADV and volatility only when `liquidity`
    prices fills (the warehouse's measure when the bars carry it)."""
    bars = by_symbol_and_time(bars)
    runs = bars["symbol"].rle()
    names = runs.struct.field("value").to_list()
    sizes = runs.struct.field("len").to_numpy().astype(np.int64)
    sym_hi = np.cumsum(sizes)
    sym_lo = sym_hi - sizes
    session = bars["ts"].dt.convert_time_zone("America/New_York").dt.date().cast(pl.Int32).cast(pl.Int64)
    columns = {"ts": bars["ts"].dt.epoch("us"), "end": bars["end_ts"].dt.epoch("us"), "session": session}
    out = {name: _own(values, np.int64) for name, values in columns.items()}
    for name in ("open", "high", "low", "close", "volume"):
        out[name] = _own(bars[name], np.float64)
    out["adv_dollars"] = np.full(bars.height, math.nan)
    out["sigma_daily"] = np.full(bars.height, math.nan)
    if liquidity and "adv_dollars" in bars.columns and "sigma_daily" in bars.columns:  # the warehouse's measure
        out["adv_dollars"] = _own(bars["adv_dollars"], np.float64)
        out["sigma_daily"] = _own(bars["sigma_daily"], np.float64)
    elif liquidity:  # measured on the bars' own sessions
        for lo, hi in zip(sym_lo.tolist(), sym_hi.tolist()):
            part = slice(lo, hi)
            out["adv_dollars"][part], out["sigma_daily"][part] = bar_liquidity(
                out["session"][part], out["close"][part], out["volume"][part])
    out["sym_lo"], out["sym_hi"] = sym_lo, sym_hi
    marks = {name: Marks(out["end"][lo:hi], out["close"][lo:hi]) for name, lo, hi in zip(names, sym_lo, sym_hi)}
    return names, out, marks


def walk(names: list[str], bars: dict[str, np.ndarray], signals: pl.DataFrame, config: BacktestConfig,
         closings: list[tuple[int, int]]) -> tuple[pl.DataFrame, list[str]]:
    """The event loop's fills and each signal's outcome (signals sorted by `at`) over the
    columns `columns_of` gave, for inputs `supports` accepted; `closings` are the policy's
    (time exit, reopen) pairs."""
    import tapeflow.backtest.kernel as kernel  # deferred: numba's import and the kernel's load take tenths of a second

    index = {name: i for i, name in enumerate(names)}
    at = signals["at"].dt.epoch("us").to_numpy()
    day = signals["at"].dt.convert_time_zone("America/New_York").dt.date()
    midnight = day.cast(pl.Datetime("us")).dt.replace_time_zone("America/New_York").dt.epoch("us")
    codes = signals.select(
        pl.col("symbol").replace_strict(index, default=-1, return_dtype=pl.Int64).alias("sym"),
        (pl.col("action") == Action.ENTER.value).alias("enter"),
        pl.col("qty").fill_null(math.nan).cast(pl.Float64),
        pl.col("order_type").replace_strict(_TYPES, return_dtype=pl.Int64).alias("type"),
        pl.col("time_in_force").replace_strict(_TIFS, return_dtype=pl.Int64).alias("tif"),
        pl.col("limit_price").fill_null(math.nan).cast(pl.Float64),
        pl.col("stop_price").fill_null(math.nan).cast(pl.Float64),
    )
    close_exit = np.array([c[0] for c in closings], dtype=np.int64)
    close_reopen = np.array([c[1] for c in closings], dtype=np.int64)
    model = config.costs.slippage.model
    anchors = np.array(model.anchors if model is not None else [(1.0, 0.0)], dtype=float)

    low, high = bars["low"], bars["high"]
    columns = (bars["ts"], bars["end"], bars["open"], high, low, bars["close"], bars["volume"], bars["session"],
               bars["adv_dollars"], bars["sigma_daily"], kernel.blocks(low, kernel.BLOCK, low=True),
               kernel.blocks(low, kernel.BLOCK2, low=True), kernel.blocks(high, kernel.BLOCK, low=False),
               kernel.blocks(high, kernel.BLOCK2, low=False), bars["sym_lo"], bars["sym_hi"])
    costs = (_params(config), np.ascontiguousarray(anchors[:, 0]), np.ascontiguousarray(anchors[:, 1]))
    arguments = (columns, _own(codes["sym"], np.int64), _own(at, np.int64), _own(codes["enter"], np.bool_),
                 _own(codes["qty"], np.float64), _own(codes["type"], np.int64), _own(codes["tif"], np.int64),
                 _own(codes["limit_price"], np.float64), _own(codes["stop_price"], np.float64),
                 _own(day.cast(pl.Int64) + _ORDINAL_OF_EPOCH, np.int64), _own(midnight, np.int64), close_exit,
                 close_reopen, costs)
    # room for an entry and its stop per decision and a sale per held name at each time exit;
    # a run that needs more (breaker flattens, fills split by the volume cap) runs again with twice the room
    order_room = 2 * signals.height + len(closings) * len(names) + 16
    fill_room = 2 * order_room
    while True:
        try:
            out_code, out_order, out_a, out_b, orders, fills, applied = kernel.run(*arguments, order_room, fill_room)
            break
        except kernel.Full:
            order_room, fill_room = 2 * order_room, 2 * fill_room
    kinds, syms = orders[:, kernel.O_KIND].astype(np.int64), orders[:, kernel.O_SYM].astype(np.int64)
    placed, parents = orders[:, kernel.O_PLACED].astype(np.int64), orders[:, kernel.O_PARENT].astype(np.int64)
    any_fill, commission, fees = orders[:, kernel.O_ANY] != 0, orders[:, kernel.O_COMMISSION], orders[:, kernel.O_FEES]
    done = fills[applied]
    fill_order, fill_ts = done[:, kernel.F_ORDER].astype(np.int64), done[:, kernel.F_TS].astype(np.int64)
    fill_qty, fill_price, fill_ref = done[:, kernel.F_QTY], done[:, kernel.F_PRICE], done[:, kernel.F_REF]

    order_ids = _order_ids(kinds, syms, placed, parents, names)
    outcomes: list[str] = []
    for code, order, a, b in zip(out_code.tolist(), out_order.tolist(), out_a.tolist(), out_b.tolist()):
        if code == kernel.PLACED_ORDER:
            outcomes.append(Outcome.PLACED if any_fill[order] else Outcome.NEVER_FILLED)
        elif code == kernel.NO_BUYING_POWER:
            outcomes.append(Outcome.NO_BUYING_POWER.with_detail(f"{a:,.2f}"))
        elif code == kernel.DAILY_LOSS:
            outcomes.append(Outcome.DAILY_LOSS.with_detail(loss_detail(a, b)))
        else:
            outcomes.append(_PLAIN[code])
    return _fills_frame(fill_order, fill_ts, fill_qty, fill_price, fill_ref, kinds, syms, commission, fees, order_ids,
                        names), outcomes


def _own(values: pl.Series | np.ndarray, dtype: type) -> np.ndarray:
    """A contiguous, writable array: polars hands out read-only views, which numba would compile
    the loop for a second time."""
    array = values.to_numpy() if isinstance(values, pl.Series) else values
    return np.require(array, dtype=dtype, requirements=["C", "W"])


def warm() -> None:
    """Compile the loop (or load it from numba's cache) on a few bars: `make test` does this
    once, before its workers all need it."""
    start = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
    ts = [start + timedelta(minutes=k) for k in range(4)]
    bars = pl.DataFrame({"symbol": ["A"] * 4, "ts": ts, "end_ts": [t + timedelta(minutes=1) for t in ts],
                         "open": [10.0] * 4, "high": [10.0] * 4, "low": [10.0] * 4, "close": [10.0] * 4,
                         "volume": [1000.0] * 4})
    decisions = signal_frame([{"symbol": "A", "at": ts[1], "action": "enter", "reason": "warm", "qty": None,
                               "order_type": "market", "time_in_force": "day", "limit_price": None,
                               "stop_price": None}])
    names, columns, _ = columns_of(bars, liquidity=True)
    walk(names, columns, decisions, BacktestConfig(), [(to_us(ts[2]), to_us(ts[3]))])


_ORDINAL_OF_EPOCH = 719_163  # date(1970, 1, 1).toordinal(): polars counts days from the epoch


def _params(config: BacktestConfig) -> np.ndarray:
    """The config as the kernel's float parameters (NaN: None)."""
    import tapeflow.backtest.kernel as kernel  # deferred, as in walk

    def none(x: float | None) -> float:
        return math.nan if x is None else float(x)

    costs, policy = config.costs, config.policy
    commission, model = costs.commission, costs.slippage.model
    p = np.full(kernel.N_PARAMS, math.nan)
    p[kernel.P_CASH] = config.cash
    p[kernel.P_BP_MULTIPLE] = none(config.buying_power_multiple)
    p[kernel.P_PARTICIPATION] = none(costs.participation)
    p[kernel.P_ROUND_TICK] = float(costs.round_to_tick)
    p[kernel.P_SLIP_BPS] = costs.slippage.bps
    p[kernel.P_SLIP_MODEL] = float(model is not None)
    if model is not None:
        p[kernel.P_HALF_SPREAD_BPS] = none(model.half_spread_bps)
        p[kernel.P_FALLBACK_ADV] = model.fallback_adv
        p[kernel.P_FALLBACK_SIGMA] = model.fallback_sigma
        p[kernel.P_IMPACT_Y] = model.impact_y
    p[kernel.P_PER_SHARE] = commission.per_share
    p[kernel.P_PER_ORDER] = commission.per_order
    p[kernel.P_MINIMUM] = commission.minimum
    p[kernel.P_MAXIMUM_PCT] = none(commission.maximum_pct)
    p[kernel.P_SEC_FEE] = commission.sec_fee_rate
    p[kernel.P_TAF] = commission.taf_per_share
    p[kernel.P_TAF_MAXIMUM] = commission.taf_maximum
    p[kernel.P_FRACTION] = policy.sizing.fraction
    p[kernel.P_MAX_POSITIONS] = policy.sizing.max_positions
    p[kernel.P_RISK_PER_TRADE] = none(policy.sizing.risk_per_trade)
    p[kernel.P_MAX_POSITION_PCT] = none(policy.max_position_pct)
    p[kernel.P_STOP_LOSS] = policy.stop_loss_pct if policy.stop_loss_pct else math.nan
    p[kernel.P_DAILY_LOSS] = none(policy.daily_loss_limit_pct)
    p[kernel.P_FLATTEN_ON_BREAKER] = float(policy.flatten_on_breaker)
    return p


def _order_ids(kinds: np.ndarray, syms: np.ndarray, placed: np.ndarray, parents: np.ndarray, names: list[str]) -> list[str]:
    """Each order's id as the Python loop gives it: `{symbol}-{instant}-{kind}`, with `-2`,
    `-3`... when that id was already given; a stop carries its entry's instant and suffix."""
    given: set[str] = set()
    ids: list[str] = []
    for kind, sym, at, parent in zip(kinds.tolist(), syms.tolist(), placed.tolist(), parents.tolist()):
        symbol = names[sym]
        if _KINDS[kind] == "stop":
            entry = ids[parent]
            entry_at = int(placed[parent])
            base = f"{symbol}-{entry_at}-stop" + entry[len(f"{symbol}-{entry_at}-enter"):]
        else:
            base = f"{symbol}-{at}-{_KINDS[kind]}"
        order_id, n = base, 1
        while order_id in given:
            n += 1
            order_id = f"{base}-{n}"
        given.add(order_id)
        ids.append(order_id)
    return ids


def _fills_frame(order: np.ndarray, ts: np.ndarray, qty: np.ndarray, price: np.ndarray, reference: np.ndarray,
                 kinds: np.ndarray, syms: np.ndarray, commission: np.ndarray, fees: np.ndarray, order_ids: list[str],
                 names: list[str]) -> pl.DataFrame:
    """Applied fills in order; an order's commission and fees sit on its last fill."""
    last = np.zeros(len(order), dtype=bool)
    if len(order):
        # the last applied fill of each order: first seen from the end
        _, from_end = np.unique(order[::-1], return_index=True)
        last[len(order) - 1 - from_end] = True
    buy = kinds[order] == 0 if len(order) else np.zeros(0, dtype=bool)
    frame = pl.DataFrame({
        "order_id": pl.Series(order_ids, dtype=pl.String).gather(order) if len(order) else pl.Series([], dtype=pl.String),
        "symbol": pl.Series(names, dtype=pl.String).gather(syms[order]) if len(order) else pl.Series([], dtype=pl.String),
        "side": np.where(buy, Side.BUY.value, Side.SELL.value) if len(order) else pl.Series([], dtype=pl.String),
        "ts": ts, "qty": qty, "price": price,
        "commission": np.where(last, commission[order], 0.0) if len(order) else np.zeros(0),
        "fees": np.where(last, fees[order], 0.0) if len(order) else np.zeros(0),
        "slippage": np.abs(price - reference) * qty,
    }, schema={**FILLS_SCHEMA, "ts": pl.Int64()})
    return conform(frame, FILLS_SCHEMA)
