"""The benchmark's datasets, written to bench/data/ (gitignored) at run time.

SMA_CROSS_RULES.md fixes the bar semantics and the 1/128 price grid of the synthetic shapes
but not how their prices move, so this file states it (deterministic, numpy PCG64 seeds):

* A: one symbol, 1,000,000 one-minute bars: 390 bars a day (09:30 ... 15:59 New York) on
  consecutive weekdays from 2010-01-04 (holidays are not skipped: bars are used as given).
* B: 100 symbols x 39,000 one-minute bars (100 weekdays x 390 from 2020-01-02), same clock
  for every symbol, start prices $10-$300 drawn per symbol.
* C: one symbol, 10,000 daily bars (weekdays from 1985-01-01, ts = the date at 00:00 UTC),
  moves in 1/16-dollar steps so that SMA ties happen on daily bars too.
* SP: the real S&P 500 index from `arch` 8.0.0 (shared/data/daily/arch_8.0.0/sp500.csv.gz,
  5,031 sessions 1999-01-04 ... 2018-12-31), open/high/low/close rounded to cents (half-even
  on the file's decimal text), ts = the date at 00:00 UTC, symbol "SPX".

Synthetic prices are integer numbers of ticks (1 tick = $1/128): each bar opens at the
previous close plus a gap (within a day: -1/0/+1 tick; across a night: a rounded normal) and
closes a few ticks away from its open; the walk is folded back into a price band so that it
stays positive and under $460 (rules §6). High and low extend max/min(open, close) by a
geometric number of ticks. Minute moves are small and often zero, so exact SMA ties
(3 x sum10 == sum30) are frequent, which is what rules §3 and §7 are about.

    .venv/bin/python bench/sma_cross/datagen.py [--only A,B]
"""

from __future__ import annotations

import argparse
import gzip
import io
import time
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import numpy as np
import polars as pl
from common import DATA, DATASETS, data_path

TICKS = 128  # ticks per dollar
SEED = 20261124
SP_SOURCE = Path(__file__).resolve().parents[3] / "shared" / "data" / "daily" / "arch_8.0.0" / "sp500.csv.gz"
MINUTES_PER_DAY = 390


