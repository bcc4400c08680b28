"""The exact reference: SMA_CROSS_RULES.md §2-§6 in rational arithmetic.

`pure` is the reference of record: a bar-by-bar loop over `fractions.Fraction` prices (each
float's shortest decimal text, so $1228.1 is 12281/10 and $100.0078125 is 12801/128), the
SMAs and the cash exact, no float anywhere until the fill list is written out. It is slow
(about 10 us a bar) but fine for every dataset here.

`grid` is the same rules vectorised on an integer price grid (every price x 3,200, the least
common multiple of 128 and 100, must be an integer): SMA comparisons as int64 sign tests,
then the same exact order/cash loop over the signal bars only. `check` runs both and
insists they are identical, so either can serve as the reference.

    .venv/bin/python bench/sma_cross/reference.py [--data A,B,C,SP]
"""

from __future__ import annotations

import argparse
import time
from fractions import Fraction

import numpy as np
import polars as pl
from common import (
    CASH_PER_SYMBOL,
    DATASETS,
    FAST,
    MINIMUM,
    PER_SHARE,
    QTY,
    SLOW,
    VARIANTS,
    fill_frame,
    load,
)

GRID = 3_200  # lcm(128, 100): 1/128-dollar and cent prices are integers on it
_COMMISSION = max(Fraction(str(PER_SHARE)) * QTY, Fraction(str(MINIMUM)))  # max(0.005 x 100, 1.00) = $1


def _exact(x: float) -> Fraction:
    return Fraction(repr(float(x)))


def _slip(bps: int) -> Fraction:
    return Fraction(bps, 10_000)


def _symbols(bars: pl.DataFrame):
    bars = bars.sort("symbol", "ts")
    for (symbol,), frame in bars.partition_by("symbol", as_dict=True, maintain_order=True).items():
        yield symbol, frame["ts"].dt.epoch("us").to_list(), frame["open"].to_numpy(), frame["close"].to_numpy()


def _account(symbol, ts, opens, last_close, signals, s: Fraction):
    """Rules §4-§5 for one symbol: `signals` yields (t, 'up'|'down') in bar order; fills at
    bar t+1's open. Returns (fill rows, exact final equity)."""
    cash, pos, fills = Fraction(int(CASH_PER_SYMBOL)), 0, []
    n = len(ts)
    pending = None  # (bar index it fills on, side)
    for t, kind in signals:
        # (Orders fill at the open after their signal; the next signal is at a later close.)
        if pending is not None and pending[0] <= t:
            cash, pos = _fill(fills, symbol, ts, opens, pending, cash, pos, s)
            pending = None
        if t + 1 >= n:
            continue  # a signal on the last bar has no next open (§4)
        if pos == 0 and kind == "up":
            pending = (t + 1, "buy")
        elif pos == QTY and kind == "down":
            pending = (t + 1, "sell")
    if pending is not None:
        cash, pos = _fill(fills, symbol, ts, opens, pending, cash, pos, s)
    return fills, cash + pos * last_close


def _fill(fills, symbol, ts, opens, pending, cash, pos, s):
    i, side = pending
    o = _exact(opens[i])
    if side == "buy":
        price = o * (1 + s)
        cash -= QTY * price + _COMMISSION
        pos += QTY
    else:
        price = o * (1 - s)
        cash += QTY * price - _COMMISSION
        pos -= QTY
    fills.append((symbol, ts[i], side, float(QTY), price))
    return cash, pos


def pure(bars: pl.DataFrame, bps: int) -> tuple[list[tuple], Fraction]:
    """Fills (symbol, ts_us, side, qty, exact price) and the exact total final equity."""
    s = _slip(bps)
    all_fills, equity = [], Fraction(0)
    cache: dict[float, Fraction] = {}
    for symbol, ts, opens, closes in _symbols(bars):
        c = [cache.setdefault(x, _exact(x)) for x in closes.tolist()]
        fast: list[Fraction | None] = [None] * len(c)
        slow: list[Fraction | None] = [None] * len(c)
        s_fast = s_slow = Fraction(0)
        for t, x in enumerate(c):
            s_fast += x
            s_slow += x
            if t >= FAST:
                s_fast -= c[t - FAST]
            if t >= SLOW:
                s_slow -= c[t - SLOW]
            if t >= FAST - 1:
                fast[t] = s_fast / FAST  # §2: (close[t-9] + ... + close[t]) / 10
            if t >= SLOW - 1:
                slow[t] = s_slow / SLOW

        def signals(c=c, fast=fast, slow=slow):  # bound now: the generator runs after the loop moves on
            for t in range(SLOW, len(c)):  # §3: t >= 30
                if fast[t] > slow[t] and fast[t - 1] <= slow[t - 1]:
                    yield t, "up"
                elif fast[t] < slow[t] and fast[t - 1] >= slow[t - 1]:
                    yield t, "down"

        fills, eq = _account(symbol, ts, opens, c[-1], signals(), s)
        all_fills += fills
        equity += eq
    return all_fills, equity


