"""PROTOTYPE, not tapeflow: what a vectorised market-order path in `tapeflow.sim.engine.simulate`
could cost, measured on the benchmark's data. It exists to back a proposal with numbers;
tapeflow does not use it.

Eligible when every signal is a market order (DAY or GTC) with a fixed qty and the config
has no stop loss, no daily loss limit, no buying-power check, no participation cap, no
tick rounding and no small-cap slippage: then every order fills whole at the open of the
first bar starting at or after its decision, and the engine's state machine (enter only
flat and idle, an exit sells what is held or cancels a working entry) is a tight loop over
integers per symbol instead of ~40 us of objects, heaps and searches per signal. Fills,
round trips and the equity curve come out of numpy arrays. The calendar, sessions and ADV
(`split_by_symbol`) are not needed on this path, so neither is importing exchange_calendars.

    .venv/bin/python bench/sma_cross/fastpath_prototype.py once A   # fresh process, like run_tapeflow once
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from common import (CASH_PER_SYMBOL, FAST, MINIMUM, PER_SHARE, QTY, SLOW, VARIANTS, Outcome, bar_length,  # noqa: E402
                    fill_frame, load, peak_rss_mb)
from strategies.sma_cross import SmaCross  # noqa: E402
from tapeflow.sim.history import History  # noqa: E402

_T_IMPORTED = time.perf_counter()


def _state_loop(s_sym, s_at, s_enter, s_qty, first, sym_end, ts):
    """The general case: the engine's state machine over plain ints and floats."""
    fill_sig, fill_side = [], []
    outcome = []
    prev_sym, held, pend_ts, pend_qty, pend_k = None, 0.0, -1, 0.0, -1
    for k in range(len(s_sym)):
        if s_sym[k] != prev_sym:
            prev_sym, held, pend_ts, pend_k = s_sym[k], 0.0, -1, -1
        at = s_at[k]
        if pend_k >= 0 and pend_ts < at:  # its fill happened strictly before this decision
            held += pend_qty
            pend_k = -1
        if s_enter[k]:
            if held != 0 or pend_k >= 0:
                outcome.append("ignored: already in a position or an order is working")
                continue
            qty = s_qty[k]
        else:
            if held == 0 and pend_k < 0:
                outcome.append("ignored: nothing to exit")
                continue
            if pend_k >= 0:  # cancel the working order (it has not filled yet)
                fill_sig.pop(), fill_side.pop()
                outcome[pend_k] = "placed: never filled"
                pend_k = -1
            if held <= 0:
                outcome.append("cancelled the working entry")
                continue
            qty = -held
        if first[k] >= sym_end[k]:
            outcome.append("placed: never filled")
            continue
        outcome.append("placed")
        fill_sig.append(k)
        fill_side.append(1.0 if qty > 0 else -1.0)
        pend_ts, pend_qty, pend_k = ts[first[k]], qty, len(outcome) - 1

    return np.asarray(fill_sig, dtype=np.int64), np.asarray(fill_side), outcome


