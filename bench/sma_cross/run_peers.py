"""The peers of the SMA-crossover benchmark, configured to follow SMA_CROSS_RULES.md.
Runs in the bench-only venv (bench/.venv-peers: vectorbt 1.2.0, backtrader 1.9.78.123):

    bench/.venv-peers/bin/python bench/sma_cross/run_peers.py {vbt,bt} {once,warm,agree} DATA [s0|s10] [OUT_STEM]

vectorbt: SMAs from `vbt.MA` (rolling mean, cumulative-sum form), the §3 signals written
out as boolean array ops (vectorbt's own `crossed_above` starts "not below" and so misses
an up right after a leading tie), shifted one bar later and filled by
`Portfolio.from_signals` at `price=open`, size 100 (amount), `fixed_fees=1.0` (= max(0.005 x
100, 1.00): every order is 100 shares), `slippage=s`, long only, 1,000,000 initial cash per
column; one column per symbol (shape B: 100 columns on one clock, each its own portfolio).
The backtest starts from the wide pandas frames in memory and ends with the order records
and the summed final value.

backtrader: one Cerebro per symbol (its own 1,000,000 broker, rules §6), PandasData feed,
`bt.ind.SMA` (math.fsum over the window), the §3 tests in `next()` with the position at that
bar, market orders (filled at the next bar's open), a CommInfo with
max(0.005 x |size|, 1.00), percentage slippage on opens, not capped at the bar's range
(`slip_out=True`). Preloaded, runonce, no observers. Final equity: broker value at the end.

`--orders stop` (issue 20's realistic orders, beside tapeflow's 2% stop, liquidity slippage and
10% volume cap; neither peer has a square-root impact model, so slippage stays s):
* backtrader: once an entry has filled completely, a GTC sell `bt.Order.Stop` for the position
  at 0.98 x the entry's average fill, rounded down to the cent (tapeflow's policy: the stop is
  placed when the entry stops working, on the tick against the trader); an exit cancels the
  working entry and stop and sells the position at market; fills capped at 10% of each bar's
  volume by `bt.fillers.FixedBarPerc(perc=10)` (the rest of an order carries to later bars).
  backtrader checks a stop from the bar after it is placed: on a trigger it fills at the stop
  price, or at the open when the bar opens through it.
* vectorbt: `from_signals(..., sl_stop=0.02, stop_entry_price="fillprice",
  stop_exit_price="stoplimit", high=, low=)`: the stop is 2% under the entry's fill price, not
  rounded to a tick, checked from the bar after the entry's fill, filled at the stop price or
  the open when the bar opens through it, without slippage. No volume cap (vectorbt has none).
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from common import (  # noqa: E402
    CASH_PER_SYMBOL,
    FAST,
    MINIMUM,
    PER_SHARE,
    QTY,
    SLOW,
    VARIANTS,
    Outcome,
    bar_length,
    fill_frame,
    load,
    peak_rss_mb,
)

STOP_LOSS = 0.02  # --orders stop: as run_user.py's realistic configuration
PARTICIPATION = 0.10

# ---------------------------------------------------------------- vectorbt

class Wide:
    """Bars as wide pandas frames (one column per symbol) on one shared clock."""

    def __init__(self, bars: pl.DataFrame) -> None:
        import pandas as pd

        symbols = bars["symbol"].unique(maintain_order=True).to_list()
        clock = bars.filter(pl.col("symbol") == symbols[0])["ts"]
        per = bars.group_by("symbol").agg(pl.len().alias("n"), pl.col("ts").sort().alias("ts"))
        if per["n"].n_unique() != 1 or any(not s.equals(clock) for s in per["ts"]):
            raise ValueError("vectorbt runner: every symbol must have the same bar clock")
        self.symbols = symbols
        self.ts_us = clock.dt.epoch("us").to_numpy()
        # tz-naive UTC: vectorbt's shape checks np.asarray() the index, which on a tz-aware
        # pandas index builds one Timestamp object per bar (about 7 s on 1M bars).
        index = pd.DatetimeIndex(clock.dt.replace_time_zone(None).to_pandas())
        n = len(clock)
        frame = bars.sort("symbol", "ts")
        col = {s: i for i, s in enumerate(sorted(symbols))}
        order = [col[s] for s in symbols]

        def wide(name: str) -> pd.DataFrame:
            values = frame[name].to_numpy().reshape(len(symbols), n)[order].T.copy()
            return pd.DataFrame(values, index=index, columns=symbols)

        self.open, self.close = wide("open"), wide("close")
        self.high, self.low = wide("high"), wide("low")
        self.freq = "1min" if bar_length_global == "1m" else "1D"


bar_length_global = "1m"


def vbt_backtest(w: Wide, bps: int, orders: str = "market") -> Outcome:
    import vectorbt as vbt

    fast = vbt.MA.run(w.close, FAST).ma.to_numpy()
    slow = vbt.MA.run(w.close, SLOW).ma.to_numpy()
    n = fast.shape[0]
    valid = (np.arange(n) >= SLOW)[:, None]  # §3: t >= 30
    prev_fast = np.vstack([np.full((1, fast.shape[1]), np.nan), fast[:-1]])
    prev_slow = np.vstack([np.full((1, slow.shape[1]), np.nan), slow[:-1]])
    up = valid & (fast > slow) & (prev_fast <= prev_slow)
    down = valid & (fast < slow) & (prev_fast >= prev_slow)
    # Decided at bar t's close, executed at bar t+1's open: shift one bar later; a signal on
    # the last bar falls off the end (§4).
    entries = np.zeros_like(up)
    exits = np.zeros_like(down)
    entries[1:], exits[1:] = up[:-1], down[:-1]
    stops = {} if orders == "market" else {
        "sl_stop": STOP_LOSS, "stop_entry_price": "fillprice", "stop_exit_price": "stoplimit",
        "open": w.open, "high": w.high, "low": w.low}
    pf = vbt.Portfolio.from_signals(
        w.close, entries, exits, price=w.open, size=QTY, size_type="amount", fees=0.0,
        fixed_fees=max(PER_SHARE * QTY, MINIMUM), slippage=bps / 10_000, init_cash=CASH_PER_SYMBOL,
        direction="longonly", accumulate=False, freq=w.freq, **stops,
    )
    rec = pf.orders.values
    fills = pl.DataFrame({
        "symbol": np.asarray(w.symbols, dtype=object)[rec["col"]].tolist(),
        "ts": w.ts_us[rec["idx"]],
        "side": np.where(rec["side"] == 0, "buy", "sell"),
        "qty": rec["size"].astype(np.float64),
        "price": rec["price"],
    })
    return Outcome(fill_frame(fills), float(np.sum(pf.final_value().to_numpy())))


# ---------------------------------------------------------------- backtrader

def _bt_classes():
    import backtrader as bt

    class RulesCommission(bt.CommInfoBase):
        params = (("stocklike", True), ("commtype", bt.CommInfoBase.COMM_FIXED))

        def _getcommission(self, size, price, pseudoexec):
            return max(PER_SHARE * abs(size), MINIMUM)

    class SmaCrossRules(bt.Strategy):
        def __init__(self):
            self.fast = bt.ind.SMA(self.data.close, period=FAST)
            self.slow = bt.ind.SMA(self.data.close, period=SLOW)
            self.fills = []  # (bar index, side, size, price)

        def notify_order(self, order):
            if order.status == order.Completed:
                self.fills.append((len(self.data) - 1, "buy" if order.isbuy() else "sell",
                                   abs(order.executed.size), order.executed.price))

        def next(self):
            if len(self.data) <= SLOW:  # bar t = len - 1 must be >= 30
                return
            f, s, f1, s1 = self.fast[0], self.slow[0], self.fast[-1], self.slow[-1]
            pos = self.position.size
            if pos == 0 and f > s and f1 <= s1:
                self.buy(size=QTY)
            elif pos == QTY and f < s and f1 >= s1:
                self.sell(size=QTY)

    class SmaCrossStop(SmaCrossRules):
        """The same rules with a protective stop under each entry (`--orders stop`)."""

        def __init__(self):
            super().__init__()
            self.entry_order = None  # the working buy
            self.stop_order = None  # the working protective stop
            self.done = {}  # order ref -> shares filled so far

        def notify_order(self, order):
            if order.status in (order.Partial, order.Completed):  # one row per bar's fill: what it added
                done = abs(order.executed.size)
                self.fills.append((len(self.data) - 1, "buy" if order.isbuy() else "sell",
                                   done - self.done.get(order.ref, 0.0), order.executed.price))
                self.done[order.ref] = done
            if order.status in (order.Completed, order.Canceled, order.Margin, order.Rejected, order.Expired):
                # backtrader notifies a clone of the order: match by ref
                if self.entry_order is not None and order.ref == self.entry_order.ref:
                    self.entry_order = None
                    if order.status == order.Completed and self.position.size > 0:
                        price = math.floor(order.executed.price * (1 - STOP_LOSS) * 100 + 1e-9) / 100
                        self.stop_order = self.sell(size=self.position.size, exectype=bt.Order.Stop, price=price)
                elif self.stop_order is not None and order.ref == self.stop_order.ref:
                    self.stop_order = None

        def next(self):
            if len(self.data) <= SLOW:
                return
            f, s, f1, s1 = self.fast[0], self.slow[0], self.fast[-1], self.slow[-1]
            pos = self.position.size
            if pos == 0 and self.entry_order is None and f > s and f1 <= s1:
                self.entry_order = self.buy(size=QTY)
            elif (pos > 0 or self.entry_order is not None) and f < s and f1 >= s1:
                for working in (self.entry_order, self.stop_order):
                    if working is not None:
                        self.cancel(working)
                self.entry_order = self.stop_order = None
                if pos > 0:
                    self.sell(size=pos)

    return bt, RulesCommission, SmaCrossRules, SmaCrossStop


class Tall:
    """Per symbol: a naive-UTC pandas OHLCV frame and its bar starts in microseconds."""

    def __init__(self, bars: pl.DataFrame) -> None:
        self.parts = []
        for (symbol,), frame in bars.sort("symbol", "ts").partition_by("symbol", as_dict=True,
                                                                         maintain_order=True).items():
            pdf = frame.select(pl.col("ts").dt.replace_time_zone(None).alias("datetime"),
                               "open", "high", "low", "close", "volume").to_pandas().set_index("datetime")
            self.parts.append((symbol, frame["ts"].dt.epoch("us").to_numpy(), pdf))


def bt_backtest(t: Tall, bps: int, orders: str = "market") -> Outcome:
    bt, RulesCommission, SmaCrossRules, SmaCrossStop = _bt_classes()
    rows, equity = [], 0.0
    minute = bar_length_global == "1m"
    for symbol, ts_us, pdf in t.parts:
        cerebro = bt.Cerebro(stdstats=False, preload=True, runonce=True)
        kwargs = {"timeframe": bt.TimeFrame.Minutes, "compression": 1} if minute else {}
        cerebro.adddata(bt.feeds.PandasData(dataname=pdf, openinterest=None, **kwargs), name=symbol)
        cerebro.addstrategy(SmaCrossRules if orders == "market" else SmaCrossStop)
        if orders == "stop":
            cerebro.broker.set_filler(bt.fillers.FixedBarPerc(perc=100 * PARTICIPATION))
            # An order submitted with the margin check waits a cycle before `cancel` can reach it:
            # a stop placed on the entry's fill and cancelled by an exit on that same bar would
            # stay live and sell short. Cash never binds here (rules §5), so skip the check.
            cerebro.broker.set_checksubmit(False)
        cerebro.broker.setcash(CASH_PER_SYMBOL)
        cerebro.broker.addcommissioninfo(RulesCommission())
        if bps:
            cerebro.broker.set_slippage_perc(bps / 10_000, slip_open=True, slip_limit=True, slip_match=True,
                                             slip_out=True)
        (strat,) = cerebro.run()
        rows += [(symbol, int(ts_us[i]), side, float(q), float(p)) for i, side, q, p in strat.fills]
        equity += cerebro.broker.getvalue()
    return Outcome(fill_frame(rows), equity)


# ---------------------------------------------------------------- driver side

ENGINES = {"vbt": (Wide, vbt_backtest), "bt": (Tall, bt_backtest)}


def main() -> None:
    global bar_length_global
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("engine", choices=list(ENGINES))
    parser.add_argument("mode", choices=["once", "warm", "agree"])
    parser.add_argument("data")
    parser.add_argument("variant", nargs="?", default="s0", choices=list(VARIANTS))
    parser.add_argument("out", nargs="?")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--orders", choices=["market", "stop"], default="market")
    parser.add_argument("--head", type=int, help="each symbol's first HEAD bars only")
    args = parser.parse_args()
    bps = VARIANTS[args.variant]
    bar_length_global = bar_length(args.data)
    prepare, backtest = ENGINES[args.engine]

    def run(shaped, bps: int) -> Outcome:
        return backtest(shaped, bps, args.orders)

    if args.engine == "vbt":
        import vectorbt  # noqa: F401  (import cost counted in "once")
    else:
        import backtrader  # noqa: F401
    t_imported = time.perf_counter()
    shaped = prepare(load(args.data, args.head))
    t_loaded = time.perf_counter()

    if args.mode == "once":
        outcome = run(shaped, bps)
        t_done = time.perf_counter()
        print(json.dumps({"engine": args.engine, "data": args.data, "imports_s": t_imported - _T0,
                          "load_s": t_loaded - t_imported, "backtest_s": t_done - t_loaded,
                          "in_process_s": t_done - _T0, "peak_rss_mb": peak_rss_mb(), **outcome.summary()}))
    elif args.mode == "warm":
        times, outcome = [], None
        for _ in range(args.runs + 1):  # the first call compiles (vectorbt) or is the in-process cold one
            start = time.perf_counter()
            outcome = run(shaped, bps)
            times.append(time.perf_counter() - start)
        print(json.dumps({"engine": args.engine, "orders": args.orders, "data": args.data, "imports_s": t_imported - _T0,
                          "load_s": t_loaded - t_imported, "first_s": times[0], "warm_s": times[1:],
                          "warm_median_s": statistics.median(times[1:] or times), "peak_rss_mb": peak_rss_mb(),
                          **outcome.summary()}))
    else:
        outcome = run(shaped, bps)
        outcome.save(Path(args.out))
        print(json.dumps(outcome.summary()))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