def grid(bars: pl.DataFrame, bps: int) -> tuple[list[tuple], Fraction]:
    """The same on the integer grid, vectorised; raises if a price is off the grid."""
    s = _slip(bps)
    all_fills, equity = [], Fraction(0)
    for symbol, ts, opens, closes in _symbols(bars):
        scaled = closes * GRID
        ints = np.rint(scaled).astype(np.int64)
        if not np.all(np.abs(scaled - ints) < 1e-6 * GRID):
            raise ValueError(f"{symbol}: closes are not on the 1/{GRID} grid")
        csum = np.concatenate([[0], np.cumsum(ints)])
        t = np.arange(len(ints))
        d = np.zeros(len(ints), dtype=np.int64)  # sign of fast - slow  <=>  3 x sum10 - sum30
        ok = t >= SLOW - 1
        d[ok] = 3 * (csum[t[ok] + 1] - csum[t[ok] + 1 - FAST]) - (csum[t[ok] + 1] - csum[t[ok] + 1 - SLOW])
        prev = np.concatenate([[0], d[:-1]])
        valid = t >= SLOW
        up = valid & (d > 0) & (prev <= 0)
        down = valid & (d < 0) & (prev >= 0)
        marks = np.flatnonzero(up | down)
        signals = ((int(i), "up" if up[i] else "down") for i in marks)
        fills, eq = _account(symbol, ts, opens, Fraction(int(ints[-1]), GRID), signals, s)
        all_fills += fills
        equity += eq
    return all_fills, equity


def tie_stats(bars: pl.DataFrame) -> dict[str, int]:
    """How often the tie rule matters: bars with fast == slow exactly, and up/down signals
    whose previous bar was a tie (they exist only because a tie counts as 'not above/below')."""
    ties = after_tie = 0
    for _, _, _, closes in _symbols(bars):
        ints = np.rint(closes * GRID).astype(np.int64)
        csum = np.concatenate([[0], np.cumsum(ints)])
        t = np.arange(SLOW - 1, len(ints))
        d = 3 * (csum[t + 1] - csum[t + 1 - FAST]) - (csum[t + 1] - csum[t + 1 - SLOW])
        ties += int((d == 0).sum())
        after_tie += int(((d[1:] != 0) & (d[:-1] == 0)).sum())
    return {"tie_bars": ties, "signals_after_tie": after_tie}


def as_frame(fills: list[tuple]) -> pl.DataFrame:
    return fill_frame([(sym, ts, side, qty, float(price)) for sym, ts, side, qty, price in fills])


def check(bars: pl.DataFrame, bps: int) -> tuple[pl.DataFrame, Fraction, dict]:
    """Both implementations; they must be identical (exact prices, exact equity)."""
    t0 = time.perf_counter()
    p_fills, p_eq = pure(bars, bps)
    t1 = time.perf_counter()
    g_fills, g_eq = grid(bars, bps)
    t2 = time.perf_counter()
    if p_fills != g_fills or p_eq != g_eq:
        raise AssertionError(f"pure and grid references differ: {len(p_fills)} vs {len(g_fills)} fills, "
                             f"equity {float(p_eq)} vs {float(g_eq)}")
    return as_frame(p_fills), p_eq, {"pure_s": t1 - t0, "grid_s": t2 - t1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=",".join(DATASETS))
    args = parser.parse_args()
    for name in args.data.split(","):
        bars = load(name)
        for variant, bps in VARIANTS.items():
            fills, eq, took = check(bars, bps)
            print(f"{name} {variant}: {fills.height} fills, {(fills['side'] == 'sell').sum()} round trips, "
                  f"final equity {float(eq):,.6f}  (pure {took['pure_s']:.1f} s, grid {took['grid_s']:.2f} s)")


if __name__ == "__main__":
    main()