def simulate_market(bars: pl.DataFrame, signals: pl.DataFrame, cash: float, *, per_share: float, minimum: float,
                    per_order: float = 0.0, slip: float = 0.0) -> dict:
    """bars: History.bars (sorted by symbol, ts); signals: SIGNAL_SCHEMA, market orders, fixed qty."""
    sym = bars["symbol"]
    ts = bars["ts"].dt.epoch("us").to_numpy()
    end = bars["end_ts"].dt.epoch("us").to_numpy()
    opens, closes = bars["open"].to_numpy(), bars["close"].to_numpy()
    counts = sym.rle()  # runs of one symbol (bars are sorted by symbol)
    names = counts.struct.field("value").to_list()
    stops = np.cumsum(counts.struct.field("len").to_numpy())
    starts = stops - counts.struct.field("len").to_numpy()
    bounds = {s: (int(a), int(b)) for s, a, b in zip(names, starts, stops)}

    sig = signals.sort("symbol", "at", maintain_order=True)
    s_sym = sig["symbol"].to_list()
    s_at = sig["at"].dt.epoch("us").to_numpy()
    s_enter = (sig["action"] == "enter").to_numpy()
    s_qty = sig["qty"].to_numpy()
    first = np.empty(len(sig), dtype=np.int64)
    sym_end = np.empty(len(sig), dtype=np.int64)
    runs = sig["symbol"].rle()
    s_stops = np.cumsum(runs.struct.field("len").to_numpy())
    for s, hi, n in zip(runs.struct.field("value").to_list(), s_stops, runs.struct.field("len").to_list()):
        a, b = bounds[s]  # this symbol's bars; its signals are sig[hi - n:hi]
        first[hi - n:hi] = a + np.searchsorted(ts[a:b], s_at[hi - n:hi], side="left")
        sym_end[hi - n:hi] = b

    codes = np.repeat(np.arange(len(s_stops)), runs.struct.field("len").to_numpy())
    fill_ts = ts[np.minimum(first, len(ts) - 1)]
    same = codes[1:] == codes[:-1]
    if not np.any(same & (first[:-1] < sym_end[:-1]) & (fill_ts[:-1] >= s_at[1:])):
        # Every fill lands before the symbol's next decision (the usual case): the position
        # flips exactly where the action changes, leading exits ignored. No Python loop.
        changed = np.concatenate([[True], ~same | (s_enter[1:] != s_enter[:-1])])
        starts_sym = np.concatenate([[True], ~same])
        keep = changed & ~(starts_sym & ~s_enter) if len(sig) else np.zeros(0, bool)
        # a leading exit makes the next enter "changed" too: drop exits before the first enter
        first_enter = np.maximum.accumulate(np.where(s_enter, np.arange(len(sig)), -1)) if len(sig) else keep
        seen = first_enter >= np.repeat(s_stops - runs.struct.field("len").to_numpy(), runs.struct.field("len").to_numpy())
        keep &= seen
        placed = keep & (first < sym_end)
        ks = np.flatnonzero(placed)
        fill_side = np.where(s_enter[ks], 1.0, -1.0)
        outcome = np.where(placed, "placed", np.where(keep, "placed: never filled", np.where(
            s_enter, "ignored: already in a position or an order is working", "ignored: nothing to exit"))).tolist()
    else:
        ks, fill_side, outcome = _state_loop(s_sym, s_at, s_enter, s_qty, first, sym_end, ts)

    side = np.asarray(fill_side)
    bar = first[ks]
    qty = np.where(side > 0, s_qty[ks], 0.0)
    # exit quantities: what the matching entry bought (entries and exits alternate per symbol)
    qty = np.where(side > 0, qty, np.roll(qty, 1))
    reference = opens[bar]
    price = reference * (1 + side * slip)
    commission = np.maximum(per_share * qty + per_order, minimum)
    f_sym = np.asarray(s_sym, dtype=object)[ks]
    fills = pl.DataFrame({
        "symbol": pl.Series(f_sym.tolist(), dtype=pl.String),
        "side": np.where(side > 0, "buy", "sell"), "ts": ts[bar], "qty": qty, "price": price,
        "commission": commission, "fees": np.zeros(len(ks)), "slippage": np.abs(price - reference) * qty,
    }).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))

    # Equity at every bar end: cash flows by fill time, positions per symbol marked at its closes.
    lens = stops - starts
    if np.all(lens == lens[0]) and np.array_equal(end.reshape(len(lens), lens[0]).min(0), end.reshape(len(lens), lens[0]).max(0)):
        timeline = end[: lens[0]]  # every symbol on one clock
    else:
        timeline = np.unique(end)
    order = np.argsort(ts[bar], kind="stable")
    flow = (-side * qty * price - commission)[order]
    cash_curve = cash + np.concatenate([[0.0], np.cumsum(flow)])[np.searchsorted(ts[bar][order], timeline, "right")]
    value = np.zeros(len(timeline))
    f_runs = pl.Series(f_sym.tolist(), dtype=pl.String).rle() if len(ks) else None
    f_stops = np.cumsum(f_runs.struct.field("len").to_numpy()) if len(ks) else []
    for s, hi, n in zip(f_runs.struct.field("value").to_list() if len(ks) else [], f_stops,
                        f_runs.struct.field("len").to_list() if len(ks) else []):
        a, b = bounds[s]  # fills are in (symbol, time) order: this symbol's are [hi - n, hi)
        f_ts, f_q = ts[bar][hi - n:hi], (side * qty)[hi - n:hi]
        held_curve = np.concatenate([[0.0], np.cumsum(f_q)])[np.searchsorted(f_ts, timeline, "right")]
        last = np.searchsorted(end[a:b], timeline, side="right") - 1
        value += held_curve * np.where(last >= 0, closes[a:b][np.maximum(last, 0)], 0.0)
    equity = cash_curve + value
    return {"fills": fills, "equity": equity, "outcomes": outcome}


def backtest(bars: pl.DataFrame, bps: int) -> Outcome:
    history = History(bars)
    signals = SmaCross(fast=FAST, slow=SLOW, qty=QTY).signals(history)
    n = history.bars["symbol"].n_unique()
    out = simulate_market(history.bars, signals, CASH_PER_SYMBOL * n, per_share=PER_SHARE, minimum=MINIMUM,
                          slip=bps / 10_000)
    fills = out["fills"].select("symbol", pl.col("ts").dt.epoch("us"), "side", "qty", "price")
    return Outcome(fill_frame(fills), float(out["equity"][-1]))


def main() -> None:
    mode, name = sys.argv[1], sys.argv[2]
    variant = sys.argv[3] if len(sys.argv) > 3 else "s0"
    t_load = time.perf_counter()
    bars = load(name).with_columns(pl.col("ts").dt.offset_by(bar_length(name)).alias("end_ts"))
    t_loaded = time.perf_counter()
    if mode == "once":
        outcome = backtest(bars, VARIANTS[variant])
        t_done = time.perf_counter()
        print(json.dumps({"engine": "prototype", "imports_s": _T_IMPORTED - _T0, "load_s": t_loaded - t_load,
                          "backtest_s": t_done - t_loaded, "in_process_s": t_done - _T0,
                          "imported_exchange_calendars": "exchange_calendars" in sys.modules,
                          "peak_rss_mb": peak_rss_mb(), **outcome.summary()}))
    elif mode == "warm":
        times = []
        for _ in range(6):
            start = time.perf_counter()
            outcome = backtest(bars, VARIANTS[variant])
            times.append(time.perf_counter() - start)
        print(json.dumps({"engine": "prototype", "warm_s": times[1:], "warm_median_s": sorted(times[1:])[2],
                          **outcome.summary()}))
    else:  # agree OUT_STEM
        outcome = backtest(bars, VARIANTS[variant])
        outcome.save(Path(sys.argv[4]))
        print(json.dumps(outcome.summary()))


if __name__ == "__main__":
    main()