def _fold(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Reflect an integer path into [lo, hi] (keeps every value on the grid)."""
    period = 2 * (hi - lo)
    y = np.mod(x - lo, period)
    return lo + np.where(y <= hi - lo, y, period - y)


def _walk(rng: np.random.Generator, n: int, start: int, lo: int, hi: int, *, minute: bool) -> dict[str, np.ndarray]:
    """open/high/low/close in ticks (int64) for n bars."""
    if minute:
        move = rng.choice(np.arange(-3, 4), size=n, p=[0.05, 0.10, 0.15, 0.40, 0.15, 0.10, 0.05])
        gap = rng.choice(np.array([-1, 0, 1]), size=n, p=[0.1, 0.8, 0.1])
        day_start = (np.arange(n) % MINUTES_PER_DAY) == 0
        gap[day_start] = np.rint(rng.normal(0.0, 16.0, size=int(day_start.sum()))).astype(np.int64)
    else:
        move = 8 * np.rint(rng.normal(0.0, 6.0, size=n)).astype(np.int64)  # $1/16 steps
        gap = 8 * np.rint(rng.normal(0.0, 2.0, size=n)).astype(np.int64)
    gap[0] = 0
    close_raw = start + np.cumsum(gap + move)
    open_raw = close_raw - move
    o, c = _fold(open_raw, lo, hi), _fold(close_raw, lo, hi)
    up = rng.geometric(0.6, size=n) - 1
    down = rng.geometric(0.6, size=n) - 1
    if not minute:
        up, down = 8 * up, 8 * down
    h = np.maximum(o, c) + up
    low = np.maximum(np.minimum(o, c) - down, 1)
    return {"open": o, "high": h, "low": low, "close": c}


def _minute_clock(first_day: str, n: int) -> pl.Series:
    """n one-minute bar starts, 390 a day from 09:30 New York on consecutive weekdays, as UTC."""
    days = np.busday_offset(first_day, np.arange(-(-n // MINUTES_PER_DAY)), roll="forward")
    k = np.arange(n)
    local = days[k // MINUTES_PER_DAY].astype("datetime64[m]") + np.timedelta64(570, "m") + (k % MINUTES_PER_DAY).astype(
        "timedelta64[m]")
    return (pl.Series("ts", local.astype("datetime64[us]")).dt.replace_time_zone("America/New_York")
            .dt.convert_time_zone("UTC"))


def _daily_clock(first_day: str, n: int) -> pl.Series:
    days = np.busday_offset(first_day, np.arange(n), roll="forward")
    return pl.Series("ts", days.astype("datetime64[us]")).dt.replace_time_zone("UTC")


def _frame(symbol: str, ts: pl.Series, ticks: dict[str, np.ndarray], volume: np.ndarray) -> pl.DataFrame:
    cols = {k: v.astype(np.float64) / TICKS for k, v in ticks.items()}  # exact: k / 2**7
    return pl.DataFrame({"symbol": pl.Series([symbol] * len(ts), dtype=pl.String), "ts": ts, **cols,
                         "volume": volume.astype(np.float64)})


def synthetic_minute(n_symbols: int, n_bars: int, *, shape: int = 0, first_day: str = "2010-01-04",
                     start_dollars: float | None = None) -> pl.DataFrame:
    """n_symbols x n_bars one-minute bars on the 1/128 grid (shape A: 1 x 1,000,000; B: 100 x 39,000)."""
    ts = _minute_clock(first_day, n_bars)
    frames = []
    for i in range(n_symbols):
        rng = np.random.default_rng([SEED, shape, i])
        start = int(round((start_dollars if start_dollars is not None else rng.uniform(10, 300)) * TICKS))
        ticks = _walk(rng, n_bars, start, 2 * TICKS, 440 * TICKS, minute=True)
        name = f"S{shape}{i:03d}" if n_symbols > 1 else f"SYN{shape}"
        frames.append(_frame(name, ts, ticks, rng.integers(100, 10_000, size=n_bars)))
    return pl.concat(frames)


def synthetic_daily(n_bars: int, *, shape: int = 2) -> pl.DataFrame:
    rng = np.random.default_rng([SEED, shape, 0])
    ticks = _walk(rng, n_bars, 50 * TICKS, 5 * TICKS, 450 * TICKS, minute=False)
    return _frame(f"SYN{shape}", _daily_clock("1985-01-01", n_bars), ticks, rng.integers(10**5, 10**7, size=n_bars))


def _cents(text: str) -> float:
    return float(Decimal(text).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN))


def sp500(path: Path = SP_SOURCE) -> pl.DataFrame:
    """The arch S&P 500 daily file, prices rounded to cents (rules §1)."""
    raw = pl.read_csv(io.BytesIO(gzip.decompress(path.read_bytes())), infer_schema=False)
    prices = {c.lower(): pl.Series([_cents(v) for v in raw[c].to_list()], dtype=pl.Float64)
              for c in ("Open", "High", "Low", "Close")}
    ts = raw["Date"].str.to_date("%m/%d/%Y").cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    return pl.DataFrame({"symbol": ["SPX"] * raw.height, "ts": ts, **prices,
                         "volume": raw["Volume"].cast(pl.Float64)}).sort("ts")


BUILDERS = {
    "A": lambda: synthetic_minute(1, 1_000_000, shape=0, first_day="2010-01-04", start_dollars=100.0),
    "B": lambda: synthetic_minute(100, 39_000, shape=1, first_day="2020-01-02"),
    "C": lambda: synthetic_daily(10_000, shape=2),
    "SP": sp500,
}


def ensure(names=tuple(DATASETS), force: bool = False) -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = data_path(name)
        if path.exists() and not force:
            continue
        start = time.perf_counter()
        frame = BUILDERS[name]().sort("symbol", "ts")
        frame.write_parquet(path)
        print(f"wrote {path.name}: {frame.height:,} bars, {frame['symbol'].n_unique()} symbols "
              f"({time.perf_counter() - start:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(DATASETS))
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    ensure(args.only.split(","), args.force)


if __name__ == "__main__":
    main()
