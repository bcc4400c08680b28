"""Shared by every runner of the SMA-crossover benchmark (tapeflow's venv and the peers' venv).

Only the standard library, numpy and polars: the peers' venv has no tapeflow.

The strategy and its accounting are fixed by shared/reference/bench/SMA_CROSS_RULES.md:
fast SMA 10, slow SMA 30, long-only 100 shares, market orders filled at the next bar's open
(slipped by `s`), commission max(0.005 x shares, 1.00), 1,000,000 starting cash per symbol,
an open position at the end is marked at the last close and not closed.

Every engine hands back the same two things: a fill frame (FILL_SCHEMA) and its own final
equity (the total over all symbols' portfolios).
"""

from __future__ import annotations

import json
import resource
from dataclasses import dataclass
from pathlib import Path

import polars as pl

BENCH = Path(__file__).resolve().parent
DATA = BENCH.parent / "data"  # bench/data, gitignored: generated at run time
RESULTS = BENCH.parent / "results"  # bench/results, gitignored

FAST, SLOW, QTY = 10, 30, 100
CASH_PER_SYMBOL = 1_000_000.0
PER_SHARE, MINIMUM = 0.005, 1.0
VARIANTS = {"s0": 0, "s10": 10}  # slippage in basis points (rules §4: s = 0 or 0.001)

# Datasets: name -> (file, bar length as a polars duration string)
DATASETS = {
    "A": ("A_minute_1x1M.parquet", "1m"),
    "B": ("B_minute_100x39k.parquet", "1m"),
    "C": ("C_daily_1x10k.parquet", "1d"),
    "SP": ("SP_daily_arch.parquet", "1d"),
}
TIMED = ("A", "B")  # the two the speed target names

FILL_SCHEMA = {"symbol": pl.String, "ts": pl.Int64, "side": pl.String, "qty": pl.Float64, "price": pl.Float64}


def data_path(name: str) -> Path:
    return DATA / DATASETS[name][0]


def bar_length(name: str) -> str:
    return DATASETS[name][1]


def load(name: str, head: int | None = None) -> pl.DataFrame:
    """symbol, ts (UTC, bar start), open, high, low, close, volume; sorted by symbol, ts; with
    `head`, each symbol's first `head` bars only (a run too slow for the whole file)."""
    bars = pl.read_parquet(data_path(name))
    return bars if head is None else bars.filter(pl.int_range(pl.len()).over("symbol") < head)


def fill_frame(rows_or_frame) -> pl.DataFrame:
    """Fills in FILL_SCHEMA (ts: int64 microseconds since the epoch, UTC), in (symbol, ts) order."""
    frame = rows_or_frame if isinstance(rows_or_frame, pl.DataFrame) else pl.DataFrame(
        rows_or_frame, schema=FILL_SCHEMA, orient="row")
    return frame.select(pl.col(c).cast(t) for c, t in FILL_SCHEMA.items()).sort("symbol", "ts", maintain_order=True)


@dataclass
class Outcome:
    fills: pl.DataFrame
    final_equity: float

    @property
    def round_trips(self) -> int:
        return int((self.fills["side"] == "sell").sum())

    def summary(self) -> dict:
        return {"fills": self.fills.height, "round_trips": self.round_trips, "final_equity": self.final_equity}

    def save(self, stem: Path) -> None:
        stem.parent.mkdir(parents=True, exist_ok=True)
        self.fills.write_parquet(stem.with_suffix(".fills.parquet"))
        stem.with_suffix(".json").write_text(json.dumps(self.summary()))

    @classmethod
    def read(cls, stem: Path) -> Outcome:
        summary = json.loads(stem.with_suffix(".json").read_text())
        return cls(pl.read_parquet(stem.with_suffix(".fills.parquet")), summary["final_equity"])


def compare(ref: pl.DataFrame, ref_equity, got: Outcome, price_tol: float = 1e-6, equity_tol: float = 0.005) -> dict:
    """Rules §8: same (symbol, ts, side, qty) fill by fill, prices within 1e-6, the engine's
    own final equity within $0.005 of the exact reference value. `ref_equity` may be a
    Fraction (exact) or a float."""
    a, b = fill_frame(ref), fill_frame(got.fills)
    first = None
    n = min(a.height, b.height)
    keys_equal = (
        (a["symbol"].head(n) == b["symbol"].head(n))
        & (a["ts"].head(n) == b["ts"].head(n))
        & (a["side"].head(n) == b["side"].head(n))
        & (a["qty"].head(n) == b["qty"].head(n))
        & ((a["price"].head(n) - b["price"].head(n)).abs() <= price_tol)
    )
    bad = keys_equal.not_().arg_true()
    if len(bad):
        first = int(bad[0])
    elif a.height != b.height:
        first = n
    max_price_diff = float((a["price"].head(n) - b["price"].head(n)).abs().max() or 0.0) if n else 0.0
    equity_diff = abs(float(got.final_equity - ref_equity)) if not hasattr(ref_equity, "denominator") else abs(
        float(type(ref_equity)(got.final_equity) - ref_equity))
    out = {
        "agrees": first is None and equity_diff <= equity_tol,
        "fills_ref": a.height, "fills_got": b.height,
        "max_price_diff": max_price_diff if first is None else None,
        "equity_diff": equity_diff,
    }
    if first is not None:
        out["first_difference"] = {
            "index": first,
            "reference": a.row(first, named=True) if first < a.height else None,
            "engine": b.row(first, named=True) if first < b.height else None,
        }
    return out


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB.

    VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over an exec from the process
    that forked it, so a runner started by a big driver would report the driver's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
